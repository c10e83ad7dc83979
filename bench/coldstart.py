#!/usr/bin/env python3
"""Cold starts of the Lambda binaries, against a hello-world Lambda measured in the same run.

    python3 bench/coldstart.py --target-dir /work/bench-target [--runs 20] [--functions a,b]
        [--against OTHER_TARGET_DIR]
    python3 bench/coldstart.py --arm64 [--runs 10]     # the arm64 build, under qemu

Assumes the release binaries are built (it says which are missing), from lambda/ as
`sam build` does, so that lambda/.cargo/config.toml (the Lambda builds' settings) applies:

    cd lambda && CARGO_TARGET_DIR=/work/bench-target nice -n 10 cargo build --release \\
        --locked -p sealpost-lambda -p hello

One binary, `sealpost-lambda`, is every function: each start gets the function's name as
`_HANDLER`, as Lambda passes a function's Handler. With --arm64 the binaries are the aarch64
ones `cargo lambda build --release --arm64` makes (target/lambda/<bin>/bootstrap, what
`sam build` copies; bench/run builds them), run under qemu-aarch64: compare ratios only.

--against measures a second build's binaries in the same rounds (e.g. another profile, or the
commit before a change) and adds a table comparing the two: separate runs on a shared machine
drift by 10% and more, which hides smaller effects.

Method. The script serves the Lambda Runtime API itself (stdlib HTTP on a free loopback port)
and starts moto's server (infra/moto_server.py, from a virtualenv holding moto[server]) with
the table, bucket, SES identity and configuration set, webhook queue and SSM pepper a
deployment has. Each cold start execs the binary with the environment Lambda gives a function
of template.yaml (AWS_LAMBDA_*, region, dummy credentials, TABLE_NAME, BUCKET_NAME, PUBLIC_URL,
the pepper, AWS_ENDPOINT_URL at moto), hands it events/<function>.json as its one invocation,
and kills it once the answer is in. Two times per start, on the emulator's clock:

    init  = exec -> the first GET /runtime/invocation/next  (Lambda's "Init Duration")
    first = exec -> the POST of the first answer (response or error)

Init includes everything a function does before it polls: telemetry, reading the
configuration, the AWS SDK's configuration and its clients (one HTTPS client trusting the
Amazon roots compiled into the binary; the webhook client is built on first use), and,
in the "SSM" column, the pepper read from SSM (one GetParameter round trip to moto); the main
columns hand it the pepper inline (SEALPOST_PEPPER) to show the binary's own cost. `cleanup`
reads no pepper: both its columns measure the same start. First adds the handler's first work
on fresh connections (the events name a share and an API key that do not exist: a 4xx is a
handled event; a 5xx, a handler error, an init error or a crash fails the run, exit status 1).

Every binary gets one unmeasured warm-up start (page cache), then the runs go round-robin over
the binaries in a shuffled order per round, so a neighbour's load spreads over all of them.

Caveats. This is x86_64 on a shared 2-core machine; Lambda runs arm64 (provided.al2023) in a
Firecracker microVM whose init also loads the code and starts the sandbox: compare the ratio
to hello-world (published: ~13 ms init for a Rust hello-world on arm64), not the milliseconds.
moto on loopback answers in a few milliseconds of Python; real SSM (with KMS decryption) and
DynamoDB in a region answer in their own time. The binaries' sizes are those cargo leaves in
target/release (the release profile strips symbols): what cargo-lambda zips as `bootstrap`.
Markdown goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "rehearsal"))
import harness  # noqa: E402
from harness import RuntimeApiHandler  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
REGION = "eu-central-2"
ACCOUNT = "123456789012"  # moto's default account
RUNTIME = "/2018-06-01/runtime"
HELLO = "hello"
LAMBDA_BIN = "sealpost-lambda"  # every function (lambda/)
RATIO_LIMIT = 1.5

# What template.yaml gives the functions (its Globals and each function's own Environment).
TABLE, BUCKET, PEPPER_PARAMETER = "sealpost-bench", "sealpost-bench-docs", "/sealpost/pepper"
CONFIGURATION_SET, QUEUE = "sealpost-bench-feedback", "sealpost-bench-webhooks.fifo"
SENDER = "no-reply@sealpost.invalid"  # sealpost::admin::DEFAULT_SENDER
MEMORY_MB = {"create-share": 1024, "send-worker": 1024}  # MemorySize; 256 otherwise
SES_CONFIGURATION_SET = {"create-share", "resend-share", "send-worker"}
WEBHOOK_QUEUE = {"webhook-fanout", "webhook-sender"}
SEND_QUEUE, SENDS = "sealpost-bench-sends.fifo", {"send-share", "send-worker", "sweep"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The Lambda Runtime API
# ---------------------------------------------------------------------------------------------


@dataclass
class Invocation:
    """One cold start: the event handed out, and what the runtime did, on the emulator's clock."""

    event: bytes
    function_arn: str
    timeout_s: float
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    t_next: int | None = None  # perf_counter_ns of the first GET /next
    t_answer: int | None = None  # of the first answer POSTed
    kind: str | None = None  # "response", "error" or "init_error"
    body: bytes = b""
    handed_out: bool = False
    answered: threading.Event = field(default_factory=threading.Event)
    # A runtime polls again after answering; Lambda would freeze it there. The poll is held
    # until the run ends (the process is killed by then).
    ended: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


