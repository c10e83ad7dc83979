"""What a share costs on AWS, counted from the code as it ships.

The functions `sam build` made (.aws-sam/build, arm64 under qemu: tests/rehearsal/harness.py)
carry shares of a typical kind through their whole life against moto's server, which records
every AWS request (infra/moto_server.py --record). Each function signs with its own access key,
as each Lambda function has its role's session, so every call is told to the function that made
it (a presigned URL, to the function that signed it). Those counts are priced with
bench/prices.toml, whose every price names its page and the date it was read.

The typical share (issue #22): 2 documents of 0.5 MB each sent inline, an email and an SMS
code, the patient opens the page, verifies once and downloads both documents, one webhook
endpoint gets every event; the link runs out (a scheduled sweep), then the record is purged
(TTL, then the cleanup function). Each share lives alone, as at a few shares an hour: Lambda's
pollers hand the table's stream to webhook-fanout after each moment of its life and the queue
to webhook-sender; a sweep run and a purge find it alone, and a sweep run's own work (an idle
run's) is counted once, as fixed. One share's life runs first, uncounted: the functions'
start-up calls fall there. Then every other operation but request-code (a practice's reads,
resend, archive, an SES bounce, revoke, an upload share, a patient's reply), each once on a
warm function.

    python3 bench/cost.py [--shares N] [--artifacts DIR | --native BIN] [--prices FILE] [--json FILE]

With --native (`bash bench/cost --native`), lambda/'s release build for this machine runs as
every function: the same requests (the code's, not the machine's), and each invocation's CPU
time, which under qemu means nothing, models the functions at other memory sizes.

What is counted, not guessed: every request to DynamoDB (with its read and write units from the
items' sizes: DYNAMODB_RULES), S3 (by class, and the bytes presigned GETs serve), SES, SNS SMS
(segments from the text), SQS, SSM; each function's invocations; the HTTP API's requests and
their sizes; what CloudFront serves the patient; each function's log bytes. What is assumed
(it needs a deployment to measure): each invocation's waits, its AWS calls at prices.toml's
[assumed] latencies (its own CPU is measured with --native, assumed under qemu), and a cold
start's; Lambda's and API Gateway's own log lines; the SQS pollers' empty receives. Not
counted: KMS's requests (DynamoDB's encryption, the pepper's SecureString), fractions of a cent.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import math
import platform
import re
import secrets
import shutil
import sys
import time
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "rehearsal"))
from harness import (  # noqa: E402
    Lambda, Stack, TableStream, aws_client, default_artifacts, log, new_log_dir, schedule_event, sns_event,
    sqs_event, stream_event,
)
from rehearse import PHONE, SENDER, Rehearsal, sms_code  # noqa: E402

PATIENT = "patient@cost.example"  # PHONE (rehearse.py's) is Swiss: the SMS line is priced for Switzerland
RECIPIENT = {"email": PATIENT, "phone": PHONE, "language": "de", "name": "Anna Probe"}
DOCUMENT_BYTES = 512 * 1024  # two of them: the typical share's 1 MB
# Who signs what is not a function's: the operator's setup, the stand-in's own reads, TTL's
# deletes (free), and Lambda's SQS poller (billed: its requests are the account's).
SETUP_KEYS = {"rehearsal", "operator", "bench"}
TTL_KEY, POLLER_KEY = "ttl", "lambda-poller"
DAYS_PER_MONTH = 30.4375


def key_of(handler: str) -> str:
    return f"ASIA{handler.upper().replace('-', '')}"


# ---------------------------------------------------------------------------------------------
# DynamoDB's billing rules, applied to the items moto recorded
# ---------------------------------------------------------------------------------------------

DYNAMODB_RULES = """\
- Item size: attribute names' UTF-8 bytes plus values (strings' bytes, numbers ~1 byte per two
  significant digits + 1, binary's bytes, Boolean and null 1, a map or list 3 + 1 per element).
- A write request unit per 1 KB of the item (the larger of before and after), at least one; a
  read request unit per 4 KB read, at least one; eventually consistent reads (every GSI Query)
  half; transactional items twice (prepare and commit). A Query is rounded over all the items
  it read together, not per item.
- A write that fails (its condition, or a cancelled transaction's) is billed on the stored
  item, or for a put the larger of it and the item sent (one unit when there is neither), and
  writes no index. AWS does not say what a cancelled transaction costs: it is counted as its
  items' writes (the run says how many failed). A ConditionCheck is a transactional write of
  the item it checks.
- A global secondary index: one write per index entry put or deleted (a changed index key
  deletes and puts: two), one when only its projected attributes change, none when the item
  is in the index neither before nor after; units by the entry's size (table and index keys
  and its projected attributes); not doubled by a transaction.
- TTL's deletes and the stream's reads by Lambda cost nothing."""


def number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").lstrip("0").rstrip("0")
    return (max(len(digits), 1) + 1) // 2 + 1


def value_size(value: dict) -> int:
    (kind, v), = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return number_size(v)
    if kind == "B":
        return len(base64.b64decode(v))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(x.encode()) for x in v)
    if kind == "NS":
        return sum(number_size(x) for x in v)
    if kind == "BS":
        return sum(len(base64.b64decode(x)) for x in v)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(x) + 1 for k, x in v.items())
    if kind == "L":
        return 3 + sum(value_size(x) + 1 for x in v)
    raise ValueError(f"an attribute of unknown type {kind}")


def item_size(item: dict | None) -> int:
    return sum(len(k.encode()) + value_size(v) for k, v in (item or {}).items())


def index_entry(item: dict | None, table_keys: list[str], index: dict) -> dict | None:
    """The item's entry in a global secondary index, or None when it has no index key."""
    index_keys = [k["AttributeName"] for k in index["KeySchema"]]
    if item is None or any(k not in item for k in index_keys):
        return None
    projection = index.get("Projection", {})
    kind = projection.get("ProjectionType", "ALL")
    if kind == "ALL":
        return dict(item)
    names = set(table_keys) | set(index_keys)
    if kind == "INCLUDE":
        names |= set(projection.get("NonKeyAttributes", []))
    return {k: v for k, v in item.items() if k in names}


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def read_units(size: int, consistent: bool) -> float:
    return max(1, math.ceil(size / 4096)) * (1 if consistent else 0.5)


