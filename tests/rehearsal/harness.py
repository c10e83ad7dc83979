"""Lambda as it runs the built functions, on this machine: template.yaml resolved the way
CloudFormation would, its resources made in moto's server, each function's `bootstrap` (the
artifact `sam build` made, arm64 under qemu-aarch64 on an x86 machine) run behind a Lambda
Runtime API, and API Gateway's HTTP API in front of the route functions.

Used by tests/rehearsal/rehearse.py (the rehearsal of a share's whole life) and infra/invoke
(one function, one event: the stand-in for `sam local invoke` where Docker is missing).

What a function gets is what Lambda and the template give it, nothing inherited from this
process: Lambda's own variables (_HANDLER from the function's Handler, AWS_REGION, the role's
credentials, AWS_LAMBDA_*), then the template's Globals and the function's Environment with
every !Ref, !GetAtt, !Sub and !If resolved against the parameters and the resources made here.
A reference the template makes that this stand-in cannot resolve is an error, and so is a
variable the code needs that the template does not give (the function fails its cold start).
Two variables are added for the stand-in, and only these (STAND_IN_ENV): AWS_ENDPOINT_URL, which
points the SDK at moto's server, and SSL_CERT_FILE, the test CA a webhook receiver's
certificate is signed with (Lambda trusts the public CAs; here the receiver is on this machine).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from queue import Empty, Queue

import boto3
from botocore.config import Config
from cfnlint.decode import cfn_yaml

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-central-2"
ACCOUNT = "123456789012"  # moto's default account
PARTITION = "aws"
RUNTIME = "/2018-06-01/runtime"
QEMU = ["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu"]
# API Gateway's limits (tests/src/gateway.rs has the same): a request body, and Lambda's payload.
GATEWAY_BODY_LIMIT = 10 * 1024 * 1024
LAMBDA_EVENT_LIMIT = 6 * 1024 * 1024
# The role's session, as Lambda hands it over; moto checks no signature.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "ASIAREHEARSAL", "AWS_SECRET_ACCESS_KEY": "rehearsal", "AWS_SESSION_TOKEN": "rehearsal"}
# What the stand-in adds to a function's environment, and nothing else (the docstring says why).
STAND_IN_ENV = ("AWS_ENDPOINT_URL", "SSL_CERT_FILE")
# Lambda's reserved variables: a template may not set them (Lambda refuses such a deploy).
RESERVED_ENV = ("_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
                "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
                "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
                "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR")


class Unresolvable(Exception):
    """A template reference this stand-in cannot resolve: the rehearsal fails rather than guess."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def aws_client(service: str, endpoint: str):
    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="rehearsal",
        aws_secret_access_key="rehearsal", config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


# ---------------------------------------------------------------------------------------------
# template.yaml, resolved as CloudFormation would
# ---------------------------------------------------------------------------------------------

NO_VALUE = object()


@dataclass
class Function:
    logical_id: str
    handler: str
    properties: dict
    timeout_s: int
    memory_mb: int
    code_uri: str

    @property
    def events(self) -> dict:
        return self.properties.get("Events") or {}


