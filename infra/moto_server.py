"""moto's server, with requests processed one at a time.

moto's DynamoDB TransactWriteItems backs the whole table up with deepcopy and, when a condition
fails, restores that backup -- with no lock between its request threads. A transaction that
fails on one thread can so undo a transaction another thread committed meanwhile, which real
DynamoDB (serializable transactions) never does, and a conditional counter such as Sealpost's
attempt count comes out wrong. Serialising requests makes moto's store linearizable, as
DynamoDB is; connections are still accepted concurrently.

Also, `GET /moto-api/data.json` (the record of sent SMS and email the tests read) skips a model
attribute that raises: moto's S3 multipart uploads have a `status` that raises NoSuchBucket
once their upload is done, which made the whole listing a 500 on a server that also held S3.

With `--record FILE`, every AWS request is appended to FILE as one JSON line (bench/cost.py
counts and prices them): who signed it (the access key, also of a presigned URL), the service,
the operation, the bytes each way, and for DynamoDB the request, the items a read returned and,
for a write, each item it names as it was before and after -- what DynamoDB bills by.

Usage: python infra/moto_server.py -H 127.0.0.1 -p PORT [--record FILE]   (as moto_server)
"""

import argparse
import io
import json
import os
import re
import sys
import threading
import urllib.parse

from werkzeug.serving import run_simple

from moto.moto_api._internal.responses import MotoAPIResponse
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def model_data(self, request, full_url, headers):
    """moto's own listing (moto_api/_internal/responses.py), skipping any attribute that raises."""
    from moto.core.model_instances import model_data as tracked

    results = {}
    for service in sorted(tracked):
        results[service] = {}
        for name in sorted(tracked[service]):
            results[service][name] = []
            for instance in tracked[service][name].instances_tracked:
                found = {}
                for attr in dir(instance):
                    if attr.startswith("_"):
                        continue
                    try:
                        value = getattr(instance, attr)
                        json.dumps(value)
                    except Exception:  # noqa: BLE001 (moto's models raise their own errors too)
                        continue
                    found[attr] = value
                results[service][name].append(found)
    return 200, {"Content-Type": "application/javascript"}, json.dumps(results)


MotoAPIResponse.model_data = model_data


DYNAMODB_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")
DYNAMODB_READS = ("GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems")


def signer(environ) -> tuple[str, str, str] | None:
    """(access key, region, service) from SigV4's credential scope: the header's, or a
    presigned URL's. None for moto's own API and anything unsigned."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    found = re.search(r"Credential=([^/,]+)/\d{8}/([^/]+)/([^/]+)/aws4_request", authorization)
    if not found:
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        credential = (query.get("X-Amz-Credential") or [""])[0]
        found = re.fullmatch(r"([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request", credential)
    return found.groups() if found else None


def operation(environ, service: str, body: bytes) -> str:
    """The API operation: the JSON protocols' target, the query protocol's Action, else the
    REST call as method and path (bench/cost.py names S3's and SES's)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    if service in ("sns", "sqs", "sts") and body:
        action = urllib.parse.parse_qs(body.decode(errors="replace")).get("Action")
        if action:
            return action[0]
    return f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}"


class DynamoImages:
    """The items a DynamoDB write names, as moto holds them (DynamoDB JSON), read inside the
    lock so that before and after are the request's own."""

    def __init__(self, region: str) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        self.backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][region]

    def keys(self, request: dict, op: str) -> list[tuple[str, dict, str, dict | None]]:
        """(table, key, kind, the item a put sends) for each item the write names."""
        named = []

        def one(table: str, kind: str, item_or_key: dict) -> None:
            schema = self.backend.get_table(table)
            key_names = [schema.hash_key_attr] + ([schema.range_key_attr] if schema.range_key_attr else [])
            key = {k: item_or_key[k] for k in key_names if k in item_or_key}
            named.append((table, key, kind, item_or_key if kind == "Put" else None))

        if op == "PutItem":
            one(request["TableName"], "Put", request["Item"])
        elif op in ("UpdateItem", "DeleteItem"):
            one(request["TableName"], op.removesuffix("Item"), request["Key"])
        elif op == "TransactWriteItems":
            for entry in request.get("TransactItems", []):
                (kind, spec), = entry.items()
                one(spec["TableName"], kind, spec.get("Item") or spec.get("Key"))
        elif op == "BatchWriteItem":
            for table, writes in request.get("RequestItems", {}).items():
                for write in writes:
                    if "PutRequest" in write:
                        one(table, "Put", write["PutRequest"]["Item"])
                    else:
                        one(table, "Delete", write["DeleteRequest"]["Key"])
        return named

    def image(self, table: str, key: dict) -> dict | None:
        from moto.dynamodb.models.dynamo_type import DynamoType

        schema = self.backend.get_table(table)
        hash_key = DynamoType(key[schema.hash_key_attr])
        range_key = DynamoType(key[schema.range_key_attr]) if schema.range_key_attr else None
        try:
            item = schema.get_item(hash_key, range_key)
        except Exception:  # noqa: BLE001 (moto raises its own errors for a missing table or key)
            return None
        return item.to_json()["Attributes"] if item else None

    def indexes(self, table: str) -> list[dict]:
        return [index.describe() for index in self.backend.get_table(table).global_indexes]