def dynamodb_units(line: dict) -> tuple[float, float]:
    """(read units, write units) of one recorded DynamoDB request."""
    op, request = line["operation"], line.get("request") or {}
    if op == "Scan" and request.get("FilterExpression"):
        # Billed on every item it evaluated, which the record does not hold.
        raise SystemExit("cost: a filtered Scan in the counted path: its units cannot be counted from the record")
    if op in ("GetItem", "Query", "Scan"):
        answer = line.get("response") or {}
        items = [answer["Item"]] if answer.get("Item") else answer.get("Items", [])
        consistent = bool(request.get("ConsistentRead")) and "IndexName" not in request
        return read_units(sum(item_size(i) for i in items), consistent), 0
    if op == "BatchGetItem":
        units = 0.0
        for table, items in (line.get("response") or {}).get("Responses", {}).items():
            consistent = bool(request.get("RequestItems", {}).get(table, {}).get("ConsistentRead"))
            units += sum(read_units(item_size(i), consistent) for i in items)
        return units, 0
    if op == "TransactGetItems":
        found = [r.get("Item") for r in (line.get("response") or {}).get("Responses", [])]
        return sum(2 * read_units(item_size(i), True) for i in found), 0
    if op not in ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"):
        if op[:1].isupper() and not op.startswith(("Describe", "List", "Create", "Update", "Delete", "Tag")):
            raise SystemExit(f"cost: DynamoDB {op}: no billing rule for it here")
        return 0, 0  # the control plane: not billed per request
    if line.get("items") is None:
        raise SystemExit(f"cost: a DynamoDB {op} the recorder could not image (its log says why)")
    factor = 2 if op == "TransactWriteItems" else 1
    failed = line.get("status") != 200
    units = 0
    for entry in line.get("items", []):
        before, after = entry["before"], entry["after"]
        if failed and entry.get("sent") is not None:
            after = entry["sent"]  # a failed put: the larger of what is stored and what was sent
        units += factor * write_units(max(item_size(before), item_size(after)))
        if failed:
            continue  # nothing reached an index
        table_keys = list(entry["key"])
        for index in line.get("indexes", {}).get(entry["table"], []):
            old, new = index_entry(before, table_keys, index), index_entry(after, table_keys, index)
            if old is None and new is None:
                continue
            index_keys = [k["AttributeName"] for k in index["KeySchema"]]
            if old is None or new is None or any(old.get(k) != new.get(k) for k in index_keys):
                units += sum(write_units(item_size(e)) for e in (old, new) if e is not None)
            elif old != new:
                units += write_units(max(item_size(old), item_size(new)))
    return 0, units


# ---------------------------------------------------------------------------------------------
# The other services' requests, as their prices count them
# ---------------------------------------------------------------------------------------------


def s3_kind(line: dict) -> str:
    """S3's operation from a REST request, and so its request class."""
    method, query = line["method"], line["query"]
    params = dict(p.partition("=")[::2] for p in query.split("&") if p)
    bucket_only = line["path"].strip("/").count("/") == 0
    if method == "PUT":
        if line["copy_source"]:
            return "CopyObject"
        return "UploadPart" if "partNumber" in params else "PutObject"
    if method == "POST":
        if "uploads" in params:
            return "CreateMultipartUpload"
        if "uploadId" in params:
            return "CompleteMultipartUpload"
        if "delete" in params:
            return "DeleteObjects"
        return "PostObject"
    if method == "GET":
        return "ListObjectsV2" if bucket_only or "list-type" in params else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in params else "DeleteObject"
    return method


# DeleteObjects is a POST: AWS says DELETE is free, not what a multi-object delete is; counted
# as a POST, the dearer reading.
S3_CLASS_A = {"PutObject", "CopyObject", "UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload",
              "ListObjectsV2", "PostObject", "DeleteObjects"}
S3_CLASS_B = {"GetObject", "HeadObject"}
GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
           "¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENDED = set("^{}\\[~]|€\f")