class Stack:
    """template.yaml with its parameters, and the physical names of its resources."""

    def __init__(self, template: Path, parameters: dict[str, str], name: str = "sealpost", region: str = REGION,
                 account: str = ACCOUNT) -> None:
        self.doc = cfn_yaml.load(str(template))
        self.name, self.region, self.account = name, region, account
        self.parameters: dict[str, str] = {}
        for key, spec in self.doc.get("Parameters", {}).items():
            if key in parameters:
                self.parameters[key] = str(parameters[key])
            elif "Default" in spec:
                self.parameters[key] = str(spec["Default"])
            else:
                raise Unresolvable(f"parameter {key} has no default: give it")
        unknown = set(parameters) - set(self.parameters)
        if unknown:
            raise Unresolvable(f"no such parameters in the template: {', '.join(sorted(unknown))}")
        # Only the resources whose Condition holds, as CloudFormation makes them.
        self.all_resources: dict = self.doc["Resources"]
        self.resources: dict = {}
        self.globals: dict = self.doc.get("Globals", {}).get("Function", {})
        self.physical: dict[str, str] = {}
        self.attributes: dict[tuple[str, str], str] = {}  # (logical id, attribute) -> value
        for logical, resource in self.all_resources.items():
            if "Condition" not in resource or self.condition(resource["Condition"]):
                self.resources[logical] = resource
        suffix = secrets.token_hex(6).upper()
        for logical, resource in self.resources.items():
            self.physical[logical] = self._physical_name(logical, resource, suffix)

    def _physical_name(self, logical: str, resource: dict, suffix: str) -> str:
        kind, props = resource["Type"], resource.get("Properties") or {}
        explicit = {"AWS::DynamoDB::Table": "TableName", "AWS::S3::Bucket": "BucketName", "AWS::SQS::Queue": "QueueName",
                    "AWS::SES::ConfigurationSet": "Name", "AWS::Logs::LogGroup": "LogGroupName",
                    "AWS::SNS::Topic": "TopicName", "AWS::Serverless::Function": "FunctionName"}.get(kind)
        if explicit and explicit in props:
            value = self.resolve(props[explicit])
            if isinstance(value, str):
                return value
        generated = f"{self.name}-{logical}-{suffix}"
        if kind == "AWS::S3::Bucket":
            return generated.lower()[:63]
        if kind == "AWS::SQS::Queue" and str(props.get("FifoQueue", "")).lower() == "true":
            return generated[:75] + ".fifo"
        return generated

    # -- conditions and intrinsic functions ---------------------------------------------------

    def condition(self, name: str) -> bool:
        conditions = self.doc.get("Conditions", {})
        if name not in conditions:
            raise Unresolvable(f"no condition {name}")
        return bool(self._condition_value(conditions[name]))

    def _condition_value(self, node):
        if isinstance(node, dict) and len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Fn::Equals":
                a, b = (self.resolve(x) for x in arg)
                return str(a) == str(b)
            if fn == "Fn::Not":
                return not self._condition_value(arg[0])
            if fn == "Fn::And":
                return all(self._condition_value(x) for x in arg)
            if fn == "Fn::Or":
                return any(self._condition_value(x) for x in arg)
            if fn == "Condition":
                return self.condition(arg)
        raise Unresolvable(f"a condition this stand-in cannot evaluate: {node!r}")

    def pseudo(self, name: str) -> str | object:
        values = {"AWS::Region": self.region, "AWS::AccountId": self.account, "AWS::StackName": self.name,
                  "AWS::Partition": PARTITION, "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": NO_VALUE,
                  "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.name}/rehearsal"}
        if name not in values:
            raise Unresolvable(f"pseudo parameter {name}")
        return values[name]

    def ref(self, name: str):
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        if name not in self.resources:
            why = "its Condition is false here" if name in self.all_resources else "no such parameter or resource"
            raise Unresolvable(f"!Ref {name}: {why}")
        kind, physical = self.resources[name]["Type"], self.physical[name]
        if kind == "AWS::SQS::Queue":
            return self.attributes.get((name, "QueueUrl")) or f"https://sqs.{self.region}.amazonaws.com/{self.account}/{physical}"
        if physical.startswith("arn:"):  # a deployed stack's (infra/env-vars --stack)
            return physical
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{self.region}:{self.account}:{physical}"
        if kind == "AWS::IAM::ManagedPolicy":
            return f"arn:aws:iam::{self.account}:policy/{physical}"
        if kind in ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SES::ConfigurationSet", "AWS::Logs::LogGroup",
                    "AWS::Serverless::Function", "AWS::IAM::Role"):
            return physical
        raise Unresolvable(f"!Ref {name} ({kind}): not modelled by the stand-in")

    def get_att(self, name: str, attribute: str) -> str:
        if (name, attribute) in self.attributes:
            return self.attributes[(name, attribute)]
        if name not in self.resources:
            why = "its Condition is false here" if name in self.all_resources else "no such resource"
            raise Unresolvable(f"!GetAtt {name}.{attribute}: {why}")
        kind, physical = self.resources[name]["Type"], self.physical[name]
        r, a = self.region, self.account
        arns = {"AWS::DynamoDB::Table": f"arn:aws:dynamodb:{r}:{a}:table/{physical}",
                "AWS::S3::Bucket": f"arn:aws:s3:::{physical}",
                "AWS::SQS::Queue": f"arn:aws:sqs:{r}:{a}:{physical}",
                "AWS::Serverless::Function": f"arn:aws:lambda:{r}:{a}:function:{physical}"}
        if attribute == "Arn" and kind in arns:
            return arns[kind]
        if (kind, attribute) == ("AWS::SNS::Topic", "TopicArn"):
            return self.ref(name)
        if (kind, attribute) == ("AWS::SQS::Queue", "QueueName"):
            return physical
        if (kind, attribute) == ("AWS::CloudFront::Distribution", "DomainName"):
            return f"d{physical[-12:].lower()}.cloudfront.net"
        raise Unresolvable(f"!GetAtt {name}.{attribute} ({kind}): not modelled by the stand-in")

    def resolve(self, node):
        """A template value with its intrinsic functions evaluated; NO_VALUE for AWS::NoValue."""
        if isinstance(node, dict):
            if len(node) == 1:
                (fn, arg), = node.items()
                if fn == "Ref":
                    return self.ref(arg)
                if fn == "Fn::GetAtt":
                    name, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                    return self.get_att(name, attribute)
                if fn == "Fn::If":
                    name, yes, no = arg
                    return self.resolve(yes if self.condition(name) else no)
                if fn == "Fn::Sub":
                    return self._sub(arg)
                if fn == "Fn::Join":
                    separator, items = arg
                    items = self.resolve(items)
                    if not isinstance(items, list):
                        raise Unresolvable(f"Fn::Join over {items!r}, not a list")
                    return separator.join(str(i) for i in items)
                if fn == "Fn::Select":
                    index, items = arg
                    return self.resolve(self.resolve(items)[int(index)])
                if fn.startswith("Fn::") or fn == "Condition":
                    raise Unresolvable(f"{fn} is not modelled by the stand-in")
            return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not NO_VALUE}
        if isinstance(node, list):
            return [v for v in (self.resolve(x) for x in node) if v is not NO_VALUE]
        return node

    def _sub(self, arg) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def one(match: re.Match) -> str:
            inner = match.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in variables:
                return str(self.resolve(variables[inner]))
            if "." in inner and not inner.startswith("AWS::"):
                return self.get_att(*inner.split(".", 1))
            value = self.ref(inner)
            if value is NO_VALUE:
                raise Unresolvable(f"!Sub ${{{inner}}} is AWS::NoValue")
            return str(value)

        return re.sub(r"\$\{([^}]+)\}", one, str(text))

    # -- what the template declares ------------------------------------------------------------

    def functions(self) -> dict[str, Function]:
        """The functions by handler name (what _HANDLER carries)."""
        out = {}
        for logical, resource in self.resources.items():
            if resource["Type"] != "AWS::Serverless::Function":
                continue
            props = resource.get("Properties") or {}
            handler = props.get("Handler", self.globals.get("Handler"))
            code_uri = props.get("CodeUri", self.globals.get("CodeUri"))
            if handler in out:
                raise Unresolvable(f"{logical} and {out[handler].logical_id} have the same Handler {handler!r}")
            out[handler] = Function(logical, handler, props, int(props.get("Timeout", self.globals.get("Timeout", 3))),
                                    int(props.get("MemorySize", self.globals.get("MemorySize", 128))), str(code_uri))
        return out

    def environment(self, function: Function) -> dict[str, str]:
        """The function's Environment (Globals merged with its own), resolved."""
        variables = dict((self.globals.get("Environment") or {}).get("Variables") or {})
        variables.update(((function.properties.get("Environment") or {}).get("Variables")) or {})
        out = {}
        for key, value in variables.items():
            value = self.resolve(value)
            if value is NO_VALUE:
                continue
            if isinstance(value, (dict, list)):
                raise Unresolvable(f"{function.handler}: {key} is not a string: {value!r}")
            if key in RESERVED_ENV:
                raise Unresolvable(f"{function.handler}: {key} is Lambda's own; a template may not set it")
            out[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return out

    def routes(self) -> list[tuple[str, str]]:
        """Each HTTP API route key with the handler of the function its integration invokes."""
        by_logical = {f.logical_id: f.handler for f in self.functions().values()}
        routes = []
        for logical, resource in self.resources.items():
            if resource["Type"] != "AWS::ApiGatewayV2::Route":
                continue
            props = resource["Properties"]
            target = props.get("Target")
            match = re.fullmatch(r"integrations/\$\{(\w+)\}", target.get("Fn::Sub", "") if isinstance(target, dict) else "")
            if not match:
                raise Unresolvable(f"{logical}: Target {target!r} is not integrations/${{Integration}}")
            integration = self.resources[match.group(1)]["Properties"]
            uri = integration["IntegrationUri"]
            arn_of = uri.get("Fn::GetAtt") if isinstance(uri, dict) else None
            function = (arn_of.split(".")[0] if isinstance(arn_of, str) else arn_of[0]) if arn_of else None
            if function not in by_logical:
                raise Unresolvable(f"{logical}: its integration invokes {uri!r}, no function of the template")
            if integration.get("PayloadFormatVersion") != "2.0":
                raise Unresolvable(f"{logical}: payload format {integration.get('PayloadFormatVersion')!r}, not 2.0")
            routes.append((props["RouteKey"], by_logical[function]))
        return routes

    # -- the resources, made in moto --------------------------------------------------------------

    def provision(self, moto_url: str, pepper_b64: str) -> None:
        """What the deploy makes that a function touches (the table, buckets, queues, SES's
        configuration set), and what the operator makes before it (infra/README.md steps 1-2:
        the pepper in SSM, the sender identity in SES)."""
        dynamodb, s3, sqs = (aws_client(s, moto_url) for s in ("dynamodb", "s3", "sqs"))
        sesv2, ssm = aws_client("sesv2", moto_url), aws_client("ssm", moto_url)
        made = ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::SES::ConfigurationSet")
        for logical, resource in self.resources.items():
            kind = resource["Type"]
            if kind not in made:
                continue
            props, name = self.resolve(resource.get("Properties") or {}), self.physical[logical]
            if kind == "AWS::DynamoDB::Table":
                dynamodb.create_table(
                    TableName=name, BillingMode=props.get("BillingMode", "PROVISIONED"),
                    AttributeDefinitions=props["AttributeDefinitions"], KeySchema=props["KeySchema"],
                    GlobalSecondaryIndexes=props.get("GlobalSecondaryIndexes", []),
                    StreamSpecification={"StreamEnabled": "StreamSpecification" in props,
                                         **props.get("StreamSpecification", {})},
                )
                if ttl := props.get("TimeToLiveSpecification"):
                    dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
                table = dynamodb.describe_table(TableName=name)["Table"]
                if "LatestStreamArn" in table:
                    self.attributes[(logical, "StreamArn")] = table["LatestStreamArn"]
            elif kind == "AWS::S3::Bucket":
                s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
            elif kind == "AWS::SQS::Queue":
                attributes = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in props.items()
                              if k in ("FifoQueue", "VisibilityTimeout", "MessageRetentionPeriod", "ContentBasedDeduplication")}
                url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
                self.attributes[(logical, "QueueUrl")] = url
            elif kind == "AWS::SES::ConfigurationSet":
                sesv2.create_configuration_set(ConfigurationSetName=name)
        try:
            sesv2.create_email_identity(EmailIdentity=self.parameters["SenderEmail"])
        except sesv2.exceptions.AlreadyExistsException:
            pass
        ssm.put_parameter(Name=self.parameters["PepperParameterName"], Type="SecureString", Value=pepper_b64, Overwrite=True)

    def resource_of_type(self, kind: str, logical: str | None = None) -> str:
        found = [k for k, r in self.resources.items() if r["Type"] == kind and (logical is None or k == logical)]
        if len(found) != 1:
            raise Unresolvable(f"expected one {kind}{' ' + logical if logical else ''}, found {found}")
        return found[0]