class RuntimeApi(ThreadingHTTPServer):
    """The Runtime API for one cold start, on its own free port: a request the previous,
    killed, process left in a socket buffer can never be taken for this one's."""

    daemon_threads = True

    def __init__(self, invocation: Invocation) -> None:
        super().__init__(("127.0.0.1", 0), RuntimeHandler)
        self.current = invocation
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a killed runtime's connection
            super().handle_error(request, client_address)


class RuntimeHandler(RuntimeApiHandler):
    server: RuntimeApi

    def do_GET(self) -> None:
        now = time.perf_counter_ns()
        inv = self.server.current
        if self.path != f"{RUNTIME}/invocation/next":
            self._send(404, b'{"errorMessage":"not found"}')
            return
        with inv.lock:
            first = not inv.handed_out
            if first:
                inv.handed_out, inv.t_next = True, now
        if not first:
            inv.ended.wait()
            self.close_connection = True
            return
        deadline_ms = int(time.time() * 1000 + inv.timeout_s * 1000)
        self._send(
            200,
            inv.event,
            {
                "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": inv.function_arn,
                "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Sampled=0",
            },
        )

    def do_POST(self) -> None:
        now = time.perf_counter_ns()
        body = self._read_body()
        inv = self.server.current
        if self.path == f"{RUNTIME}/init/error":
            kind = "init_error"
        elif self.path == f"{RUNTIME}/invocation/{inv.request_id}/response":
            kind = "response"
        elif self.path == f"{RUNTIME}/invocation/{inv.request_id}/error":
            kind = "error"
        else:
            self._send(404, b'{"errorMessage":"unknown request id"}')
            return
        with inv.lock:
            if inv.kind is None:
                inv.kind, inv.body, inv.t_answer = kind, body, now
        self._send(202, b'{"status":"OK"}')
        inv.answered.set()


# ---------------------------------------------------------------------------------------------
# moto: started on loopback and provisioned as template.yaml provisions AWS
# ---------------------------------------------------------------------------------------------