def sms_segments(text: str) -> int:
    """Segments (billed messages) as shared/src/messages.rs's `sms_segments` counts them: one of
    160 septets or 70 UCS-2 units, else parts of 153 or 67 that never split a GSM-7 extension
    character or a surrogate pair."""
    if all(c in GSM7 or c in GSM7_EXTENDED for c in text):
        units, single, part = [2 if c in GSM7_EXTENDED else 1 for c in text], 160, 153
    else:
        units, single, part = [len(c.encode("utf-16-le")) // 2 for c in text], 70, 67
    if sum(units) <= single:
        return 1
    parts, used = 1, 0
    for unit in units:
        if used + unit > part:
            parts, used = parts + 1, 0
        used += unit
    return parts


def sqs_billed(operation: str, bytes_in: int, bytes_out: int) -> int:
    """SQS bills each 64 KB of a request's payload as one request: what is sent, or for a
    receive what it brought back."""
    payload = bytes_out if operation == "ReceiveMessage" else bytes_in
    return max(1, math.ceil(payload / 65536))


def http_api_billed(sent: int, answered: int) -> int:
    """HTTP API meters requests in 512 KB increments; AWS does not say whether the answer
    counts: it does here (the dearer reading)."""
    return max(1, math.ceil((sent + answered) / (512 * 1024)))


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass
class Call:
    """One invocation of a function, as counted: its log output, and the CPU its process used
    meanwhile."""
    handler: str
    log_bytes: int
    cpu_ns: int


def cpu_ns(pid: int) -> int:
    """CPU time a process has run, in ns, threads that ended included: Linux's CPU clock of
    another process (MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)), not /proc's 10 ms ticks."""
    return time.clock_gettime_ns(((~pid) << 3) | 2)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Counts:
    """What one phase of the run used: per function and per service."""
    invocations: Counter = field(default_factory=Counter)
    log_bytes: Counter = field(default_factory=Counter)
    cpu_ns: Counter = field(default_factory=Counter)
    # (who, service, operation) -> requests; and the units and bytes that go with them.
    requests: Counter = field(default_factory=Counter)
    rru: Counter = field(default_factory=Counter)
    wru: Counter = field(default_factory=Counter)
    bytes_out: Counter = field(default_factory=Counter)
    sqs_billed: Counter = field(default_factory=Counter)
    api_requests: int = 0
    api_billed: int = 0
    cdn_requests: int = 0
    cdn_function_runs: int = 0
    cdn_bytes: int = 0
    sms_segments: int = 0
    emails: int = 0
    webhook_posts: int = 0
    dynamodb_failed: int = 0


def take_off(c: Counts, run: Counts, times: int) -> None:
    """Takes `times` of `run`'s requests, units and invocations off `c` (a scheduled run's own
    work, counted as fixed)."""
    for name in ("invocations", "requests", "rru", "wru", "sqs_billed", "log_bytes", "cpu_ns"):
        total, part = getattr(c, name), getattr(run, name)
        for key, value in part.items():
            total[key] -= value * times
            if total[key] < 0:
                if name in ("log_bytes", "cpu_ns"):  # measured, so noisy: a due run may log or run less
                    total[key] = 0
                else:
                    raise SystemExit(f"cost: an idle sweep's {name} {key} is more than the shares' sweeps did")


class CountedLambda(Lambda):
    """The stand-in's Lambda, each function signing with a key of its own; each invocation's
    log output and CPU counted, and each process's peak RSS kept."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[Call] = []
        self.peak_rss: dict[str, float] = {}  # MiB, per function

    def lambda_own(self, function) -> dict[str, str]:
        return {**super().lambda_own(function), "AWS_ACCESS_KEY_ID": key_of(function.handler)}

    def instance(self, handler: str):
        instance = super().instance(handler)
        if not getattr(instance, "counted", False):
            invoke = instance.invoke

            def counted(event: bytes, slack: float = 4.0) -> bytes:
                instance.log_file.flush()
                before, cpu = instance.log_path.stat().st_size, cpu_ns(instance.process.pid)
                try:
                    return invoke(event, slack)
                finally:
                    instance.log_file.flush()
                    used = cpu_ns(instance.process.pid) - cpu
                    if used < 0:
                        raise SystemExit(f"cost: {handler}'s CPU clock went back")
                    self.calls.append(Call(handler, instance.log_path.stat().st_size - before, used))
                    self.peak_rss[handler] = max(self.peak_rss.get(handler, 0.0), peak_rss_mib(instance.process.pid))

            instance.invoke = counted
            instance.counted = True
        return instance


class Run(Rehearsal):
    """The rehearsal's stage (tests/rehearsal/rehearse.py), counted: moto records every request,
    each function signs with its own key, and the share's life is played as below."""

    log_prefix = "sealpost-cost-"
    lambda_class = CountedLambda

    def moto_args(self) -> tuple[str, ...]:
        self.record = self.log_dir / "requests.jsonl"
        return ("--record", str(self.record))

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.native = not self.runner
        self.stream = TableStream(self.stack, self.moto.url)
        self.fanned_out = 0  # events the fan-out took: each must reach the receiver
        self.sweeps = 0  # scheduled sweep runs made to expire the counted shares
        self.api_log: list[tuple[int, int]] = []  # HTTP API: (request bytes, response bytes)
        self.cdn_log: list[tuple[bool, int]] = []  # CloudFront: (ran the viewer function, bytes served)
        self.stored: list[tuple[str, float, float]] = []  # ("s3" or "table", bytes, days kept)
        self.clients: dict[tuple[str, str], object] = {}
        self.indexes = self.dynamodb.describe_table(TableName=self.table)["Table"].get("GlobalSecondaryIndexes", [])

    # -- the clients: the practice, the patient's browser, Lambda's pollers -------------------------

    def call_api(self, method: str, path: str, *, via_cdn: bool, token: str | None = None, **kwargs) -> dict:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        answer = self.http.request(method, self.gateway.url + path, headers=headers, timeout=600, **kwargs)
        if answer.status_code >= 300:
            raise SystemExit(f"cost: {method} {path}: {answer.status_code} {answer.text[:300]}")
        sent = len(answer.request.body or b"")
        self.api_log.append((sent, len(answer.content)))
        if via_cdn:
            self.cdn_log.append((False, self.wire_bytes(answer)))
        return answer.json() if answer.content else {}

    @staticmethod
    def wire_bytes(answer: requests.Response) -> int:
        """What CloudFront sends: text compressed (its Compress: true), anything else as it is."""
        kind = answer.headers.get("Content-Type", "")
        compressible = kind.startswith("text/") or "json" in kind or "javascript" in kind
        return len(gzip.compress(answer.content)) if compressible and len(answer.content) > 1000 else len(answer.content)

    def open_page(self, share_id: str, language: str) -> None:
        """The page as the browser loads it through CloudFront: the HTML, what it links, and
        the strings of its language (app.js fetches /assets/i18n/<lang>.json)."""
        html = self.http.get(f"{self.gateway.url}/s/{share_id}", timeout=60)
        paths = re.findall(r'(?:src|href)="(/assets/[^"?]+)', html.text) + [f"/assets/i18n/{language}.json"]
        self.cdn_log.append((True, self.wire_bytes(html)))
        for path in paths:
            got = self.http.get(self.gateway.url + path, timeout=60)
            if got.status_code != 200:
                raise SystemExit(f"cost: the page's {path}: {got.status_code}")
            self.cdn_log.append((True, self.wire_bytes(got)))

    def pump(self) -> None:
        """What Lambda's pollers do after a moment of a share's life: the stream's new records
        through webhook-fanout (its filter applied), then the webhook queue through
        webhook-sender, in batches of its BatchSize; the poller deletes what was worked."""
        fanout = self.functions.functions["webhook-fanout"]
        records = self.stream.filtered(fanout, self.stream.read())
        self.fanned_out += len(records)
        for start in range(0, len(records), 100):
            answer = self.functions.invoke("webhook-fanout", stream_event(records[start:start + 100]))
            if answer.get("batchItemFailures"):
                raise SystemExit(f"cost: webhook-fanout asked for retries: {answer}")
        self.drain("WebhookQueue", "webhook-sender")

    def sms_texts(self) -> list[str]:
        """Every SMS sent so far, oldest first (moto's record)."""
        return [m["message"] for m in self.moto.data().get("sns", {}).get("SMS", [])]

    def client(self, service: str, key: str):
        """A client signing with `key` (who the record tells the request to), made once."""
        if (service, key) not in self.clients:
            made = aws_client(service, self.moto.url)
            made._request_signer._credentials.access_key = key  # noqa: SLF001
            self.clients[(service, key)] = made
        return self.clients[(service, key)]

    def queued(self, queue: str) -> bool:
        attributes = self.client("sqs", "bench").get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"]) > 0

    def mark(self) -> tuple[int, int, int]:
        """Where the record and the invocations stand: a phase is what lies between two marks."""
        return (sum(1 for _ in open(self.record, encoding="utf-8")) if self.record.exists() else 0,
                len(self.functions.calls), len(self.receiver.received))

    # -- the phases -------------------------------------------------------------------------------

    def setup(self) -> None:
        """A practice and its key (the operator's CLI, as the rehearsal makes them), its webhook
        endpoint, and every function started once."""
        self.make_practice()
        self.call_api("POST", "/v1/webhooks", via_cdn=False, token=self.api_key, json={"url": self.receiver.url})
        self.stream.read()
        # One share's whole life first, uncounted: each function's one-off start-up calls (the
        # pepper from SSM, once per execution environment) fall here; the "cold start" line
        # prices them apart.
        self.share_life(1)
        self.stored.clear()
        self.sweeps = 0

    def create_typical(self, documents: list[bytes]) -> dict:
        """A typical share, created as the practice's software creates it (inline, with an
        Idempotency-Key: the CLI always sends one), and the deliveries of its first events."""
        share = self.call_api("POST", "/v1/shares", via_cdn=False, token=self.api_key, headers={
            "Idempotency-Key": f"cost-{secrets.token_hex(8)}"}, json={
            "recipient": RECIPIENT,
            "documents": [{"filename": f"Dokument-{i}.pdf", "content_type": "application/pdf",
                           "content_base64": base64.b64encode(d).decode()} for i, d in enumerate(documents)],
        })
        self.pump()
        return share

    def share_life(self, shares: int) -> None:
        documents = [b"%PDF-1.7\n" + secrets.token_bytes(DOCUMENT_BYTES - 9) for _ in range(2)]
        made = []
        sms_seen = len([m for m in self.moto.data().get("sns", {}).get("SMS", []) if m.get("phone_number") == PHONE])
        for _ in range(shares):
            share = self.create_typical(documents)
            texts = [m["message"] for m in self.moto.data().get("sns", {}).get("SMS", []) if m.get("phone_number") == PHONE]
            if len(texts) != sms_seen + 1:
                raise SystemExit(f"cost: one SMS per share expected, {len(texts) - sms_seen}")
            sms_seen += 1
            code = sms_code(texts[-1])
            share_id = share["id"]
            self.open_page(share_id, "de")
            self.call_api("GET", f"/v1/public/shares/{share_id}", via_cdn=True)
            self.pump()
            token = self.call_api("POST", f"/v1/public/shares/{share_id}/verify", via_cdn=True,
                                  json={"code": code})["access_token"]
            self.pump()
            for document in share["documents"]:
                url = self.call_api("GET", f"/v1/public/shares/{share_id}/documents/{document['id']}", via_cdn=True,
                                    token=token)["url"]
                got = self.http.get(url, timeout=60)
                if got.status_code != 200 or len(got.content) != DOCUMENT_BYTES:
                    raise SystemExit(f"cost: the download: {got.status_code}, {len(got.content)} bytes")
            self.pump()
            made.append(share)
        # What each share keeps stored, and for how long: its objects until the link ends (the
        # sweep deletes them), its items until their TTL (the purge).
        for share in made:
            created = datetime.fromisoformat(share["created_at"].replace("Z", "+00:00"))
            link_days = (datetime.fromisoformat(share["expires_at"].replace("Z", "+00:00")) - created).total_seconds() / 86400
            objects = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"shares/{share['id']}/").get("Contents", [])
            self.stored.append(("s3", sum(o["Size"] for o in objects), link_days))
            for item in self.items_of(share["id"]):
                ttl = int(item["ttl"]["N"]) if "ttl" in item else None
                if ttl is None:
                    raise SystemExit(f"cost: a share's item without a TTL: {item['pk']['S']} {item['sk']['S']}")
                days = (ttl - created.timestamp()) / 86400
                self.stored.append(("table", self.stored_size(item), days))
        # Each link runs out on its own and the next scheduled sweep expires it: at a few shares
        # an hour, one a run. What the run does anyway (an idle run's work) is taken off in
        # main(): fixed_lines counts it.
        for share in made:
            self.run_out(share["id"])
            self.functions.invoke("sweep", schedule_event(self.stack, self.functions.functions["sweep"]))
            self.pump()
        self.sweeps += len(made)
        # Their TTL passes: DynamoDB deletes the items (no units), the stream hands the share's
        # removal to cleanup, filtered as its event source filters.
        cleanup = self.functions.functions["cleanup"]
        for share in made:
            for item in self.items_of(share["id"]):
                self.client("dynamodb", TTL_KEY).delete_item(TableName=self.table, Key={"pk": item["pk"], "sk": item["sk"]})
        removals = [r for r in self.stream.read() if r["eventName"] == "REMOVE"]
        for r in removals:
            r["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
        passed = self.stream.filtered(cleanup, removals)
        if len(passed) != len(made):
            raise SystemExit(f"cost: cleanup's filter passed {len(passed)} removals for {len(made)} shares")
        # One invocation each: at a few shares an hour, each purge comes alone (a burst would
        # batch up to the source's BatchSize).
        for removal in passed:
            self.functions.invoke("cleanup", stream_event([removal]))
        self.pump()
        if len(self.receiver.received) != self.fanned_out:
            raise SystemExit(f"cost: {self.fanned_out} events fanned out, {len(self.receiver.received)} delivered")
        left = [o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])]
        if left:
            raise SystemExit(f"cost: objects left after the sweep and the cleanup: {left[:3]}")

    def operations(self) -> list[tuple[str, Counts]]:
        """The other operations, each once on a share of the typical kind (made first, apart),
        with the webhook deliveries of the events each records: what a practice's polling, a
        resend, a revoke or an upload costs beside the share's own life. All of them run once
        first, uncounted, so that no function's start-up calls fall in the count."""
        for n in range(20):  # a full page for list-shares (small shares, a manual code: no SMS)
            self.call_api("POST", "/v1/shares", via_cdn=False, token=self.api_key, json={
                "recipient": {"email": PATIENT}, "auth": {"method": "manual"}, "documents": [
                    {"filename": f"Kurz-{n}.pdf", "content_type": "application/pdf",
                     "content_base64": base64.b64encode(b"%PDF-1.7\n" + secrets.token_bytes(2000)).decode()}]})
        self.pump()
        self.operations_once()
        return self.operations_once()

    def operations_once(self) -> list[tuple[str, Counts]]:
        documents = [b"%PDF-1.7\n" + secrets.token_bytes(DOCUMENT_BYTES - 9) for _ in range(2)]
        share = self.create_typical(documents)
        code = sms_code(self.sms_texts()[-1])
        token = self.call_api("POST", f"/v1/public/shares/{share['id']}/verify", via_cdn=True, json={"code": code})
        self.pump()
        sid, practice, measured = share["id"], {"via_cdn": False, "token": self.api_key}, []

        def measure(name: str, step) -> None:
            since, api, cdn, texts = self.mark(), len(self.api_log), len(self.cdn_log), len(self.sms_texts())
            step()
            self.pump()
            counts = self.counts(since, self.mark(), slice(api, len(self.api_log)), slice(cdn, len(self.cdn_log)))
            counts.sms_segments = sum(sms_segments(t) for t in self.sms_texts()[texts:])
            measured.append((name, counts))

        def upload() -> None:
            made = self.call_api("POST", "/v1/shares", **practice, json={"recipient": RECIPIENT, "documents": [
                {"filename": f"Befund-{i}.pdf", "content_type": "application/pdf", "size": len(d),
                 "sha256": hashlib.sha256(d).hexdigest()} for i, d in enumerate(documents)]})
            for document, data in zip(made["documents"], documents):
                put = self.http.put(document["upload_url"], data=data, headers=document["upload_headers"], timeout=60)
                if put.status_code != 200:
                    raise SystemExit(f"cost: the upload PUT: {put.status_code}")
            self.call_api("POST", f"/v1/shares/{made['id']}/send", **practice)
            self.drain("SendQueue", "send-worker")

        def archive() -> None:
            url = self.call_api("GET", f"/v1/public/shares/{sid}/archive", via_cdn=True,
                                token=token["access_token"])["url"]
            if self.http.get(url, timeout=60).status_code != 200:
                raise SystemExit("cost: the archive's download")

        measure("preview-share", lambda: self.call_api("POST", "/v1/shares/preview", **practice,
                                                       json={"recipient": RECIPIENT}))
        measure("get-share (the practice's view, with its events)", lambda: self.call_api(
            "GET", f"/v1/shares/{sid}", **practice))
        listed = []
        measure("list-shares", lambda: listed.extend(self.call_api("GET", "/v1/shares?limit=20", **practice)["shares"]))
        measured[-1] = (f"list-shares (a page of {len(listed)})", measured[-1][1])
        measure("archive-url and its download", archive)  # before the resend, which ends the session
        measure("resend-share (a new SMS code)", lambda: self.call_api("POST", f"/v1/shares/{sid}/resend", **practice))
        measure("feedback: an SES bounce of the share's email", lambda: self.bounce(sid))
        measure("revoke-share", lambda: self.call_api("DELETE", f"/v1/shares/{sid}", **practice))
        measure("an upload share: create, 2 PUTs of 0.5 MB, send, send-worker", upload)

        waiting = self.call_api("POST", "/v1/shares", **practice, json={"recipient": RECIPIENT, "documents": [
            {"filename": "Befund.pdf", "content_type": "application/pdf", "size": 1000, "sha256": "0" * 64}]})
        self.pump()
        measure("upload-url (a fresh upload URL)", lambda: self.call_api(
            "POST", f"/v1/shares/{waiting['id']}/documents/{waiting['documents'][0]['id']}/upload-url", **practice))
        measure("list-webhooks", lambda: self.call_api("GET", "/v1/webhooks", **practice))
        replied = self.call_api("POST", "/v1/shares", **practice, json={
            "recipient": {"email": PATIENT, "language": "de"}, "auth": {"method": "manual"}, "allow_reply": True,
            "documents": [{"filename": "Formular.pdf", "content_type": "application/pdf",
                           "content_base64": base64.b64encode(documents[0]).decode()}]})
        patient = self.call_api("POST", f"/v1/public/shares/{replied['id']}/verify", via_cdn=True,
                                json={"code": replied["code"]})["access_token"]
        self.pump()
        signed = b"%PDF-1.7 signed " + secrets.token_bytes(100_000)

        def reply() -> None:
            started = self.call_api("POST", f"/v1/public/shares/{replied['id']}/replies", via_cdn=True, token=patient,
                                    json={"message": "Anbei unterschrieben.", "files": [
                                        {"filename": "Einwilligung.pdf", "content_type": "application/pdf",
                                         "size": len(signed), "sha256": hashlib.sha256(signed).hexdigest()}]})
            upload = started["files"][0]
            if self.http.put(upload["upload_url"], data=signed, headers=upload["upload_headers"], timeout=60).status_code != 200:
                raise SystemExit("cost: the reply's upload")
            self.call_api("POST", f"/v1/public/shares/{replied['id']}/replies/{started['id']}/submit", via_cdn=True,
                          token=patient)
            replies.append(started["id"])

        def read_replies() -> None:
            self.call_api("GET", f"/v1/shares/{replied['id']}/replies", **practice)
            url = self.call_api("GET", f"/v1/shares/{replied['id']}/replies/{replies[0]}/files/0", **practice)["url"]
            if self.http.get(url, timeout=60).content != signed:
                raise SystemExit("cost: the reply's file")

        replies: list[str] = []
        measure("reply: the patient's message and a 100 KB file (start, its PUT, submit)", reply)
        measure("replies: the practice reads them, and downloads the file", read_replies)
        return measured

    def bounce(self, share_id: str) -> None:
        """SES's bounce of the share's email, through SNS to the feedback function."""
        emails = [m for m in self.moto.data().get("ses", {}).get("Message", []) if PATIENT in json.dumps(m.get("destinations"))]
        bounce = {"eventType": "Bounce", "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                                                   "feedbackId": f"fb-{emails[-1]['id']}",
                                                   "bouncedRecipients": [{"emailAddress": PATIENT, "status": "5.1.1"}]},
                  "mail": {"messageId": emails[-1]["id"], "destination": [PATIENT]}}
        answer = self.functions.invoke("feedback", sns_event(self.stack.ref("SesFeedbackTopic"), bounce))
        if answer != {"recorded": 1}:
            raise SystemExit(f"cost: feedback answered {answer} for {share_id}")

    def drain(self, queue_logical: str, handler: str) -> None:
        """A queue through the function its SQS event source feeds, as Lambda's poller does."""
        function = self.functions.functions[handler]
        batch = int(next(e for e in function.events.values() if e["Type"] == "SQS")["Properties"].get("BatchSize", 10))
        sqs = self.client("sqs", POLLER_KEY)
        queue = self.stack.ref(queue_logical)
        while self.queued(queue):  # the poller's empty receives are counted apart: fixed_lines
            messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=batch, AttributeNames=["All"])["Messages"]
            answer = self.functions.invoke(handler, sqs_event(self.stack, queue_logical, messages))
            if answer.get("batchItemFailures"):
                raise SystemExit(f"cost: {handler} asked for retries: {answer}")
            sqs.delete_message_batch(QueueUrl=queue, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])

    def idle_sweep(self) -> None:
        self.functions.invoke("sweep", schedule_event(self.stack, self.functions.functions["sweep"]))

    def items_of(self, share_id: str) -> list[dict]:
        out = self.dynamodb.query(TableName=self.table, KeyConditionExpression="pk = :p",
                                  ExpressionAttributeValues={":p": {"S": f"SHARE#{share_id}"}})["Items"]
        # MSG# items (a provider's message id to its share) are keyed by the message id.
        scan = self.dynamodb.scan(TableName=self.table, FilterExpression="begins_with(pk, :m) AND share_id = :s",
                                  ExpressionAttributeValues={":m": {"S": "MSG#"}, ":s": {"S": share_id}})
        return out + scan["Items"]

    def stored_size(self, item: dict) -> int:
        """An item's stored bytes: itself and its entries in the indexes, 100 bytes of
        overhead each (DynamoDB's storage rule)."""
        total = item_size(item) + 100
        for index in self.indexes:
            entry = index_entry(item, ["pk", "sk"], index)
            if entry is not None:
                total += item_size(entry) + 100
        return total

    # -- counting ---------------------------------------------------------------------------------

    def counts(self, since: tuple[int, int, int], until: tuple[int, int, int], api: slice, cdn: slice) -> Counts:
        c = Counts(webhook_posts=until[2] - since[2])
        handler_of = {key_of(h): h for h in self.functions.functions}
        with open(self.record, encoding="utf-8") as f:
            lines = [json.loads(x) for x in list(f)[since[0]:until[0]]]
        for line in lines:
            who = line["key"]
            if who in SETUP_KEYS or who == TTL_KEY:
                continue
            if "unrecorded" in line:
                raise SystemExit(f"cost: moto could not record a {line['service']} {line['operation']}: {line['unrecorded']}")
            presigned = "X-Amz-Credential" in line["query"]
            if who != POLLER_KEY and who not in handler_of:
                raise SystemExit(f"cost: a request signed with {who!r}, no function's key: {line['service']} {line['operation']}")
            who = "Lambda's SQS poller" if who == POLLER_KEY else handler_of[who]
            if presigned:
                who = f"browser ({who}'s URL)"
            service, op = line["service"], line["operation"]
            if service == "s3":
                op = s3_kind(line)
            elif service == "ses" and op.startswith("POST ") and op.endswith("/outbound-emails"):
                op = "SendEmail"
            key = (who, service, op)
            c.requests[key] += 1
            if service == "dynamodb":
                rru, wru = dynamodb_units(line)
                c.rru[key] += rru
                c.wru[key] += wru
            if presigned and op == "GetObject":  # to the patient's browser: out to the internet
                c.bytes_out[key] += line["bytes_out"]
            if service == "dynamodb" and line["status"] != 200:
                c.dynamodb_failed += 1
            if service == "sqs":
                c.sqs_billed[key] += sqs_billed(op, line["bytes_in"], line["bytes_out"])
            if service == "ses" and op == "SendEmail":
                c.emails += 1
        for call in self.functions.calls[since[1]:until[1]]:
            c.invocations[call.handler] += 1
            c.log_bytes[call.handler] += call.log_bytes
            c.cpu_ns[call.handler] += call.cpu_ns
        for sent, answered in self.api_log[api]:
            c.api_requests += 1
            c.api_billed += http_api_billed(sent, answered)
        for ran_function, served in self.cdn_log[cdn]:
            c.cdn_requests += 1
            c.cdn_function_runs += ran_function
            c.cdn_bytes += served
        return c