# ---------------------------------------------------------------------------------------------
# The Lambda Runtime API, and one function instance behind it
# ---------------------------------------------------------------------------------------------


@dataclass
class Invocation:
    event: bytes
    deadline_ms: int
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    kind: str | None = None  # "response" or "error"
    body: bytes = b""
    answered: threading.Event = field(default_factory=threading.Event)


class FunctionError(Exception):
    """The function failed: an init error, a crash, a handler error or no answer in time."""


class RuntimeApi(ThreadingHTTPServer):
    """The Runtime API of one instance, on its own loopback port: hands out one invocation at
    a time (GET .../invocation/next waits for one) and takes its answer."""

    daemon_threads = True

    def __init__(self, function_arn: str) -> None:
        super().__init__(("127.0.0.1", 0), RuntimeHandler)
        self.function_arn = function_arn
        self.pending: Queue[Invocation] = Queue()
        self.by_id: dict[str, Invocation] = {}
        self.init_error: bytes | None = None
        self.init_done = threading.Event()
        self.t_first_next: int | None = None
        self.stopping = threading.Event()
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class RuntimeApiHandler(BaseHTTPRequestHandler):
    """What every Lambda Runtime API on loopback shares (here and bench/coldstart.py): HTTP/1.1
    (the runtime client keeps its connection), JSON answers, bodies plain or chunked."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class RuntimeHandler(RuntimeApiHandler):
    server: RuntimeApi

    def do_GET(self) -> None:
        server = self.server
        if self.path != f"{RUNTIME}/invocation/next":
            self._send(404, b'{"errorMessage":"not found"}')
            return
        if server.t_first_next is None:
            server.t_first_next = time.perf_counter_ns()
        server.init_done.set()
        while True:
            try:
                inv = server.pending.get(timeout=0.2)
                break
            except Empty:
                if server.stopping.is_set():
                    self.close_connection = True
                    return
        server.by_id[inv.request_id] = inv
        self._send(200, inv.event, {
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": server.function_arn,
            "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Sampled=0",
        })

    def do_POST(self) -> None:
        body = self._read_body()
        server = self.server
        if self.path == f"{RUNTIME}/init/error":
            server.init_error = body
            server.init_done.set()
            self._send(202, b'{"status":"OK"}')
            return
        match = re.fullmatch(rf"{RUNTIME}/invocation/([^/]+)/(response|error)", self.path)
        inv = server.by_id.get(match.group(1)) if match else None
        if inv is None:
            self._send(400, b'{"errorMessage":"unknown request id"}')
            return
        inv.kind, inv.body = match.group(2), body
        self._send(202, b'{"status":"OK"}')
        inv.answered.set()


@dataclass
class ColdStart:
    init_ms: float  # exec -> first GET /next (Lambda's "Init Duration")
    first_ms: float  # exec -> the first answer


class Instance:
    """One execution environment of a function: its process, started on the first invocation,
    kept warm for the next ones (one at a time, as Lambda gives an instance)."""

    def __init__(self, function: Function, bootstrap: Path, runner: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.function = function
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{env['AWS_LAMBDA_FUNCTION_NAME']}"
        self.api = RuntimeApi(arn)
        self.lock = threading.Lock()
        self.log_path = log_dir / f"{function.handler}.log"
        self.log_file = open(self.log_path, "ab")  # noqa: SIM115 (open while the process runs)
        self.t0 = time.perf_counter_ns()
        self.process = subprocess.Popen(
            [*runner, str(bootstrap)], env={**env, "AWS_LAMBDA_RUNTIME_API": self.api.address}, cwd=bootstrap.parent,
            stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT,
        )
        self.cold_start: ColdStart | None = None
        # Lambda's init phase may take 10 s; under qemu on a busy CI machine, give it more.
        self._wait(lambda: self.api.init_done.is_set(), 60, "its init (first poll of the Runtime API)")
        if self.api.init_error is not None:
            raise FunctionError(f"{function.handler}: init error {self.api.init_error[:500]!r}\n{self.output_tail()}")

    def _wait(self, done, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if self.process.poll() is not None:
                raise FunctionError(f"{self.function.handler}: exited with status {self.process.returncode} "
                                    f"before {what}\n{self.output_tail()}")
            if time.monotonic() > deadline:
                raise FunctionError(f"{self.function.handler}: no {what} within {timeout_s:g} s\n{self.output_tail()}")
            time.sleep(0.005)

    def output_tail(self) -> str:
        self.log_file.flush()
        return "--- its output:\n" + self.log_path.read_bytes()[-3000:].decode(errors="replace")

    def invoke(self, event: bytes, slack: float = 4.0) -> bytes:
        """One invocation; its response body. An error answer, a crash or a timeout raises.
        `slack` stretches the function's Timeout for qemu's emulation."""
        with self.lock:
            timeout_s = self.function.timeout_s * slack
            inv = Invocation(event, int(time.time() * 1000 + self.function.timeout_s * 1000))
            self.api.pending.put(inv)
            self._wait(inv.answered.is_set, timeout_s, "answer")
            if self.cold_start is None and self.api.t_first_next is not None:
                now = time.perf_counter_ns()
                self.cold_start = ColdStart((self.api.t_first_next - self.t0) / 1e6, (now - self.t0) / 1e6)
            if inv.kind != "response":
                raise FunctionError(f"{self.function.handler}: handler error {inv.body[:1000]!r}\n{self.output_tail()}")
            return inv.body

    def stop(self) -> None:
        self.api.stopping.set()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.api.shutdown()
        self.api.server_close()
        self.log_file.close()


class Lambda:
    """The functions of a stack, each started on first use from `artifacts/<LogicalId>/bootstrap`
    (what `sam build` makes in .aws-sam/build) with `runner` in front (qemu for arm64)."""

    def __init__(self, stack: Stack, artifacts: Path, runner: list[str], moto_url: str, log_dir: Path,
                 extra_env: dict[str, str] | None = None) -> None:
        self.stack, self.artifacts, self.runner, self.moto_url = stack, artifacts, runner, moto_url
        self.log_dir = log_dir
        self.extra_env = extra_env or {}
        unexpected = set(self.extra_env) - set(STAND_IN_ENV)
        if unexpected:
            raise Unresolvable(f"the stand-in adds only {', '.join(STAND_IN_ENV)}, not {', '.join(sorted(unexpected))}")
        self.functions = stack.functions()
        self.instances: dict[str, Instance] = {}
        self.lock = threading.Lock()

    def lambda_own(self, function: Function) -> dict[str, str]:
        """What Lambda itself puts in a provided.al2023 function's environment."""
        physical = self.stack.physical[function.logical_id]
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "_HANDLER": function.handler,
            "LAMBDA_TASK_ROOT": str(self.bootstrap(function).parent),
            "AWS_LAMBDA_FUNCTION_NAME": physical,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": self.log_group(function),
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{datetime.now(timezone.utc):%Y/%m/%d}/[$LATEST]{secrets.token_hex(16)}",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            **CREDENTIALS,
        }

    def log_group(self, function: Function) -> str:
        """The function's log group: its LoggingConfig's, else Lambda's default."""
        group = (function.properties.get("LoggingConfig") or {}).get("LogGroup")
        return str(self.stack.resolve(group)) if group else f"/aws/lambda/{self.stack.physical[function.logical_id]}"

    def environment(self, function: Function) -> dict[str, str]:
        """Lambda's own variables, the template's, then the stand-in's (STAND_IN_ENV)."""
        return {**self.lambda_own(function), **self.stack.environment(function), "AWS_ENDPOINT_URL": self.moto_url,
                **self.extra_env}

    def bootstrap(self, function: Function) -> Path:
        # Absolute: the process starts in the artifact's own folder, as Lambda's does.
        path = (self.artifacts / function.logical_id / "bootstrap").absolute()
        if not path.is_file():
            raise FunctionError(f"{function.handler}: no {path} (run `bash infra/build`)")
        return path

    def instance(self, handler: str) -> Instance:
        with self.lock:
            if handler not in self.instances:
                if handler not in self.functions:
                    raise FunctionError(f"no function with Handler {handler} in the template")
                function = self.functions[handler]
                self.instances[handler] = Instance(function, self.bootstrap(function), self.runner,
                                                   self.environment(function), self.log_dir)
            return self.instances[handler]

    def invoke(self, handler: str, event: dict | bytes) -> dict:
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        return json.loads(self.instance(handler).invoke(body) or b"null")

    def stop(self) -> None:
        for instance in self.instances.values():
            instance.stop()

    def logs(self) -> dict[str, str]:
        out = {}
        for handler, instance in self.instances.items():
            instance.log_file.flush()
            out[handler] = instance.log_path.read_text(errors="replace")
        return out


