"""bench/cost.py's billing rules on items whose units are known by hand (tests/run runs these).

    .venv/bin/python -m unittest bench/test_cost.py
"""

import sys
import unittest
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
    return {"operation": op, "items": [{"table": "t", "key": KEY, "kind": kind, "before": before, "after": after}],
            "indexes": {"t": [GSI1, GSI2]}}


class ItemSize(unittest.TestCase):
    def test_names_and_values(self):
        self.assertEqual(cost.item_size({"ab": {"S": "héllo"}}), 2 + 6)
        self.assertEqual(cost.item_size({"n": {"N": "123"}}), 1 + 3)  # 2 bytes of digits + 1
        self.assertEqual(cost.item_size({"n": {"N": "-1.5000"}}), 1 + 2)  # trailing zeros do not count
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
        _, units = cost.dynamodb_units(write("Put", stored, stored, op="PutItem"))
        self.assertEqual(units, 3)  # no index changed
        _, units = cost.dynamodb_units(write("Put", None, None, op="PutItem"))
        self.assertEqual(units, 1)


class ReadUnits(unittest.TestCase):
    def test_a_query_rounds_over_what_it_read(self):
        items = [{"k": {"S": "x" * 1000}} for _ in range(5)]  # 5 × 1,001 bytes: two 4 KB units together
        line = {"operation": "Query", "request": {"ConsistentRead": True}, "response": {"Items": items}}
        self.assertEqual(cost.dynamodb_units(line), (2, 0))

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

    def test_sms_segments(self):
        self.assertEqual(cost.sms_segments("a" * 160), 1)
        self.assertEqual(cost.sms_segments("a" * 161), 2)
        self.assertEqual(cost.sms_segments("a" * 320), 3)  # 153 a part once split
        self.assertEqual(cost.sms_segments("€" * 80), 1)  # 160 septets: the extended table's two each
        self.assertEqual(cost.sms_segments("ć" * 70), 1)  # not GSM-7: UCS-2
        self.assertEqual(cost.sms_segments("ć" * 71), 2)


if __name__ == "__main__":
    unittest.main()