def find_moto_python(given: str | None) -> Path:
    """A Python with moto[server]: the one given, else ./.venv (tests/run makes it), else the
    main checkout's .venv when this is a git worktree."""
    candidates = [Path(given)] if given else [REPO / ".venv/bin/python"]
    if not given:
        try:
            common = subprocess.run(
                ["git", "-C", str(REPO), "rev-parse", "--path-format=absolute", "--git-common-dir"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()
            candidates.append(Path(common).parent / ".venv/bin/python")
        except (OSError, subprocess.CalledProcessError):
            pass
    for python in candidates:
        if python.exists():
            return python
    sys.exit(f"coldstart: no Python with moto[server] at {', '.join(map(str, candidates))}: "
             "run tests/run once (it makes ./.venv) or pass --moto-python")


class Moto(harness.Moto):
    """moto's server on a free loopback port (the rehearsal's), with calls to provision it.
    Requests carry a SigV4-shaped Authorization header only for moto to see the service and
    region: it checks no signature."""

    def __init__(self, python: Path) -> None:
        self.log_dir = Path(tempfile.mkdtemp(prefix="coldstart-moto-"))
        super().__init__(str(python), self.log_dir)

    def call(self, service: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
        auth = (f"AWS4-HMAC-SHA256 Credential=bench/20260101/{REGION}/{service}/aws4_request, "
                "SignedHeaders=host, Signature=0")
        request = urllib.request.Request(
            self.url + path, data=body if method != "GET" else None, method=method,
            headers={"Authorization": auth, **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.read()
        except urllib.error.HTTPError as e:
            sys.exit(f"coldstart: provisioning moto, {service} {method} {path}: {e.code} {e.read()[:500]!r}")

    def json_call(self, service: str, target: str, content_type: str, payload: dict) -> dict:
        out = self.call(service, "POST", "/", json.dumps(payload).encode(),
                        {"X-Amz-Target": target, "Content-Type": content_type})
        return json.loads(out or b"{}")

    def provision(self, pepper_b64: str) -> tuple[str, str]:
        """The table (as shared/src/aws/provision.rs makes it), the bucket, the SES sender and
        configuration set, the webhook and send queues and the pepper parameter; returns the
        queues' URLs."""
        dynamo = "application/x-amz-json-1.0"
        attrs = [{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk")]

        def keys(pk: str, sk: str) -> list[dict]:
            return [{"AttributeName": pk, "KeyType": "HASH"}, {"AttributeName": sk, "KeyType": "RANGE"}]

        self.json_call("dynamodb", "DynamoDB_20120810.CreateTable", dynamo, {
            "TableName": TABLE,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": attrs,
            "KeySchema": keys("pk", "sk"),
            "GlobalSecondaryIndexes": [
                {"IndexName": "gsi1", "KeySchema": keys("gsi1pk", "gsi1sk"),
                 "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["body"]}},
                {"IndexName": "gsi2", "KeySchema": keys("gsi2pk", "gsi2sk"),
                 "Projection": {"ProjectionType": "KEYS_ONLY"}},
            ],
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        })
        self.json_call("dynamodb", "DynamoDB_20120810.UpdateTimeToLive", dynamo, {
            "TableName": TABLE, "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "ttl"},
        })
        self.call("s3", "PUT", f"/{BUCKET}", (
            '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<LocationConstraint>{REGION}</LocationConstraint></CreateBucketConfiguration>").encode(),
                  {"Content-Type": "application/xml"})
        self.call("ses", "POST", "/v2/email/identities", json.dumps({"EmailIdentity": SENDER}).encode(),
                  {"Content-Type": "application/json"})
        self.call("ses", "POST", "/v2/email/configuration-sets",
                  json.dumps({"ConfigurationSetName": CONFIGURATION_SET}).encode(), {"Content-Type": "application/json"})
        queue = self.json_call("sqs", "AmazonSQS.CreateQueue", "application/x-amz-json-1.0", {
            "QueueName": QUEUE, "Attributes": {"FifoQueue": "true", "VisibilityTimeout": "60"},
        })
        sends = self.json_call("sqs", "AmazonSQS.CreateQueue", "application/x-amz-json-1.0", {
            "QueueName": SEND_QUEUE, "Attributes": {"FifoQueue": "true", "VisibilityTimeout": "60"},
        })
        self.json_call("ssm", "AmazonSSM.PutParameter", "application/x-amz-json-1.1", {
            "Name": PEPPER_PARAMETER, "Type": "SecureString", "Value": pepper_b64,
        })
        return queue["QueueUrl"], sends["QueueUrl"]


# ---------------------------------------------------------------------------------------------
# Cold starts
# ---------------------------------------------------------------------------------------------


@dataclass
class Job:
    """One binary in one pepper mode, and its samples (milliseconds)."""

    name: str
    binary: Path
    env: dict[str, str]
    event: bytes
    http_event: bool
    init_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    answers: set[str] = field(default_factory=set)
    failure: str | None = None


def lambda_env(name: str, moto_url: str, queues: tuple[str, str], pepper_b64: str, ssm: bool) -> dict[str, str]:
    """What Lambda and template.yaml put in a function's environment (nothing inherited: no
    HOME, so no ~/.aws files, as on Lambda)."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "_HANDLER": name,
        "AWS_LAMBDA_FUNCTION_NAME": f"sealpost-{name}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_MB.get(name, 256)),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/sealpost-{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"2026/01/01/[$LATEST]{secrets.token_hex(16)}",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "AWS_ENDPOINT_URL": moto_url,
        "TABLE_NAME": TABLE,
        "BUCKET_NAME": BUCKET,
        "PUBLIC_URL": "https://docs.example.ch",
        "RUST_LOG": "info",
    }
    if ssm:
        env["PEPPER_PARAMETER"] = PEPPER_PARAMETER
    else:
        env["SEALPOST_PEPPER"] = pepper_b64
    if name in SES_CONFIGURATION_SET:
        env["SES_CONFIGURATION_SET"] = CONFIGURATION_SET
    if name in WEBHOOK_QUEUE:
        env["WEBHOOK_QUEUE_URL"] = queues[0]
    if name in SENDS:
        env["SEND_QUEUE_URL"] = queues[1]
    return env


def answer_of(job: Job, inv: Invocation) -> tuple[str, bool]:
    """A short name for the answer, and whether it counts as a handled event."""
    if inv.kind != "response":
        return inv.kind or "none", False
    if not job.http_event:
        return "ok", True
    try:
        status = int(json.loads(inv.body)["statusCode"])
    except (ValueError, KeyError, TypeError):
        return "unreadable", False
    return str(status), status < 500


RUNNER: list[str] = []  # qemu-aarch64 for --arm64 on another machine


def cold_start(job: Job, timeout_s: float) -> None:
    """Execs the binary, lets it answer one event, kills it; records the sample or the failure."""
    inv = Invocation(job.event, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:sealpost-{job.name}", timeout_s)
    api = RuntimeApi(inv)
    env = {**job.env, "AWS_LAMBDA_RUNTIME_API": api.address}
    with tempfile.TemporaryFile() as output:
        t0 = time.perf_counter_ns()
        process = subprocess.Popen([*RUNNER, str(job.binary)], env=env, cwd=job.binary.parent,
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while not inv.answered.wait(0.02):
            if process.poll() is not None or time.monotonic() > deadline:
                break
        process.kill()
        process.wait()
        inv.ended.set()
        api.stop()
        answer, handled = answer_of(job, inv)
        if handled and inv.t_next is not None and inv.t_answer is not None:
            job.init_ms.append((inv.t_next - t0) / 1e6)
            job.first_ms.append((inv.t_answer - t0) / 1e6)
            job.answers.add(answer)
            return
        output.seek(0)
        tail = output.read().decode(errors="replace")[-2000:]
        if answer == "none":
            exited = process.returncode is not None and process.returncode != -9  # -9: killed by us
            why = f"exited with status {process.returncode} before answering" if exited else f"no answer within {timeout_s:g} s"
        else:
            why = f"answered {answer}"
        job.failure = f"{why}\n--- answer: {inv.body[:1000].decode(errors='replace')}\n--- output:\n{tail}"


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8] if len(values) > 1 else values[0]


def size_mb(binary: Path) -> tuple[float, bool]:
    """Size in MB (10^6 bytes), and whether the binary still has a symbol table."""
    data = binary.read_bytes()
    return len(data) / 1e6, b"\x00.symtab\x00" in data


def fmt(value: float, limit: float | None = None) -> str:
    text = f"{value:.2f}" if value < 10 else f"{value:.1f}"
    return f"**{text}** ⚠" if limit is not None and value > limit else text


def report(jobs: dict[tuple[str, str], Job], names: list[str], args: argparse.Namespace, load: tuple[str, str]) -> None:
    hello = jobs[(HELLO, "inline")]
    hello_init = statistics.median(hello.init_ms)
    print(f"Cold starts through a local Lambda Runtime API (`bench/coldstart.py`): {args.runs} starts per "
          f"binary after one warm-up, round-robin; {'aarch64 under ' + ' '.join(RUNNER[:1]) if RUNNER else os.uname().machine} ({os.cpu_count()} CPUs, load average "
          f"{load[0]} before, {load[1]} after), moto on loopback. Times in ms from exec: *init* to the "
          f"first poll for an event, *first* to the first answer. Pepper inline (`SEALPOST_PEPPER`) "
          f"unless marked SSM (as deployed: read when a request first needs a key, so it shows in "
          f"*first*, and only where the event's request needs one). ⚠: an init over "
          f"{RATIO_LIMIT:g}× hello-world's.\n")
    print("| function | binary MB | init median | init p90 | init ÷ hello | first median | first p90 "
          "| init, SSM pepper | ÷ hello | first, SSM pepper | first answer |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for name in [HELLO, *names]:
        inline, ssm = jobs[(name, "inline")], jobs.get((name, "ssm"))
        mb, _ = size_mb(inline.binary)
        if not inline.init_ms:
            print(f"| {name} | {fmt(mb)} | FAILED | | | | | | | | |")
            continue
        init = statistics.median(inline.init_ms)
        cells = [f"*{name}* (baseline)" if name == HELLO else name, fmt(mb), fmt(init),
                 fmt(p90(inline.init_ms)), fmt(init / hello_init, RATIO_LIMIT),
                 fmt(statistics.median(inline.first_ms)), fmt(p90(inline.first_ms))]
        if ssm is not None and ssm.init_ms:
            ssm_init = statistics.median(ssm.init_ms)
            cells += [fmt(ssm_init), fmt(ssm_init / hello_init, RATIO_LIMIT), fmt(statistics.median(ssm.first_ms))]
        else:
            cells += ["FAILED" if ssm is not None else "—", "", ""]
        cells.append(", ".join(sorted(inline.answers | (ssm.answers if ssm else set()))))
        print("| " + " | ".join(cells) + " |")
    if args.against is None:
        return
    print(f"\nThe same rounds, this build ({args.target_dir}) against {args.against}; pepper inline.\n")
    print("| function | binary MB | init median | against: MB | against: init median | init, this ÷ against |")
    print("|---|--:|--:|--:|--:|--:|")
    for name in [HELLO, *names]:
        this, that = jobs[(name, "inline")], jobs[(name, "against")]
        if not this.init_ms or not that.init_ms:
            print(f"| {name} | FAILED | | | | |")
            continue
        this_init, that_init = statistics.median(this.init_ms), statistics.median(that.init_ms)
        print(f"| {name} | {fmt(size_mb(this.binary)[0])} | {fmt(this_init)} | {fmt(size_mb(that.binary)[0])} "
              f"| {fmt(that_init)} | {this_init / that_init:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target-dir", type=Path, default=Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")),
                        help="cargo's target dir holding release/sealpost-lambda and release/hello "
                             "(default: $CARGO_TARGET_DIR or ./target)")
    parser.add_argument("--runs", type=int, default=20, help="measured starts per binary and mode (default 20)")
    parser.add_argument("--functions", help="comma-separated functions (default: every events/<function>.json)")
    parser.add_argument("--no-ssm", action="store_true", help="skip the starts that read the pepper from SSM")
    parser.add_argument("--moto-python", help="a Python with moto[server] (default: ./.venv, or the main checkout's)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a start may take (default 10)")
    parser.add_argument("--seed", type=int, default=6, help="of the shuffled order per round")
    parser.add_argument("--against", type=Path, metavar="TARGET_DIR",
                        help="another build's target dir: its binaries start in the same "
                             "rounds (pepper inline), and a second table compares the two builds without "
                             "the drift between separate runs")
    parser.add_argument("--arm64", action="store_true",
                        help="the aarch64 builds in <target-dir>/lambda/<bin>/bootstrap, under qemu-aarch64")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="one more variable for every binary, to try a variation (repeatable)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if any("=" not in e for e in args.env):
        parser.error("--env takes NAME=VALUE")
    extra_env = dict(e.split("=", 1) for e in args.env)

    available = sorted(p.stem for p in (REPO / "events").glob("*.json"))
    names = args.functions.split(",") if args.functions else available
    unknown = [n for n in names if n not in available]
    if unknown:
        parser.error(f"no events/<name>.json for {', '.join(unknown)}")
    global RUNNER
    if args.arm64:
        RUNNER = [] if os.uname().machine == "aarch64" else ["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu"]

    def binary_in(target: Path, name: str) -> Path:
        bin_name = HELLO if name == HELLO else LAMBDA_BIN
        return target / "lambda" / bin_name / "bootstrap" if args.arm64 else target / "release" / bin_name

    release = args.target_dir
    against = args.against
    missing = sorted({str(binary_in(release, n)) for n in [HELLO, *names] if not binary_in(release, n).is_file()})
    if against is not None and (absent := [n for n in [HELLO, *names] if not binary_in(against, n).is_file()]):
        log(f"coldstart: not built in {against}: {', '.join(absent)}")
        return 2
    if missing:
        build = "cargo lambda build --release --arm64" if args.arm64 else "cargo build --release"
        log(f"coldstart: missing {', '.join(missing)}. Build them first:\n"
            f"  cd lambda && CARGO_TARGET_DIR={args.target_dir} nice -n 10 {build} --locked -p {LAMBDA_BIN} -p {HELLO}")
        return 2
    for n in [HELLO, *names]:
        if size_mb(binary_in(release, n))[1]:
            log(f"coldstart: warning: {binary_in(release, n)} has a symbol table (not stripped): its size is not what ships")

    pepper = base64.b64encode(secrets.token_bytes(32)).decode()
    moto = Moto(find_moto_python(args.moto_python))
    # Every binary starts from a fresh copy, as Lambda starts one unpacked from its package: here
    # a binary straight from the linker started ~10% slower than a copy of itself (2026-11-29).
    staging = Path(tempfile.mkdtemp(prefix="coldstart-bin-"))

    def staged(binaries: Path, name: str) -> Path:
        source = binary_in(binaries, name)
        copy = staging / ("against" if binaries == against else "this") / (HELLO if name == HELLO else LAMBDA_BIN)
        if not copy.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy)
            copy.chmod(0o755)
        return copy

    try:
        queues = moto.provision(pepper)
        jobs: dict[tuple[str, str], Job] = {}
        for name in [HELLO, *names]:
            event = b'{"hello":"world"}' if name == HELLO else (REPO / "events" / f"{name}.json").read_bytes()
            http_event = name != HELLO and "routeKey" in json.loads(event)
            modes = ["inline"] if name == HELLO or args.no_ssm else ["inline", "ssm"]
            builds = [(mode, release, mode == "ssm") for mode in modes]
            if against is not None:
                builds.append(("against", against, False))
            for mode, binaries, ssm in builds:
                env = {**lambda_env(name, moto.url, queues, pepper, ssm), **extra_env}
                jobs[(name, mode)] = Job(name, staged(binaries, name), env, event, http_event)
        load_before = f"{os.getloadavg()[0]:.1f}"
        order = list(jobs.values())
        rng = random.Random(args.seed)
        for round_no in range(args.runs + 1):  # round 0: the warm-up
            rng.shuffle(order)
            log(f"coldstart: {'warm-up' if round_no == 0 else f'round {round_no}/{args.runs}'}")
            for job in order:
                if job.failure is None:
                    cold_start(job, args.timeout)
                    if round_no == 0:
                        job.init_ms.clear()
                        job.first_ms.clear()
        load_after = f"{os.getloadavg()[0]:.1f}"
    finally:
        moto.stop()
        shutil.rmtree(moto.log_dir, ignore_errors=True)

    if jobs[(HELLO, "inline")].failure:
        log(f"coldstart: hello-world failed: {jobs[(HELLO, 'inline')].failure}")
        shutil.rmtree(staging, ignore_errors=True)
        return 1
    report(jobs, names, args, (load_before, load_after))
    shutil.rmtree(staging, ignore_errors=True)
    failed = [(key, job.failure) for key, job in jobs.items() if job.failure]
    for (name, mode), failure in failed:
        log(f"\ncoldstart: FAILED {name} (pepper {mode}): {failure}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