# ---------------------------------------------------------------------------------------------
# Prices, and the tables
# ---------------------------------------------------------------------------------------------

GB = 1024**3


@dataclass
class Line:
    what: str
    quantity: float  # per 1,000 shares, or per month for a fixed line
    price_key: str
    basis: str  # counted, or what it assumes


class Prices:
    def __init__(self, path: Path) -> None:
        self.doc = tomllib.loads(path.read_text())
        self.path = path

    def unit_price(self, key: str) -> float | None:
        entry = self.doc.get(key)
        if not entry or entry.get("price") is None:
            return None
        return float(entry["price"]) / float(entry.get("per", 1))

    def assumed(self, key: str) -> float:
        return float(self.doc["assumed"][key]["value"])


def per_share(c: Counts, shares: int, field_: str, pick=lambda key: True) -> float:
    counter = getattr(c, field_)
    return sum(v for k, v in counter.items() if pick(k)) / shares


VCPU_MB = 1769  # Lambda gives a function one vCPU at 1,769 MB, in proportion below it


def estimated_ms(run: Run, c: Counts, prices: Prices, handler: str, memory_mb: int | None = None) -> float:
    """The function's invocations' duration on Lambda at `memory_mb` (the template's by
    default): the waits, each AWS request it made at the [assumed] latency of its service
    (webhook-sender's POSTs to the practice besides), plus its own work: the CPU it used here,
    stretched by the vCPU share the memory buys, when the functions ran natively; an
    [assumed] few ms when they ran under qemu, whose CPU time says nothing of Lambda's."""
    memory_mb = memory_mb or run.functions.functions[handler].memory_mb
    if run.native:
        total = c.cpu_ns[handler] / 1e6 * max(1.0, VCPU_MB / memory_mb)
    else:
        total = c.invocations[handler] * prices.assumed("invocation_ms")
    for (who, service, _op), n in c.requests.items():
        if who == handler:
            total += n * prices.assumed(f"{service}_ms")
    if handler == "webhook-sender":
        total += c.webhook_posts * prices.assumed("webhook_post_ms")
    return total