class Recorder:
    """One JSON line per AWS request, appended to `path` (the module's docstring says what)."""

    def __init__(self, app, path: str) -> None:
        self.app, self.path = app, path
        self.tables: dict[str, list[dict]] = {}

    def __call__(self, environ, start_response):
        signed = signer(environ)
        if signed is None:
            return list(self.app(environ, start_response))
        key_id, region, service = signed
        length = int(environ.get("CONTENT_LENGTH") or 0)
        # A chunked body runs to its end; any other, to its length (a GET's socket stays open).
        body = environ["wsgi.input"].read() if environ.get("wsgi.input_terminated") else environ["wsgi.input"].read(length)
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        op = operation(environ, service, body)
        line = {"key": key_id, "service": service, "operation": op, "method": environ["REQUEST_METHOD"],
                "path": environ.get("PATH_INFO", ""), "query": environ.get("QUERY_STRING", ""),
                "copy_source": "HTTP_X_AMZ_COPY_SOURCE" in environ,
                "bytes_in": int(environ.get("HTTP_X_AMZ_DECODED_CONTENT_LENGTH") or len(body))}
        dynamodb = service == "dynamodb" and (op in DYNAMODB_WRITES or op in DYNAMODB_READS)
        # Recording never changes moto's answer: what it cannot image is recorded as unknown
        # (`items: null`, which bench/cost.py refuses to count) and said on stderr.
        images, named = None, None
        if dynamodb and op in DYNAMODB_WRITES:
            try:
                images = DynamoImages(region)
                named = [(t, k, kind, sent, images.image(t, k)) for t, k, kind, sent in images.keys(json.loads(body), op)]
            except Exception as e:  # noqa: BLE001 (a request moto itself will refuse, or a moto change)
                print(f"moto_server --record: {op}: no images before: {e!r}", file=sys.stderr, flush=True)
        status = []

        def start(status_line, headers, exc_info=None):
            status.append(int(status_line.split(" ", 1)[0]))
            return start_response(status_line, headers, exc_info)

        out = list(self.app(environ, start))
        try:
            answer = b"".join(out)
            line.update(status=status[0] if status else 0, bytes_out=len(answer))
            if dynamodb:
                line["request"] = json.loads(body)
                if op in DYNAMODB_READS and line["status"] == 200:
                    line["response"] = json.loads(answer)
            if named is not None:
                for table in {t for t, *_ in named}:
                    if table not in self.tables:
                        self.tables[table] = images.indexes(table)
                line["items"] = [{"table": t, "key": k, "kind": kind, "sent": sent, "before": before,
                                  "after": images.image(t, k)} for t, k, kind, sent, before in named]
                line["indexes"] = {t: self.tables[t] for t in {t for t, *_ in named}}
            elif op in DYNAMODB_WRITES and dynamodb:
                line["items"] = None
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        except Exception as e:  # noqa: BLE001 (the request was served; only its record is short)
            print(f"moto_server --record: {op}: not recorded: {e!r}", file=sys.stderr, flush=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({**{k: line[k] for k in ("key", "service", "operation")}, "unrecorded": repr(e)}) + "\n")
        return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument("--record", metavar="FILE", help="append one JSON line per AWS request (bench/cost.py)")
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))

    app = DomainDispatcherApplication(create_backend_app)
    if args.record:
        app = Recorder(app, args.record)
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            # Drain the response inside the lock: the work happens while it is produced.
            return list(app(environ, start_response))

    run_simple(args.host, args.port, one_at_a_time, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