# ---------------------------------------------------------------------------------------------
# API Gateway's HTTP API (payload format 2.0), routed by the template's routes
# ---------------------------------------------------------------------------------------------


def route_pattern(route_key: str) -> tuple[str, re.Pattern]:
    method, path = route_key.split(" ", 1)
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
    return method, re.compile(regex + "$")


def is_text(content_type: str | None) -> bool:
    t = (content_type or "").lower()
    return t.startswith("text/") or "json" in t or "xml" in t or t.startswith("application/x-www-form-urlencoded")


def http_event(route_key: str, method: str, raw_path: str, raw_query: str, headers: list[tuple[str, str]],
               params: dict[str, str], body: bytes) -> dict:
    """The event API Gateway's HTTP API sends (payload 2.0): lower-case headers, repeated ones
    joined by commas, cookies apart, the query as given and parsed, the body in base64 unless
    it is text."""
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies.extend(value.split("; "))
        else:
            joined[name] = f"{joined[name]},{value}" if name in joined else value
    query: dict[str, str] = {}
    for pair in filter(None, raw_query.split("&")):
        k, _, v = pair.partition("=")
        k, v = urllib.parse.unquote_plus(k), urllib.parse.unquote_plus(v)
        query[k] = f"{query[k]},{v}" if k in query else v
    now = datetime.now(timezone.utc)
    event = {
        "version": "2.0", "routeKey": route_key, "rawPath": raw_path, "rawQueryString": raw_query, "headers": joined,
        "requestContext": {
            "accountId": ACCOUNT, "apiId": "rehearsal", "domainName": joined.get("host", "localhost"),
            "domainPrefix": "rehearsal",
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": joined.get("user-agent", "")},
            "requestId": secrets.token_hex(8), "routeKey": route_key, "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"), "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if params:
        event["pathParameters"] = params
    if body:
        try:
            if not is_text(joined.get("content-type")):
                raise UnicodeDecodeError("", b"", 0, 1, "binary")
            event["body"] = body.decode()
        except UnicodeDecodeError:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


NODE_RUNNER = r"""
const vm = require('vm');
const readline = require('readline');
const context = vm.createContext({});
vm.runInContext(process.argv[1], context);
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const event = JSON.parse(line);
  process.stdout.write(JSON.stringify(vm.runInContext('handler', context)(event)) + '\n');
});
"""


class PageRouter:
    """CloudFront's default behaviour: the template's viewer-request function (its
    FunctionCode, run by Node.js in a context of its own), then the page bucket, which holds
    page/ as it is in the repository (infra/README.md, step 5)."""

    TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
             ".css": "text/css; charset=utf-8", ".json": "application/json"}

    def __init__(self, stack: Stack) -> None:
        logical = stack.resource_of_type("AWS::CloudFront::Function")
        code = stack.resources[logical]["Properties"]["FunctionCode"]
        self.node = subprocess.Popen(["node", "-e", NODE_RUNNER, str(code)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.lock = threading.Lock()

    def answer(self, method: str, uri: str) -> tuple[int, list[tuple[str, str]], bytes]:
        event = {"version": "1.0", "context": {"eventType": "viewer-request"}, "viewer": {"ip": "127.0.0.1"},
                 "request": {"method": method, "uri": uri, "querystring": {}, "headers": {}, "cookies": {}}}
        with self.lock:
            self.node.stdin.write(json.dumps(event) + "\n")
            self.node.stdin.flush()
            out = json.loads(self.node.stdout.readline())
        if "statusCode" in out:
            headers = [(k, v["value"]) for k, v in (out.get("headers") or {}).items()]
            return int(out["statusCode"]), headers, b""
        path = (REPO / "page" / out["uri"].lstrip("/")).resolve()
        if not path.is_relative_to(REPO / "page") or not path.is_file():
            return 403, [], b""  # S3 behind an origin access control: a missing key is 403
        return 200, [("Content-Type", self.TYPES.get(path.suffix, "application/octet-stream"))], path.read_bytes()

    def stop(self) -> None:
        self.node.kill()
        self.node.wait()


class Gateway(ThreadingHTTPServer):
    """CloudFront in front of the HTTP API, on a loopback port: /v1/* to the API, each request to
    its route's function as an event and the function's answer back as HTTP (only the
    template's route keys reach their functions; anything else under /v1/ goes to the
    `$default` route's); everything else to the page (PageRouter)."""

    daemon_threads = True

    def __init__(self, functions: Lambda, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), GatewayHandler)
        self.functions = functions
        self.page = PageRouter(functions.stack)
        self.routes = []
        self.default: str | None = None
        for key, handler in functions.stack.routes():
            if key == "$default":
                self.default = handler
            else:
                self.routes.append((key, *route_pattern(key), handler))
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}"

    def route(self, method: str, path: str) -> tuple[str, str, dict[str, str]] | None:
        for key, route_method, pattern, handler in self.routes:
            match = pattern.match(path)
            if match and route_method == method:
                return key, handler, {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
        return ("$default", self.default, {}) if self.default else None


class GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Gateway

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _gateway_error(self, status: int, message: str) -> None:
        self._answer(status, [("Content-Type", "application/json")], json.dumps({"message": message}).encode())

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > GATEWAY_BODY_LIMIT:
            self.rfile.read(length)
            self._gateway_error(413, "Request Entity Too Large")
            return
        body = self.rfile.read(length)
        path, _, query = self.path.partition("?")
        if not path.startswith("/v1/"):  # CloudFront's default behaviour: the page
            self._answer(*self.server.page.answer(self.command, path))
            return
        found = self.server.route(self.command, path)
        if found is None:
            self._gateway_error(404, "Not Found")
            return
        key, handler, params = found
        event = http_event(key, self.command, path, query, list(self.headers.items()), params, body)
        data = json.dumps(event).encode()
        if len(data) > LAMBDA_EVENT_LIMIT:
            self._gateway_error(413, "Request Entity Too Large")
            return
        try:
            answer = json.loads(self.server.functions.instance(handler).invoke(data))
        except FunctionError as e:
            log(f"gateway: {key}: {e}")
            self._gateway_error(500, "Internal Server Error")
            return
        out = answer.get("body") or ""
        out = base64.b64decode(out) if answer.get("isBase64Encoded") else out.encode()
        headers = list((answer.get("headers") or {}).items())
        headers += [("Set-Cookie", c) for c in answer.get("cookies") or []]
        self._answer(int(answer.get("statusCode", 500)), headers, out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


# ---------------------------------------------------------------------------------------------
# The other event sources, as Lambda's pollers and AWS's services hand their events over
# ---------------------------------------------------------------------------------------------


def schedule_event(stack: Stack, function: Function) -> dict:
    name = next(k for k, v in function.events.items() if v["Type"] in ("Schedule", "ScheduleV2"))
    now = datetime.now(timezone.utc)
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.scheduler",
            "account": ACCOUNT, "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION,
            "resources": [f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{stack.name}-{function.logical_id}{name}"],
            "detail": {}}


def _json_safe(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime):
        return int(value.timestamp())
    return value


class TableStream:
    """The table's DynamoDB stream as Lambda's poller reads it: from the start, in order, each
    record in the shape a function's event carries."""

    def __init__(self, stack: Stack, moto_url: str) -> None:
        self.stack = stack
        self.table = stack.resource_of_type("AWS::DynamoDB::Table")
        self.arn = stack.attributes[(self.table, "StreamArn")]
        self.client = aws_client("dynamodbstreams", moto_url)
        self.iterators: dict[str, str | None] = {}

    def read(self) -> list[dict]:
        shards = self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        for shard in shards:
            if shard["ShardId"] not in self.iterators:
                self.iterators[shard["ShardId"]] = self.client.get_shard_iterator(
                    StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records = []
        for shard, iterator in self.iterators.items():
            while iterator:
                page = self.client.get_records(ShardIterator=iterator)
                iterator = page.get("NextShardIterator")
                records.extend(page["Records"])
                if not page["Records"]:
                    break
            self.iterators[shard] = iterator
        return [self.lambda_record(r) for r in records]

    def lambda_record(self, record: dict) -> dict:
        out = _json_safe(record)
        out["eventSourceARN"] = self.arn
        out.setdefault("awsRegion", REGION)
        return out

    def filtered(self, function: Function, records: list[dict]) -> list[dict]:
        """The records the function's DynamoDB event source passes (its FilterCriteria, with
        moto's event-pattern engine: the syntax Lambda's filtering shares with EventBridge)."""
        from moto.events.models import EventPattern

        sources = [e for e in function.events.values() if e["Type"] == "DynamoDB"]
        if not sources:
            raise Unresolvable(f"{function.handler} has no DynamoDB event source")
        filters = [f["Pattern"] for s in sources for f in (s["Properties"].get("FilterCriteria") or {}).get("Filters", [])]
        if not filters:
            return records
        patterns = [EventPattern.load(str(self.stack.resolve(p))) for p in filters]
        return [r for r in records if any(p.matches_event(r) for p in patterns)]


def stream_event(records: list[dict]) -> dict:
    return {"Records": records}


def sqs_event(stack: Stack, queue_logical: str, messages: list[dict]) -> dict:
    arn = stack.get_att(queue_logical, "Arn")
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m.get("MD5OfBody", ""),
        "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": REGION,
    } for m in messages]}