def share_lines(run: Run, c: Counts, shares: int, prices: Prices, stored: list | None = None) -> list[Line]:
    """What `shares` shares' counts come to per 1,000 shares; `stored` is what they kept in S3
    and DynamoDB and for how long (the run's shares' by default)."""
    stored = run.stored if stored is None else stored
    k = 1000 / shares
    memory = {f.handler: f.memory_mb / 1024 for f in run.functions.functions.values()}
    gb_s = sum(estimated_ms(run, c, prices, h) / 1000 * memory[h] for h in c.invocations)
    invocations = sum(c.invocations.values())
    log_bytes = (sum(c.log_bytes.values()) + invocations * prices.assumed("platform_log_bytes")
                 + c.api_requests * prices.assumed("api_access_log_bytes"))
    retention_days = int(run.stack.parameters["LogRetentionDays"])
    s3 = lambda ops: sum(n for (who, svc, op), n in c.requests.items() if svc == "s3" and op in ops)  # noqa: E731
    table_gb_month = sum(b * d for kind, b, d in stored if kind == "table") / DAYS_PER_MONTH / GB
    s3_gb_month = sum(b * d for kind, b, d in stored if kind == "s3") / DAYS_PER_MONTH / GB
    return [
        Line("Lambda requests", invocations * k, "lambda_requests", "counted"),
        Line("Lambda duration (GB-s, arm64)", gb_s * k, "lambda_gb_second_arm64",
             ("CPU measured natively, waits assumed" if run.native else "assumed") +
             ": [assumed] latencies × the calls counted, at the template's memory"),
        Line("Lambda init, were every invocation a cold start (GB-s, arm64)",
             sum(n * memory[h] for h, n in c.invocations.items()) * prices.assumed("init_ms") / 1000 * k,
             "lambda_gb_second_arm64", "assumed: [assumed] init_ms; an upper bound (at a few shares an hour, most are)"),
        Line("HTTP API requests (512 KB each)", c.api_billed * k, "http_api_requests",
             "counted; the answer's bytes metered too"),
        Line("DynamoDB write request units", per_share(c, shares, "wru") * 1000, "dynamodb_write_request_units",
             "counted (item sizes)"),
        Line("DynamoDB read request units", per_share(c, shares, "rru") * 1000, "dynamodb_read_request_units",
             "counted (item sizes)"),
        Line("DynamoDB storage (GB-month)", table_gb_month * 1000 / shares, "dynamodb_storage",
             "counted: items and index entries until their TTL"),
        Line("DynamoDB point-in-time recovery (GB-month)", table_gb_month * 1000 / shares, "dynamodb_pitr",
             "as storage"),
        Line("S3 PUT, COPY, POST, LIST requests", s3(S3_CLASS_A) * k, "s3_class_a", "counted"),
        Line("S3 GET and HEAD requests", s3(S3_CLASS_B) * k, "s3_class_b", "counted"),
        Line("S3 storage (GB-month)", s3_gb_month * 1000 / shares, "s3_storage", "counted: until the link ends"),
        Line("S3 data out to the internet (GB)", per_share(c, shares, "bytes_out") * 1000 / GB, "s3_transfer_out",
             "counted: presigned downloads"),
        Line("SES emails", c.emails * k, "ses_email", "counted"),
        Line("SMS to Switzerland (+41), segments", c.sms_segments * k, "sms_switzerland", "counted"),
        Line("SQS FIFO requests (64 KB each)", per_share(c, shares, "sqs_billed") * 1000, "sqs_fifo_requests",
             "counted, the poller's too"),
        Line("CloudFront HTTPS requests", c.cdn_requests * k, "cloudfront_https_requests", "counted"),
        Line("CloudFront Functions runs", c.cdn_function_runs * k, "cloudfront_functions", "counted"),
        Line("CloudFront data out (GB)", c.cdn_bytes * k / GB, "cloudfront_transfer_out", "counted (gzip for text)"),
        Line("CloudWatch Logs ingested (GB)", log_bytes * k / GB, "logs_ingest",
             "counted, + [assumed] Lambda's and API Gateway's lines"),
        Line(f"CloudWatch Logs stored (GB-month, kept {retention_days} days)",
             log_bytes * k / GB * retention_days / DAYS_PER_MONTH, "logs_storage",
             "as ingested: an upper bound (stored compressed)"),
    ]


