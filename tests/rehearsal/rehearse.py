"""The rehearsal: the functions `sam build` made (.aws-sam/build/<Function>/bootstrap, arm64),
run as Lambda runs them (tests/rehearsal/harness.py) against moto's server, carry shares
through their whole life. Run by tests/rehearsal/run (which builds them and gives this a
network of its own); any failure exits 1 and says which step, with the function's output.

    tests/rehearsal/run [--artifacts DIR]

The steps: a practice made with the operator's CLI (infra/README.md, step 6); a share created
inline (SMS and email in moto's record), opened, a wrong and a right code, a document and the
archive downloaded from moto's S3 through their signed URLs, a resend, the practice's view of
it, a revoke; a share created with an upload URL, uploaded, sent (202) and worked by
`send-worker` from the send queue; a webhook endpoint, the
table's stream through `webhook-fanout` (the template's filter applied) and the queue through
`webhook-sender` to an HTTPS receiver (signature checked); an SES bounce through `feedback`;
a scheduled `sweep`; a TTL removal through `cleanup` (its objects gone); the operator's smoke
test (infra/smoke) through the same gateway. Then: no function logged a code, a phone number,
an email address or a message; and a function deployed with a wrong Handler fails its cold
start. Last, each function's cold start under this runner (BENCHMARKS.md takes ratios only).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import threading
import time
import traceback
import zipfile
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    REGION, REPO, FunctionError, Gateway, Lambda, Moto, Stack, TableStream, aws_client, default_artifacts,
    log, new_log_dir, runner_for, schedule_event, sns_event, sqs_event, stream_event,
)

SENDER = "praxis@rehearsal.example"
PHONE = "+41791234567"
PATIENT = "anna.rehearsal@example.ch"
MESSAGE = "Ihre Rechnung vom Februar, mit Dank für Ihren Besuch"
REPLY_MESSAGE = "Anbei die unterschriebene Einwilligung, mit Gruss von Anna"
# A public address, on this network namespace's loopback only (tests/rehearsal/run): the
# webhook sender posts to public hosts only, and nothing here leaves the machine.
RECEIVER_IP = "100.128.0.1"


def sms_code(text: str) -> str | None:
    """The code a code SMS carries, from its WebOTP line (`@host #123456`, the last): not any
    six digits in it, since the host is CloudFront's random name, which has six in a row in
    about one stack of twelve."""
    found = re.search(r"#(\d{6})$", text)
    return found.group(1) if found else None


class Failed(Exception):
    pass


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)


# ---------------------------------------------------------------------------------------------
# A webhook receiver over HTTPS, with a certificate from a CA made for this run
# ---------------------------------------------------------------------------------------------


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sealpost rehearsal CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, RECEIVER_IP)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(RECEIVER_IP))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "receiver.pem", directory / "receiver.key"
    ca_path.write_bytes(ca.public_bytes(pem))
    cert_path.write_bytes(leaf.public_bytes(pem))
    key_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca_path, cert_path, key_path


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cert: Path, key: Path) -> None:
        super().__init__((RECEIVER_IP, 0), ReceiverHandler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.received: list[tuple[dict[str, str], bytes]] = []
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://{RECEIVER_IP}:{self.server_address[1]}/sealpost-hook"


class ReceiverHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Receiver

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


# ---------------------------------------------------------------------------------------------
# The rehearsal
# ---------------------------------------------------------------------------------------------


class Rehearsal:
    """The stage (moto, the stack, the functions behind the gateway, a webhook receiver) and the
    rehearsal's steps on it. bench/cost.py's count is a subclass: its own log folder, moto's
    options and Lambda."""

    log_prefix = "sealpost-rehearsal-"
    lambda_class = Lambda

    def moto_args(self) -> tuple[str, ...]:
        return ()

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        artifacts = args.artifacts
        any_bootstrap = next(artifacts.glob("*/bootstrap"), None)
        if any_bootstrap is None:
            raise SystemExit(f"rehearsal: no <Function>/bootstrap under {artifacts}: run `bash infra/build` first")
        self.runner = runner_for(any_bootstrap)
        self.log_dir = new_log_dir(self.log_prefix)
        self.moto = Moto(sys.executable, self.log_dir, self.moto_args())
        try:
            self.stage(artifacts)
        except BaseException:
            self.moto.stop()
            raise

    def stage(self, artifacts: Path) -> None:
        self.stack = Stack(REPO / "template.yaml", {"SenderEmail": SENDER})
        self.pepper = base64.b64encode(secrets.token_bytes(32)).decode()
        self.stack.provision(self.moto.url, self.pepper)
        ca, cert, key = make_certificates(self.log_dir)
        self.receiver = Receiver(cert, key)
        self.functions = self.lambda_class(self.stack, artifacts, self.runner, self.moto.url, self.log_dir,
                                           {"SSL_CERT_FILE": str(ca)})
        self.gateway = Gateway(self.functions)
        self.http = requests.Session()
        self.api_key = ""
        self.secrets_seen: set[str] = {PHONE, PATIENT, MESSAGE, REPLY_MESSAGE, PHONE.removeprefix("+")}
        self.s3 = aws_client("s3", self.moto.url)
        self.dynamodb = aws_client("dynamodb", self.moto.url)
        self.table = self.stack.physical[self.stack.resource_of_type("AWS::DynamoDB::Table")]
        self.bucket = self.stack.physical["DocumentsBucket"]
        self.passed: list[str] = []

    @contextmanager
    def step(self, name: str):
        started = time.monotonic()
        try:
            yield
        except (Failed, FunctionError, AssertionError, requests.RequestException, KeyError, ValueError) as e:
            log(f"rehearsal: FAILED at '{name}': {e}")
            if not isinstance(e, (Failed, FunctionError)):
                traceback.print_exc()
            raise SystemExit(1) from None
        self.passed.append(name)
        log(f"rehearsal: ok  {name} ({time.monotonic() - started:.1f} s)")

    def api(self, method: str, path: str, *, key: str | None = None, token: str | None = None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if key or token:
            headers["Authorization"] = f"Bearer {key or token}"
        return self.http.request(method, self.gateway.url + path, headers=headers, timeout=300, **kwargs)

    def practice(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.api(method, path, key=self.api_key, **kwargs)

    def expect(self, response: requests.Response, status: int, what: str) -> dict:
        check(response.status_code == status, f"{what}: {response.status_code}, not {status}: {response.text[:500]}")
        return response.json() if response.content else {}

    # -- moto's records ---------------------------------------------------------------------------

    def sms_to(self, phone: str) -> list[str]:
        return [m["message"] for m in self.moto.data().get("sns", {}).get("SMS", []) if m.get("phone_number") == phone]

    def emails_to(self, address: str) -> list[dict]:
        return [m for m in self.moto.data().get("ses", {}).get("Message", [])
                if address in json.dumps(m.get("destinations"))]

    def code_from_latest_sms(self, before: int) -> str:
        messages = self.sms_to(PHONE)
        check(len(messages) == before + 1, f"one more SMS to the patient: {len(messages)} after {before}")
        code = sms_code(messages[-1])
        check(code is not None and messages[-1].count(code) >= 2, "the SMS holds its code, and again on its last line")
        self.secrets_seen.add(code)
        return code

    def objects(self, prefix: str) -> list[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])]

    # -- the steps -----------------------------------------------------------------------------

    def run(self) -> None:
        with self.step("the artifacts need no newer glibc than provided.al2023's (2.34)"):
            self.check_glibc()
        with self.step("a practice and its key, with the operator's CLI"):
            self.make_practice()
        with self.step("preview-share: the email and SMS a create would send, nothing sent"):
            shown = self.expect(self.practice("POST", "/v1/shares/preview", json={
                "recipient": {"email": PATIENT, "phone": PHONE, "language": "de", "name": "Anna Probe"},
                "message": MESSAGE,
            }), 200, "preview")
            check(shown["sms"]["encoding"] == "GSM-7" and shown["sms"]["segments"] == 1, f"one GSM-7 SMS: {shown['sms']}")
            check(shown["placeholders"]["code"] in shown["sms"]["text"], "the code's placeholder in the SMS")
            check(MESSAGE in shown["email"]["text"], "the practice's message in the email")
            check(not self.sms_to(PHONE) and not self.emails_to(PATIENT), "nothing sent")
        pdf = b"%PDF-1.4 rehearsal " + secrets.token_bytes(2048)
        with self.step("create-share: inline, SMS and email in moto's record"):
            share = self.expect(self.practice("POST", "/v1/shares", json={
                "recipient": {"email": PATIENT, "phone": PHONE, "language": "de", "name": "Anna Probe"},
                "message": MESSAGE,
                "documents": [{"filename": "Rechnung.pdf", "content_type": "application/pdf",
                               "content_base64": base64.b64encode(pdf).decode()}],
            }, headers={"Idempotency-Key": f"rehearsal-{secrets.token_hex(4)}"}), 201, "create")
            share_id, doc_id = share["id"], share["documents"][0]["id"]
            check(share["notifications"]["email"]["status"] == "sent", f"email sent: {share['notifications']}")
            check(share["notifications"]["sms"]["status"] == "sent", f"sms sent: {share['notifications']}")
            public_url = self.functions.environment(self.functions.functions["create-share"])["PUBLIC_URL"]
            check(share["link"] == f"{public_url}/s/{share_id}", f"the link is the page's: {share['link']}")
            code = self.code_from_latest_sms(0)
            emails = self.emails_to(PATIENT)
            check(len(emails) == 1, f"one email to the patient, {len(emails)}")
            check(share["link"] in json.dumps(emails[0]), "the email holds the link")
            check(code not in json.dumps(emails[0]), "the email does not hold the code")
            check(emails[0].get("source", "").endswith(f"<{SENDER}>") or SENDER in emails[0].get("source", ""),
                  f"sent from the practice's sender: {emails[0].get('source')}")
        with self.step("public-share: the page's first call"):
            info = self.expect(self.api("GET", f"/v1/public/shares/{share_id}"), 200, "public info")
            check(info["practice_name"] == "Praxis Probe" and info["auth_method"] == "sms", f"public info: {info}")
        with self.step("verify-code: a wrong code, then the right one"):
            wrong = f"{(int(code) + 1) % 1_000_000:06d}"
            answer = self.expect(self.api("POST", f"/v1/public/shares/{share_id}/verify", json={"code": wrong}), 401,
                                 "wrong code")
            check(answer["error"]["code"] == "wrong_code" and answer["error"].get("attempts_left") == 4,
                  f"wrong code: {answer}")
            token = self.expect(self.api("POST", f"/v1/public/shares/{share_id}/verify", json={"code": code}), 200,
                                "right code")["access_token"]
        with self.step("document-url: the signed URL serves the document from S3"):
            url = self.expect(self.api("GET", f"/v1/public/shares/{share_id}/documents/{doc_id}", token=token), 200,
                              "document url")["url"]
            download = self.http.get(url, timeout=60)
            check(download.status_code == 200 and download.content == pdf, f"download: {download.status_code}")
            check("attachment" in download.headers.get("Content-Disposition", ""), "served as an attachment")
        with self.step("archive-url: the ZIP of every document"):
            url = self.expect(self.api("GET", f"/v1/public/shares/{share_id}/archive", token=token), 200, "archive")["url"]
            archive = zipfile.ZipFile(io.BytesIO(self.http.get(url, timeout=60).content))
            check([archive.read(n) for n in archive.namelist()] == [pdf], f"the ZIP holds the document: {archive.namelist()}")
        with self.step("resend-share: a new code by SMS, the old one dead"):
            self.expect(self.practice("POST", f"/v1/shares/{share_id}/resend"), 200, "resend")
            new_code = self.code_from_latest_sms(1)
            check(new_code != code, "a new code")
            old = self.api("POST", f"/v1/public/shares/{share_id}/verify", json={"code": code})
            check(old.status_code == 401, f"the old code after a resend: {old.status_code}")
            self.expect(self.api("POST", f"/v1/public/shares/{share_id}/verify", json={"code": new_code}), 200, "new code")
        with self.step("get-share and list-shares: the practice's read receipts"):
            view = self.expect(self.practice("GET", f"/v1/shares/{share_id}"), 200, "share view")
            kinds = [e["type"] for e in view["events"]]
            for kind in ("created", "opened", "verified", "document_downloaded", "archive_downloaded", "resent"):
                check(kind in kinds, f"event {kind} in {kinds}")
            listed = self.expect(self.practice("GET", "/v1/shares?limit=5"), 200, "list")
            check(share_id in [s["id"] for s in listed["shares"]], "the share is listed")
        with self.step("request-code: self-service, too soon after the last code"):
            # 30 minutes apart (docs/api.md): the rehearsal runs on the real clock.
            answer = self.api("POST", f"/v1/public/shares/{share_id}/code")
            error = self.expect(answer, 429, "self-service code")["error"]
            check(error["code"] == "rate_limited" and int(answer.headers["Retry-After"]) > 0, f"too soon: {error}")
            check(len(self.sms_to(PHONE)) == 2, "no SMS sent")

        big = secrets.token_bytes(300_000)
        with self.step("create-share with an upload URL, upload-url renews it, the PUT to S3, send-share, the queue "
                       "through send-worker"):
            made = self.expect(self.practice("POST", "/v1/shares", json={
                "recipient": {"email": PATIENT, "phone": PHONE, "language": "fr"},
                "documents": [{"filename": "Befund.pdf", "content_type": "application/pdf", "size": len(big),
                               "sha256": hashlib.sha256(big).hexdigest()}],
            }), 201, "create for upload")
            check(made["status"] == "awaiting_upload", f"awaiting upload: {made['status']}")
            doc_id = made["documents"][0]["id"]
            renewed = self.expect(self.practice("POST", f"/v1/shares/{made['id']}/documents/{doc_id}/upload-url"), 200,
                                  "a fresh upload URL")
            # At most SPEC's 5 minutes; a second less when the clock ticked while it was signed (it
            # ends when its end was recorded).
            check(renewed["uploaded"] is False and 290 <= renewed["upload_expires_in"] <= 300, f"renewed: {renewed}")
            upload = renewed["upload_url"]
            headers = renewed["upload_headers"]
            check(headers == made["documents"][0]["upload_headers"], f"the same checksum header: {headers}")
            check(set(headers) == {"x-amz-checksum-sha256"}, f"the upload's headers: {headers}")
            put = self.http.put(upload, data=big, headers=headers, timeout=60)
            check(put.status_code == 200, f"upload PUT: {put.status_code} {put.text[:200]}")
            again = self.expect(self.practice("POST", f"/v1/shares/{made['id']}/documents/{doc_id}/upload-url"), 200,
                                "upload-url after the PUT")
            check(again["uploaded"] is True, f"the upload is seen through HEAD: {again}")
            sms_before = len(self.sms_to(PHONE))
            sent = self.expect(self.practice("POST", f"/v1/shares/{made['id']}/send"), 202, "send")
            check(sent["status"] == "sending", f"sending: {sent['status']}")
            check(len(self.sms_to(PHONE)) == sms_before, "no SMS before the archive is built")
            check(self.pump_sends() == 1, "one share worked by send-worker")
            view = self.expect(self.practice("GET", f"/v1/shares/{made['id']}"), 200, "the sent share")
            check(view["status"] == "active" and "archive_ready" in [e["type"] for e in view["events"]], f"sent: {view['status']}")
            upload_code = self.code_from_latest_sms(sms_before)
            upload_id = made["id"]
            token = self.expect(self.api("POST", f"/v1/public/shares/{upload_id}/verify", json={"code": upload_code}), 200,
                                "verify the uploaded share")["access_token"]
            url = self.expect(self.api("GET", f"/v1/public/shares/{upload_id}/documents/{made['documents'][0]['id']}",
                                       token=token), 200, "uploaded document url")["url"]
            check(self.http.get(url, timeout=60).content == big, "the uploaded document downloads as sent")

        with self.step("reply and replies: the patient's message and file through S3, checked, read by the practice"):
            made = self.expect(self.practice("POST", "/v1/shares", json={
                "recipient": {"email": PATIENT, "language": "de"}, "auth": {"method": "manual"}, "allow_reply": True,
                "documents": [{"filename": "Formular.pdf", "content_type": "application/pdf",
                               "content_base64": base64.b64encode(pdf).decode()}],
            }), 201, "create with replies")
            self.secrets_seen.add(made["code"].replace("-", ""))
            reply_token = self.expect(self.api("POST", f"/v1/public/shares/{made['id']}/verify",
                                               json={"code": made["code"]}), 200, "verify for a reply")["access_token"]
            signed = b"%PDF-1.7 signed consent " + secrets.token_bytes(1024)
            fake = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
            files = [{"filename": name, "content_type": kind, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                     for name, kind, data in [("Einwilligung.pdf", "application/pdf", signed), ("Foto.png", "image/png", fake)]]
            started = self.expect(self.api("POST", f"/v1/public/shares/{made['id']}/replies", token=reply_token,
                                           json={"message": REPLY_MESSAGE, "files": files}), 201, "start a reply")
            for upload, data in zip(started["files"], [signed, fake]):
                put = self.http.put(upload["upload_url"], data=data, headers=upload["upload_headers"], timeout=60)
                check(put.status_code == 200, f"reply upload PUT: {put.status_code} {put.text[:200]}")
            receipt = self.expect(self.api("POST", f"/v1/public/shares/{made['id']}/replies/{started['id']}/submit",
                                           token=reply_token), 200, "submit the reply")
            fates = [(f["status"], f.get("reason")) for f in receipt["files"]]
            check(fates == [("accepted", None), ("refused", "wrong_type")], f"checked by content: {fates}")
            listed = self.expect(self.practice("GET", f"/v1/shares/{made['id']}/replies"), 200, "the practice's replies")
            check([r["message"] for r in listed["replies"]] == [REPLY_MESSAGE], "the practice reads the message")
            url = self.expect(self.practice("GET", f"/v1/shares/{made['id']}/replies/{started['id']}/files/0"), 200,
                              "a reply file's URL")["url"]
            got = self.http.get(url, timeout=60)
            check(got.content == signed and "attachment" in got.headers.get("Content-Disposition", ""),
                  "the accepted file downloads as an attachment")
            self.expect(self.practice("DELETE", f"/v1/shares/{made['id']}"), 200, "revoke the reply's share")
            left = self.objects(f"shares/{made['id']}/")
            check(left == [], f"the reply went with the share: {left}")

        with self.step("webhooks: an endpoint, the stream through webhook-fanout, the queue through webhook-sender"):
            hook = self.expect(self.practice("POST", "/v1/webhooks", json={"url": self.receiver.url}), 201, "webhook")
            secret = hook["secret"]
            self.secrets_seen.add(secret)
            # An event after the endpoint exists: a download of the upload share.
            self.expect(self.api("GET", f"/v1/public/shares/{upload_id}/archive", token=token), 200, "archive url")
            delivered = self.pump_webhooks()
            check(delivered > 0, "deliveries were queued and sent")
            check(self.receiver.received, "the receiver got a POST")
            headers, body = self.receiver.received[-1]
            t, v1 = (dict(p.split("=", 1) for p in headers["sealpost-signature"].split(","))[k] for k in ("t", "v1"))
            expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
            check(hmac.compare_digest(v1, expected), "the signature checks out with the endpoint's secret")
            payload = json.loads(body)
            check(payload["share_id"] == upload_id and payload["type"] == "archive_downloaded", f"payload: {payload}")

        with self.step("feedback: an SES bounce becomes email_bounced"):
            emails = self.emails_to(PATIENT)
            message_id = emails[0]["id"]
            topic = self.stack.ref("SesFeedbackTopic")
            bounce = {"eventType": "Bounce", "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                                                       "feedbackId": f"fb-{message_id}",
                                                       "bouncedRecipients": [{"emailAddress": PATIENT, "status": "5.1.1"}]},
                      "mail": {"messageId": message_id, "destination": [PATIENT]}}
            answer = self.functions.invoke("feedback", sns_event(topic, bounce))
            check(answer == {"recorded": 1}, f"feedback answered {answer}")
            view = self.expect(self.practice("GET", f"/v1/shares/{share_id}"), 200, "share view")
            check("email_bounced" in [e["type"] for e in view["events"]], "email_bounced recorded")

        with self.step("revoke-share: documents gone, links dead"):
            self.expect(self.practice("DELETE", f"/v1/shares/{share_id}"), 200, "revoke")
            check(not self.objects(f"shares/{share_id}/"), "no object left under the share's prefix")
            gone = self.api("GET", f"/v1/public/shares/{share_id}")
            check(gone.status_code == 410, f"public info after revoke: {gone.status_code}")

        with self.step("sweep: the scheduled event expires a share whose link ran out"):
            doomed = self.expect(self.practice("POST", "/v1/shares", json={
                "recipient": {"email": PATIENT, "phone": PHONE},
                "documents": [{"filename": "Rezept.pdf", "content_type": "application/pdf",
                               "content_base64": base64.b64encode(pdf).decode()}],
            }), 201, "create a share to expire")["id"]
            check(self.objects(f"shares/{doomed}/"), "its documents are stored")
            self.run_out(doomed)
            sweep = self.functions.functions["sweep"]
            answer = self.functions.invoke("sweep", schedule_event(self.stack, sweep))
            check(answer == {"expired": 1}, f"sweep answered {answer}")
            check(not self.objects(f"shares/{doomed}/"), "the expired share's documents are deleted")
            view = self.expect(self.practice("GET", f"/v1/shares/{doomed}"), 200, "the expired share")
            check(view["status"] == "expired" and "expired_unread" in [e["type"] for e in view["events"]],
                  f"expired: {view['status']}")

        with self.step("cleanup: a TTL removal deletes the share's objects"):
            check(self.objects(f"shares/{upload_id}/"), "the upload share has objects before")
            stream = TableStream(self.stack, self.moto.url)
            stream.read()  # what came before
            self.dynamodb.delete_item(TableName=self.table, Key={"pk": {"S": f"SHARE#{upload_id}"}, "sk": {"S": "SHARE"}})
            removals = [r for r in stream.read() if r["eventName"] == "REMOVE"]
            check(len(removals) == 1, f"one REMOVE record: {len(removals)}")
            # As TTL deletes: by the service, which the cleanup's filter requires.
            removals[0]["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
            cleanup = self.functions.functions["cleanup"]
            passed = stream.filtered(cleanup, removals)
            check(len(passed) == 1, "the template's filter passes a TTL removal")
            answer = self.functions.invoke("cleanup", stream_event(passed))
            check(not answer.get("batchItemFailures"), f"cleanup answered {answer}")
            check(not self.objects(f"shares/{upload_id}/"), "no object left under the removed share's prefix")

        with self.step("the operator's smoke test (infra/smoke) through the same gateway"):
            smoke = subprocess.run([sys.executable, str(REPO / "infra/smoke"), self.gateway.url, self.api_key],
                                   capture_output=True, text=True, timeout=600,
                                   env={**os.environ, "SMOKE_EMAIL": PATIENT})
            check(smoke.returncode == 0, f"infra/smoke: {smoke.returncode}\n{smoke.stdout[-2000:]}\n{smoke.stderr[-2000:]}")

        with self.step("no function logged a code, a phone number, an address or the message"):
            for handler, text in self.functions.logs().items():
                for secret in self.secrets_seen:
                    check(secret not in text, f"{handler}'s log holds something it must never log")
                for line in filter(None, text.splitlines()):
                    if line.startswith("{"):
                        json.loads(line)

        with self.step("a function deployed with a wrong Handler fails its cold start"):
            wrong = Lambda(self.stack, self.args.artifacts, self.runner, self.moto.url, self.log_dir)
            function = wrong.functions.pop("verify-code")
            function.handler = "verify"
            wrong.functions["verify"] = function
            try:
                wrong.invoke("verify", {})
                raise Failed("a wrong Handler answered")
            except FunctionError as e:
                check("no Sealpost function is named" in str(e), f"the cold start says why: {e}")
            finally:
                wrong.stop()

    def check_glibc(self) -> None:
        """The artifact runs here against Debian's arm64 glibc; on Lambda, provided.al2023's
        is 2.34. No symbol may need a newer one."""
        bootstrap = next(self.args.artifacts.glob("*/bootstrap"))
        versions = {tuple(map(int, v.split(b"."))) for v in re.findall(rb"GLIBC_(\d+\.\d+(?:\.\d+)?)", bootstrap.read_bytes())}
        check(bool(versions), "the binary names the glibc versions it needs")
        newest = max(versions)
        check(newest <= (2, 34), f"the binary needs glibc {'.'.join(map(str, newest))}, provided.al2023 has 2.34")

    def make_practice(self) -> None:
        function = self.functions.functions["create-share"]
        env = self.functions.environment(function)
        cli_env = {"PATH": os.environ["PATH"], "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "operator",
                   "AWS_SECRET_ACCESS_KEY": "operator", "AWS_ENDPOINT_URL": self.moto.url,
                   **{k: env[k] for k in ("TABLE_NAME", "BUCKET_NAME", "PUBLIC_URL", "PEPPER_PARAMETER")}}
        out = subprocess.run([str(self.args.sealpost), "tenant", "create", "--backend", "aws", "--name", "Praxis Probe",
                              "--sender-email", SENDER, "--language", "de"],
                             env=cli_env, capture_output=True, text=True, timeout=120)
        check(out.returncode == 0, f"sealpost tenant create: {out.returncode} {out.stderr[-1000:]}")
        keys = re.findall(r"API key:\s+(sp_live_\S+)", out.stdout)
        check(len(keys) == 1, "the CLI printed one key")
        self.api_key = keys[0]
        self.secrets_seen.add(self.api_key)

    def run_out(self, share_id: str) -> None:
        """Makes a share's link have run out a minute ago, as its record would read then: the
        stored share's expiry, and its place in the sweep's index (`gsi2sk`, shared/src/aws/dynamo.rs).
        The functions run on the real clock; this is the one way to let time pass for them."""
        key = {"pk": {"S": f"SHARE#{share_id}"}, "sk": {"S": "SHARE"}}
        item = self.dynamodb.get_item(TableName=self.table, Key=key)["Item"]
        body = json.loads(item["body"]["S"])
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
        body["expires_at"] = past.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        item["body"] = {"S": json.dumps(body)}
        item["gsi2sk"] = {"S": f"{int(past.timestamp() * 1_000_000):020}#{share_id}"}
        self.dynamodb.put_item(TableName=self.table, Item=item)

    def drain(self, queue_logical: str, handler: str) -> int:
        """A queue through the function its SQS event source feeds, in batches of the source's
        BatchSize, until the queue is empty, as Lambda's poller does; answers how many messages."""
        function = self.functions.functions[handler]
        source = next(e for e in function.events.values() if e["Type"] == "SQS")
        batch = int(source["Properties"].get("BatchSize", 10))
        sqs = aws_client("sqs", self.moto.url)
        queue = self.stack.ref(queue_logical)
        worked = 0
        for _ in range(50):
            messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=batch, AttributeNames=["All"]).get("Messages", [])
            if not messages:
                break
            answer = self.functions.invoke(handler, sqs_event(self.stack, queue_logical, messages))
            check(not answer.get("batchItemFailures"), f"{handler} asked for retries: {answer}")
            for m in messages:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
                worked += 1
        return worked

    def pump_sends(self) -> int:
        """The send queue through send-worker."""
        return self.drain("SendQueue", "send-worker")

    def pump_webhooks(self) -> int:
        """The stream through webhook-fanout (filtered as its event source filters), then the
        queue through webhook-sender, until the queue is empty: what Lambda's pollers do."""
        stream = TableStream(self.stack, self.moto.url)
        fanout = self.functions.functions["webhook-fanout"]
        every = stream.read()
        records = stream.filtered(fanout, every)
        check(records, "the stream has records the fan-out takes")
        # The template's filter passes new events only: not the shares' own changes.
        check(len(records) < len(every), "the filter leaves out what the fan-out does not take")
        check(all(r["eventName"] == "INSERT" and r["dynamodb"]["Keys"]["sk"]["S"].startswith("EVENT#") for r in records),
              "only new events pass the filter")
        for start in range(0, len(records), 100):
            answer = self.functions.invoke("webhook-fanout", stream_event(records[start:start + 100]))
            check(not answer.get("batchItemFailures"), f"fan-out answered {answer}")
        return self.drain("WebhookQueue", "webhook-sender")

    def cold_starts(self) -> None:
        rows = sorted((h, i.cold_start) for h, i in self.functions.instances.items() if i.cold_start)
        runner = " ".join(self.runner) or "native"
        print(f"\n| function | init ms | first answer ms |   ({runner})")
        print("|---|---|---|")
        for handler, cold in rows:
            print(f"| {handler} | {cold.init_ms:.0f} | {cold.first_ms:.0f} |")

    def stop(self) -> None:
        self.functions.stop()
        self.gateway.shutdown()
        self.gateway.page.stop()
        self.receiver.shutdown()
        self.moto.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=Path, default=default_artifacts(), help="sam build's output (.aws-sam/build)")
    parser.add_argument("--sealpost", type=Path, default=REPO / "target/debug/sealpost",
                        help="the operator's CLI, built with --features aws")
    parser.add_argument("--keep-logs", action="store_true", help="keep the functions' output (path printed)")
    args = parser.parse_args()
    rehearsal = Rehearsal(args)
    ok = False
    try:
        rehearsal.run()
        ok = True
        rehearsal.cold_starts()
        log(f"rehearsal: all {len(rehearsal.passed)} steps passed against {args.artifacts}")
    finally:
        rehearsal.stop()
        if ok and not args.keep_logs:
            shutil.rmtree(rehearsal.log_dir, ignore_errors=True)
        else:
            log(f"rehearsal: the functions' output is in {rehearsal.log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
