"""Makes the shares that schemathesis' patient pass (tests/run) starts from, on a running
`sealpost serve`, and prints them as shell `export` lines for patient.toml:

- a `manual` share that takes replies, verified once with its code, so its access token,
  document and replies are live (SEALPOST_ST_MANUAL_SHARE, SEALPOST_ST_MANUAL_DOC,
  SEALPOST_ST_TOKEN);
- an `sms` share with self-service, for the code requests (SEALPOST_ST_SMS_SHARE).

Without them every patient operation would only ever meet ids nobody issued (404).
Usage: seed.py BASE_URL API_KEY
"""

import base64
import json
import shlex
import sys
import urllib.request


def call(base, method, path, body=None, bearer=None):
    request = urllib.request.Request(base + path, method=method)
    if body is not None:
        request.data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    if bearer is not None:
        request.add_header("Authorization", "Bearer " + bearer)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def create(base, key, method, allow_reply=False, **recipient):
    pdf = base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()
    body = {
        "recipient": {"email": "anna@example.ch", **recipient},
        "auth": {"method": method},
        "allow_reply": allow_reply,
        "documents": [{"filename": "Befund.pdf", "content_type": "application/pdf", "content_base64": pdf}],
    }
    return call(base, "POST", "/v1/shares", body, bearer=key)


def main():
    base, key = sys.argv[1].rstrip("/"), sys.argv[2]
    manual = create(base, key, "manual", allow_reply=True)
    verified = call(base, "POST", f"/v1/public/shares/{manual['id']}/verify", {"code": manual["code"]})
    sms = create(base, key, "sms", phone="+41791234567")
    found = {
        "SEALPOST_ST_MANUAL_SHARE": manual["id"],
        "SEALPOST_ST_MANUAL_DOC": manual["documents"][0]["id"],
        "SEALPOST_ST_TOKEN": verified["access_token"],
        "SEALPOST_ST_SMS_SHARE": sms["id"],
    }
    for name, value in found.items():
        print(f"export {name}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