def fixed_lines(run: Run, idle: Counts, prices: Prices) -> list[Line]:
    minutes = DAYS_PER_MONTH * 24 * 60
    sweeps = minutes / 5
    sweep = run.functions.functions["sweep"]
    sweep_ms = estimated_ms(run, idle, prices, "sweep") / max(1, idle.invocations["sweep"])
    pollers = [f for f in run.functions.functions.values() if any(e["Type"] == "SQS" for e in f.events.values())]
    alarms = sum(1 for r in run.stack.resources.values() if r["Type"] == "AWS::CloudWatch::Alarm")
    sweep_logs = (sum(idle.log_bytes.values()) + prices.assumed("platform_log_bytes")) * sweeps / GB
    return [
        Line("sweep: EventBridge Scheduler runs (every 5 minutes)", sweeps, "scheduler_invocations", "template"),
        Line("sweep: Lambda requests", sweeps, "lambda_requests", "template"),
        Line("sweep: Lambda duration (GB-s, arm64)", sweeps * sweep_ms / 1000 * sweep.memory_mb / 1024,
             "lambda_gb_second_arm64", ("CPU measured natively, " if run.native else "") + "waits assumed"),
        Line("sweep: DynamoDB read request units", sweeps * per_share(idle, 1, "rru"), "dynamodb_read_request_units",
             "counted"),
        Line("sweep: CloudWatch Logs ingested (GB)", sweep_logs, "logs_ingest", "counted"),
        Line(f"SQS: Lambda's empty receives on {len(pollers)} queues", len(pollers) * prices.assumed("sqs_idle_receives"),
             "sqs_fifo_requests", "assumed: [assumed] sqs_idle_receives per queue"),
        Line(f"CloudWatch alarms ({alarms}, standard resolution)", alarms, "cloudwatch_alarm", "template"),
    ]