def sns_event(topic_arn: str, message: dict) -> dict:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": f"{topic_arn}:{uuid.uuid4()}",
        "Sns": {"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": topic_arn, "Subject": None,
                "Message": json.dumps(message), "Timestamp": now, "SignatureVersion": "1", "Signature": "EXAMPLE",
                "SigningCertUrl": "https://sns.example/cert.pem", "UnsubscribeUrl": "https://sns.example/unsubscribe",
                "MessageAttributes": {}},
    }]}


# ---------------------------------------------------------------------------------------------
# moto's server
# ---------------------------------------------------------------------------------------------


class Moto:
    def __init__(self, python: str, log_dir: Path, extra_args: tuple[str, ...] = ()) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(log_dir / "moto.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen([python, str(REPO / "infra/moto_server.py"), "-H", "127.0.0.1", "-p", str(port),
                                         *extra_args],
                                        stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for _ in range(150):
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=1).read()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        raise SystemExit(f"moto's server did not start (log: {log_dir / 'moto.log'})")

    def data(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=30) as r:
            return json.load(r)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


def runner_for(bootstrap: Path) -> list[str]:
    """qemu for an aarch64 binary on another machine; nothing for one this machine runs."""
    header = bootstrap.read_bytes()[:20]
    machine = int.from_bytes(header[18:20], "little")
    if machine == 0xB7 and os.uname().machine != "aarch64":  # EM_AARCH64
        return QEMU
    return []


def default_artifacts() -> Path:
    return REPO / ".aws-sam" / "build"


def new_log_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))

