"""bench/cost.py's billing rules on items whose units are known by hand (tests/run runs these).

    .venv/bin/python -m unittest bench/test_cost.py
"""

import json
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cost  # noqa: E402

GSI1 = {"IndexName": "gsi1", "KeySchema": [{"AttributeName": "gsi1pk", "KeyType": "HASH"},
                                           {"AttributeName": "gsi1sk", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["body"]}}
GSI2 = {"IndexName": "gsi2", "KeySchema": [{"AttributeName": "gsi2pk", "KeyType": "HASH"},
                                           {"AttributeName": "gsi2sk", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"}}
KEY = {"pk": {"S": "SHARE#a"}, "sk": {"S": "SHARE"}}


def share(body_bytes: int, **extra) -> dict:
    return {**KEY, "body": {"S": "x" * body_bytes}, "gsi1pk": {"S": "P#1"}, "gsi1sk": {"S": "2026"}, **extra}


def write(kind: str, before, after, op: str = "TransactWriteItems") -> dict:
    return {"operation": op, "status": 200, "indexes": {"t": [GSI1, GSI2]},
            "items": [{"table": "t", "key": KEY, "kind": kind, "before": before, "after": after}]}


class ItemSize(unittest.TestCase):
    def test_names_and_values(self):
        self.assertEqual(cost.item_size({"ab": {"S": "héllo"}}), 2 + 6)
        self.assertEqual(cost.item_size({"n": {"N": "123"}}), 1 + 3)  # 2 bytes of digits + 1
        self.assertEqual(cost.item_size({"n": {"N": "-1.5000"}}), 1 + 2)  # trailing zeros do not count
        self.assertEqual(cost.item_size({"n": {"N": "000123"}}), 1 + 3)  # nor leading ones
        self.assertEqual(cost.item_size({"f": {"BOOL": True}, "z": {"NULL": True}}), 2 + 2)
        self.assertEqual(cost.item_size({"m": {"M": {"k": {"S": "vv"}}}}), 1 + 3 + (1 + 2 + 1))
        self.assertEqual(cost.item_size({"l": {"L": [{"S": "a"}, {"S": "bc"}]}}), 1 + 3 + (1 + 1) + (2 + 1))


class WriteUnits(unittest.TestCase):
    def test_a_new_share_in_a_transaction_and_its_index_entries(self):
        item = share(1500)  # ~1.5 KB: 2 units, twice in a transaction; gsi1 carries the body
        _, units = cost.dynamodb_units(write("Put", None, item))
        self.assertEqual(units, 2 * 2 + 2)

    def test_the_larger_image_counts(self):
        _, units = cost.dynamodb_units(write("Update", share(100), share(2100), op="UpdateItem"))
        self.assertEqual(units, 3 + 3)  # the item at 2.1 KB; gsi1's entry changed (its body): one write of 3

    def test_a_changed_index_key_deletes_and_puts(self):
        before = share(100, gsi2pk={"S": "due"}, gsi2sk={"S": "1"})
        after = share(100, gsi2pk={"S": "due"}, gsi2sk={"S": "2"})
        _, units = cost.dynamodb_units(write("Update", before, after, op="UpdateItem"))
        self.assertEqual(units, 1 + 2)  # the item; gsi2 delete + put; gsi1 unchanged: nothing

    def test_leaving_an_index_is_one_delete(self):
        before = share(100, gsi2pk={"S": "due"}, gsi2sk={"S": "1"})
        _, units = cost.dynamodb_units(write("Update", before, share(100), op="UpdateItem"))
        self.assertEqual(units, 1 + 1)

    def test_an_attribute_no_index_projects_writes_no_index(self):
        _, units = cost.dynamodb_units(write("Update", share(100), share(100, attempts={"N": "1"}), op="UpdateItem"))
        self.assertEqual(units, 1)

    def test_a_failed_condition_is_billed_on_the_stored_item(self):
        stored = share(3000)
        line = write("Put", stored, stored, op="PutItem")
        line["status"] = 400
        self.assertEqual(cost.dynamodb_units(line), (0, 3))  # and no index write
        line = write("Put", None, None, op="PutItem")
        line["status"] = 400
        self.assertEqual(cost.dynamodb_units(line), (0, 1))


    def test_the_larger_image_counts_when_it_is_the_one_before(self):
        _, units = cost.dynamodb_units(write("Update", share(2100), share(100), op="UpdateItem"))
        self.assertEqual(units, 3 + 3)

    def test_a_transaction_doubles_its_items_not_its_index_writes(self):
        event = {"pk": {"S": "SHARE#a"}, "sk": {"S": "EVENT#1"}, "body": {"S": "e" * 200}}
        line = {"operation": "TransactWriteItems", "indexes": {"t": [GSI1, GSI2]}, "status": 200, "items": [
            {"table": "t", "key": KEY, "kind": "Update", "before": share(100), "after": share(1500)},
            {"table": "t", "key": {"pk": event["pk"], "sk": event["sk"]}, "kind": "Put", "before": None,
             "after": event}]}
        # The share: 2 units twice; its gsi1 entry (the body changed): 2 units once; the event: 1 twice.
        self.assertEqual(cost.dynamodb_units(line), (0, 2 * 2 + 2 + 2 * 1))

    def test_a_failed_put_is_billed_on_the_larger_of_stored_and_sent_and_writes_no_index(self):
        line = write("Put", share(100), share(100), op="PutItem")
        line["status"], line["items"][0]["sent"] = 400, share(2500)
        self.assertEqual(cost.dynamodb_units(line), (0, 3))
        line = write("Update", share(1500), share(1500))
        line["status"] = 400  # a cancelled transaction
        self.assertEqual(cost.dynamodb_units(line), (0, 2 * 2))

    def test_what_has_no_rule_stops_the_count(self):
        with self.assertRaises(SystemExit):
            cost.dynamodb_units({"operation": "ExecuteStatement", "request": {}})
        with self.assertRaises(SystemExit):
            cost.dynamodb_units({"operation": "Scan", "request": {"FilterExpression": "sk = :sk"}, "response": {}})
        with self.assertRaises(SystemExit):
            cost.dynamodb_units({"operation": "PutItem", "request": {}, "status": 200, "items": None})


class ReadUnits(unittest.TestCase):
    def test_four_kilobytes_a_unit(self):
        def get(size):
            item = {"k": {"S": "x" * (size - 1)}}
            return cost.dynamodb_units({"operation": "GetItem", "request": {"ConsistentRead": True},
                                        "response": {"Item": item}})[0]

        self.assertEqual((get(4096), get(4097)), (1, 2))

    def test_batch_and_transactional_gets(self):
        item = {"k": {"S": "x" * 99}}
        batch = {"operation": "BatchGetItem", "request": {"RequestItems": {"t": {"Keys": [], "ConsistentRead": False}}},
                 "response": {"Responses": {"t": [item, item]}}}
        self.assertEqual(cost.dynamodb_units(batch), (1, 0))  # two eventually consistent reads
        transact = {"operation": "TransactGetItems", "request": {}, "response": {"Responses": [{"Item": item}]}}
        self.assertEqual(cost.dynamodb_units(transact), (2, 0))

    def test_a_query_rounds_over_what_it_read(self):
        items = [{"k": {"S": "x" * 1000}} for _ in range(5)]  # 5 × 1,001 bytes: two 4 KB units together
        line = {"operation": "Query", "request": {"ConsistentRead": True}, "response": {"Items": items}}
        self.assertEqual(cost.dynamodb_units(line), (2, 0))

    def test_an_eventually_consistent_read_is_half(self):
        line = {"operation": "GetItem", "request": {}, "response": {"Item": {"k": {"S": "x" * 5000}}}}
        self.assertEqual(cost.dynamodb_units(line), (1, 0))  # two 4 KB units, halved

    def test_an_index_query_is_eventually_consistent(self):
        line = {"operation": "Query", "request": {"IndexName": "gsi2", "ConsistentRead": True}, "response": {"Items": []}}
        self.assertEqual(cost.dynamodb_units(line), (0.5, 0))

    def test_a_get_of_nothing_still_costs_a_unit(self):
        self.assertEqual(cost.dynamodb_units({"operation": "GetItem", "request": {"ConsistentRead": True},
                                              "response": {}}), (1, 0))


class OtherServices(unittest.TestCase):
    def test_s3_operations_from_rest_requests(self):
        def kind(method, path, query="", copy=False):
            return cost.s3_kind({"method": method, "path": path, "query": query, "copy_source": copy})

        self.assertEqual(kind("PUT", "/b/k"), "PutObject")
        self.assertEqual(kind("PUT", "/b/k", copy=True), "CopyObject")
        self.assertEqual(kind("PUT", "/b/k", "partNumber=1&uploadId=u"), "UploadPart")
        self.assertEqual(kind("POST", "/b/k", "uploads"), "CreateMultipartUpload")
        self.assertEqual(kind("POST", "/b/k", "uploadId=u"), "CompleteMultipartUpload")
        self.assertEqual(kind("POST", "/b", "delete"), "DeleteObjects")
        self.assertEqual(kind("GET", "/b", "list-type=2&prefix=shares"), "ListObjectsV2")
        self.assertEqual(kind("GET", "/b/shares/x/doc"), "GetObject")
        self.assertEqual(kind("HEAD", "/b/k"), "HeadObject")
        self.assertEqual(kind("DELETE", "/b/k"), "DeleteObject")

    def test_s3_request_classes(self):
        for op in ("PutObject", "CopyObject", "UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload",
                   "ListObjectsV2", "DeleteObjects"):
            self.assertIn(op, cost.S3_CLASS_A)
        for op in ("GetObject", "HeadObject"):
            self.assertIn(op, cost.S3_CLASS_B)
        for op in ("DeleteObject", "AbortMultipartUpload"):  # free
            self.assertNotIn(op, cost.S3_CLASS_A | cost.S3_CLASS_B)

    def test_sqs_and_http_api_metering(self):
        self.assertEqual(cost.sqs_billed("SendMessageBatch", 70_000, 500), 2)
        self.assertEqual(cost.sqs_billed("ReceiveMessage", 85, 151_624), 3)  # what it brought back
        self.assertEqual(cost.sqs_billed("DeleteMessageBatch", 300, 200), 1)
        self.assertEqual(cost.http_api_billed(1_400_000, 900), 3)
        self.assertEqual(cost.http_api_billed(120, 300), 1)

    def test_sms_segments(self):
        self.assertEqual(cost.sms_segments("a" * 160), 1)
        self.assertEqual(cost.sms_segments("a" * 161), 2)
        self.assertEqual(cost.sms_segments("a" * 320), 3)  # 153 a part once split
        self.assertEqual(cost.sms_segments("€" * 80), 1)  # 160 septets: the extended table's two each
        self.assertEqual(cost.sms_segments("€" * 81), 2)
        self.assertEqual(cost.sms_segments("€" * 153), 3)  # 76 a part: an escape is never split
        self.assertEqual(cost.sms_segments("ć" * 70), 1)  # not GSM-7: UCS-2
        self.assertEqual(cost.sms_segments("ć" * 71), 2)
        self.assertEqual(cost.sms_segments("ć" * 135), 3)  # 67 a part
        self.assertEqual(cost.sms_segments("😀" * 67), 3)  # two units each, a pair never split: 33 a part

    def test_a_scheduled_runs_own_work_is_taken_off(self):
        shares, idle = cost.Counts(), cost.Counts()
        shares.invocations["sweep"], idle.invocations["sweep"] = 3, 1
        shares.requests[("sweep", "dynamodb", "Query")], idle.requests[("sweep", "dynamodb", "Query")] = 6, 1
        shares.rru[("sweep", "dynamodb", "Query")], idle.rru[("sweep", "dynamodb", "Query")] = 3.0, 0.5
        shares.cpu_ns["sweep"], idle.cpu_ns["sweep"] = 10, 5  # measured: a due run may use less
        cost.take_off(shares, idle, 3)
        self.assertEqual((shares.invocations["sweep"], shares.requests[("sweep", "dynamodb", "Query")],
                          shares.rru[("sweep", "dynamodb", "Query")], shares.cpu_ns["sweep"]), (0, 3, 1.5, 0))
        with self.assertRaises(SystemExit):
            cost.take_off(shares, idle, 1)  # more runs taken off than were made


class Counting(unittest.TestCase):
    def test_a_request_moto_could_not_record_stops_the_count(self):
        from types import SimpleNamespace

        with tempfile.TemporaryDirectory() as folder:
            record = Path(folder) / "requests.jsonl"
            record.write_text(json.dumps({"key": cost.key_of("verify-code"), "service": "dynamodb",
                                          "operation": "TransactWriteItems", "unrecorded": "KeyError('x')"}) + "\n")
            run = SimpleNamespace(record=record, functions=SimpleNamespace(functions={"verify-code": None}, calls=[]),
                                  api_log=[], cdn_log=[])
            with self.assertRaises(SystemExit) as stopped:
                cost.Run.counts(run, (0, 0, 0), (1, 0, 0), slice(0, 0), slice(0, 0))
            self.assertIn("could not record", str(stopped.exception))


class RecordedByMoto(unittest.TestCase):
    """infra/moto_server.py --record on loopback: the images it takes give the units by hand,
    and recording never changes moto's answers."""

    @classmethod
    def setUpClass(cls):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cls.dir = tempfile.TemporaryDirectory()
        cls.record = Path(cls.dir.name) / "requests.jsonl"
        server = Path(__file__).resolve().parents[1] / "infra" / "moto_server.py"
        cls.server = subprocess.Popen([sys.executable, str(server), "-p", str(port), "--record", str(cls.record)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{cls.url}/moto-api/data.json", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        import boto3

        cls.dynamodb = boto3.client("dynamodb", endpoint_url=cls.url, region_name="eu-central-2",
                                    aws_access_key_id="ASIATEST", aws_secret_access_key="x")
        cls.dynamodb.create_table(
            TableName="t", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "g")],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{"IndexName": "byg", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                     "Projection": {"ProjectionType": "ALL"}}])

    @classmethod
    def tearDownClass(cls):
        cls.server.terminate()
        cls.server.wait()
        cls.dir.cleanup()

    def last(self, operation):
        lines = [json.loads(x) for x in self.record.read_text().splitlines()]
        return [x for x in lines if x["operation"] == operation][-1]

    def test_writes_are_billed_on_their_images(self):
        item = {"pk": {"S": "a"}, "sk": {"S": "1"}, "g": {"S": "one"}, "body": {"S": "x" * 1800}}
        self.dynamodb.put_item(TableName="t", Item=item)
        # ~1.8 KB: 2 units, and its entry in the index (all attributes): 2 more.
        self.assertEqual(cost.dynamodb_units(self.last("PutItem")), (0, 4))
        self.dynamodb.update_item(TableName="t", Key={"pk": item["pk"], "sk": item["sk"]},
                                  UpdateExpression="SET g = :g", ExpressionAttributeValues={":g": {"S": "two"}})
        line = self.last("UpdateItem")
        self.assertEqual(line["items"][0]["before"]["g"], {"S": "one"})
        self.assertEqual(line["items"][0]["after"]["g"], {"S": "two"})
        self.assertEqual(cost.dynamodb_units(line), (0, 2 + 2 + 2))  # the index key moved: delete and put
        with self.assertRaises(self.dynamodb.exceptions.ConditionalCheckFailedException):
            self.dynamodb.put_item(TableName="t", Item=item, ConditionExpression="attribute_not_exists(pk)")
        failed = self.last("PutItem")
        self.assertEqual((failed["status"], cost.dynamodb_units(failed)), (400, (0, 2)))

    def test_an_error_passes_through_unchanged(self):
        with self.assertRaises(self.dynamodb.exceptions.ResourceNotFoundException):
            self.dynamodb.put_item(TableName="missing", Item={"pk": {"S": "a"}})
        line = self.last("PutItem")
        self.assertEqual((line["status"], line["items"]), (400, None))


if __name__ == "__main__":
    unittest.main()