def money(value: float | None) -> str:
    return "no price" if value is None else f"{value:,.2f}"


def quantity(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.3g}"


def print_lines(title: str, lines: list[Line], prices: Prices) -> float | None:
    print(f"\n{title}\n")
    print("| item | quantity | USD | basis |")
    print("|---|---|---|---|")
    total, complete = 0.0, True
    for line in lines:
        unit = prices.unit_price(line.price_key)
        cost = None if unit is None else unit * line.quantity
        complete &= cost is not None
        total += cost or 0.0
        print(f"| {line.what} | {quantity(line.quantity)} | {money(cost)} | {line.basis} |")
    print(f"| **total** | | **{total:,.2f}**{'' if complete else ' + the lines without a price'} | |")
    return total if complete else None


def print_calls(c: Counts, shares: int) -> None:
    """Per function: invocations and the AWS requests each share caused."""
    print(f"\nAWS requests per share (mean of {shares}), by who made them\n")
    print("| who | invocations | requests | DynamoDB RRU | DynamoDB WRU |")
    print("|---|---|---|---|---|")
    by_who: dict[str, list[str]] = defaultdict(list)
    for (who, service, op), n in sorted(c.requests.items()):
        by_who[who].append(f"{service} {op} {n / shares:g}")
    for who in sorted(set(by_who) | set(c.invocations)):
        rru = sum(v for (w, *_), v in c.rru.items() if w == who) / shares
        wru = sum(v for (w, *_), v in c.wru.items() if w == who) / shares
        print(f"| {who} | {c.invocations.get(who, 0) / shares:g} | {'; '.join(by_who.get(who, []))} | {rru:g} | {wru:g} |")
    print(f"\nDynamoDB requests that failed (a condition, a cancelled transaction), billed as if they wrote: "
          f"{c.dynamodb_failed / shares:g} per share.")


def print_operations(run: Run, measured: list[tuple[str, Counts]], prices: Prices) -> None:
    print("\nOther operations, each once on a typical share, with the webhook deliveries of what they "
          "record (storage aside)\n")
    print("| operation | invocations | AWS requests | DynamoDB RRU | DynamoDB WRU | USD per 1,000 |")
    print("|---|---|---|---|---|---|")
    for name, c in measured:
        calls = Counter()
        for (_who, service, op), n in c.requests.items():
            calls[f"{service} {op}"] += n
        invocations = ", ".join(f"{h} {n}" for h, n in sorted(c.invocations.items()))
        lines = share_lines(run, c, 1, prices, stored=[])
        usd = sum((prices.unit_price(line.price_key) or 0) * line.quantity for line in lines
                  if "cold start" not in line.what)
        unpriced = sorted({line.what.split(" (")[0].split(",")[0] for line in lines
                           if line.quantity and prices.unit_price(line.price_key) is None})
        print(f"| {name} | {invocations} | {'; '.join(f'{k} {v}' for k, v in sorted(calls.items()))} | "
              f"{sum(c.rru.values()):g} | {sum(c.wru.values()):g} | {usd:.2f}"
              f"{''.join(f' + {u}' for u in unpriced)} |")


def native_artifacts(binary: Path) -> Path:
    """sam build's layout (<LogicalId>/bootstrap) around one native binary, which every
    function is (lambda/Cargo.toml)."""
    stack = Stack(REPO / "template.yaml", {"SenderEmail": SENDER})
    folder = new_log_dir("sealpost-cost-native-")
    for function in stack.functions().values():
        (folder / function.logical_id).mkdir()
        (folder / function.logical_id / "bootstrap").symlink_to(binary.resolve())
    return folder


def print_memory(run: Run, c: Counts, prices: Prices) -> None:
    """Each function at other memory sizes, from the CPU it used here (native only): `c` is all
    the run counted, the sweep's runs and the other operations included."""
    if not run.native:
        print("\nMemory sizes: not modelled (the functions ran under qemu, whose CPU time is not "
              "Lambda's: `--native BIN`).")
        return
    sizes = (128, 256, 512, 1024, 1769)
    print(f"\nEach function's invocation at other memory sizes: its CPU as measured here ({platform.machine()}, native), "
          "stretched by Lambda's vCPU share, plus its AWS calls at the [assumed] latencies; "
          "GB-s per 1,000 invocations in brackets\n")
    print("| function | invocations | template MB | peak RSS MiB | CPU ms | " +
          " | ".join(f"ms at {m} MB" for m in sizes) + " |")
    print("|---|---|---|---|---|" + "---|" * len(sizes))
    for handler in sorted(h for h, n in c.invocations.items() if n > 0):
        n = c.invocations[handler]
        cells = []
        for m in sizes:
            ms = estimated_ms(run, c, prices, handler, m) / n
            cells.append(f"{ms:.1f} ({ms / 1000 * m / 1024 * 1000:.2f})")
        print(f"| {handler} | {n} | {run.functions.functions[handler].memory_mb} | "
              f"{run.functions.peak_rss.get(handler, 0):.1f} | {c.cpu_ns[handler] / 1e6 / n:.2f} | " + " | ".join(cells) + " |")
    unmeasured = sorted(set(run.functions.functions) - {h for h, n in c.invocations.items() if n > 0})
    print(f"\nNot run here, so not measured: {', '.join(unmeasured)}.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shares", type=int, default=20, help="how many typical shares to carry (default 20)")
    parser.add_argument("--artifacts", type=Path, default=default_artifacts(), help="sam build's output")
    parser.add_argument("--sealpost", type=Path, default=REPO / "target/debug/sealpost",
                        help="the operator's CLI, built with the AWS adapters")
    parser.add_argument("--prices", type=Path, default=REPO / "bench/prices.toml")
    parser.add_argument("--json", type=Path, help="also write the counts here")
    parser.add_argument("--keep-logs", action="store_true", help="keep the functions' output and moto's record")
    parser.add_argument("--native", type=Path, metavar="BIN",
                        help="run this native build of sealpost-lambda as every function instead of --artifacts "
                             "(the same calls; its CPU time models memory sizes)")
    args = parser.parse_args()
    if args.shares < 1 or args.shares > 100:
        parser.error("--shares: 1 to 100")
    prices = Prices(args.prices)
    if args.native:
        args.artifacts = native_artifacts(args.native)
    run = Run(args)
    ok = False
    try:
        run.setup()
        start, api0, cdn0 = run.mark(), len(run.api_log), len(run.cdn_log)
        t0 = time.monotonic()
        sms_before = len(run.sms_texts())
        run.share_life(args.shares)
        texts = run.sms_texts()[sms_before:]
        middle, api1, cdn1 = run.mark(), len(run.api_log), len(run.cdn_log)
        run.idle_sweep()
        end = run.mark()
        shares = run.counts(start, middle, slice(api0, api1), slice(cdn0, cdn1))
        shares.sms_segments = sum(sms_segments(t) for t in texts)
        idle = run.counts(middle, end, slice(api1, api1), slice(cdn1, cdn1))
        take_off(shares, idle, run.sweeps)
        log(f"cost: {args.shares} shares carried in {time.monotonic() - t0:.0f} s")
        operations = run.operations()
        everything = run.counts(start, run.mark(), slice(api0, None), slice(cdn0, None))
        ok = True
    finally:
        run.stop()
        if args.native:
            shutil.rmtree(args.artifacts, ignore_errors=True)  # symbolic links only
        if ok and not args.keep_logs:
            shutil.rmtree(run.log_dir, ignore_errors=True)
        else:
            log(f"cost: the functions' output and moto's record are in {run.log_dir}")
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    print(f"# What a share costs on AWS ({prices.doc.get('region', '?')}), counted {date}")
    print(f"\nPrices: {args.prices.relative_to(REPO) if args.prices.is_relative_to(REPO) else args.prices} "
          f"({prices.doc.get('currency', 'USD')}); each line's page and date are there.")
    print_calls(shares, args.shares)
    per_1000 = print_lines("Per 1,000 typical shares (2 documents, 1 MB, email and SMS code, verified once, both "
                           "downloaded, one webhook endpoint)", share_lines(run, shares, args.shares, prices), prices)
    fixed = print_lines("Fixed, per month", fixed_lines(run, idle, prices), prices)
    print_operations(run, operations, prices)
    print_memory(run, everything, prices)
    missing = sorted({line.price_key for line in share_lines(run, shares, args.shares, prices) + fixed_lines(run, idle, prices)
                      if prices.unit_price(line.price_key) is None})
    if missing:
        print(f"\nNo price in {args.prices.name} for: {', '.join(missing)}.")
    print("\nDynamoDB's units are counted by these rules:\n" + DYNAMODB_RULES)
    if args.json:
        args.json.write_text(json.dumps({
            "shares": args.shares, "per_1000": per_1000, "fixed_per_month": fixed,
            "requests": {" ".join(k): v for k, v in shares.requests.items()},
            "invocations": dict(shares.invocations),
        }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
