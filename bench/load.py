"""Benchmark 2: the patient path on `sealpost serve` under load from a separate process.

The release `sealpost serve` (embedded backend: SQLite, a folder) is pinned to one core with
taskset, wrk to the other. Shares (manual codes, one small PDF each) are made through the API
first; then each wrk connection walks the patient path over and over, spread over the shares:

    GET  /v1/public/shares/{id}                  public info
    POST /v1/public/shares/{id}/verify           the right code: a conditional SQLite write
                                                 and a `verified` event each time
    GET  /v1/public/shares/{id}/documents/{doc}  a signed download URL, with the access token

Then each step alone. Requests per second on one server core, and wrk's latency percentiles
(wrk measures with coordinated-omission correction off: these are service times at saturation).

A share records at most 200 events of the patient's doing (`events_capped`); past that, verify
and document URL write less, and the figures would flatter them. The requests are spread evenly
over the shares, so there are enough of them (4,000 by default) that none reaches the cap, and
the run checks that none did.

    python3 bench/load.py --sealpost target/release/sealpost [--seconds 20] [--connections 32]

Given `--sealpost` more than once (an older build first), it measures each build in turn on the
same machine in one run, and adds each later build's ratio to the first: the machines here are
shared, so only figures from one run compare.
"""

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from common import free_port, table  # noqa: E402

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"

LUA = r"""
local shares = {%(shares)s}
local steps = {%(steps)s}
local n = 0
request = function()
  n = n + 1
  local s = shares[(math.floor((n - 1) / #steps) %% #shares) + 1]
  local step = steps[((n - 1) %% #steps) + 1]
  if step == "info" then
    return wrk.format("GET", "/v1/public/shares/" .. s.id)
  elseif step == "verify" then
    return wrk.format("POST", "/v1/public/shares/" .. s.id .. "/verify",
      {["Content-Type"] = "application/json"}, s.answer)
  else
    return wrk.format("GET", "/v1/public/shares/" .. s.id .. "/documents/" .. s.doc,
      {["Authorization"] = "Bearer " .. s.token})
  end
end
local errors = 0
response = function(status, headers, body)
  if status ~= 200 then errors = errors + 1 end
end
"""


def call(base, method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def make_shares(base, key, count):
    shares = []
    auth = {"Authorization": f"Bearer {key}"}
    for i in range(count):
        share = call(base, "POST", "/v1/shares", {
            "recipient": {"email": "anna@example.ch", "language": "de"},
            "auth": {"method": "manual"},
            "documents": [{"filename": f"Befund-{i}.pdf", "content_type": "application/pdf",
                           "content_base64": base64.b64encode(PDF).decode()}],
        }, auth)
        answer = json.dumps({"code": share["code"]})
        view = call(base, "POST", f"/v1/public/shares/{share['id']}/verify", json.loads(answer))
        shares.append({"id": share["id"], "answer": answer, "token": view["access_token"],
                       "doc": view["documents"][0]["id"]})
    return shares


def reached_cap(base, key, share_id):
    view = call(base, "GET", f"/v1/shares/{share_id}", None, {"Authorization": f"Bearer {key}"})
    return any(e["type"] == "events_capped" for e in view["events"])


def lua_string(s):
    return json.dumps(s)  # a JSON string is a valid Lua string literal for these characters


def run_wrk(base, shares, steps, args, tmp):
    script = os.path.join(tmp, "patient.lua")
    with open(script, "w") as f:
        f.write(LUA % {
            "shares": ",".join("{id=%s,answer=%s,token=%s,doc=%s}" % tuple(lua_string(s[k]) for k in ("id", "answer", "token", "doc"))
                               for s in shares),
            "steps": ",".join(lua_string(s) for s in steps),
        })
    out = subprocess.run(
        ["taskset", "-c", args.client_cpu, "wrk", "-t", "1", "-c", str(args.connections), "-d", f"{args.seconds}s",
         "--latency", "-s", script, base],
        check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {p: re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M) for p in ("50", "99")}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))

    def ms(m):
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {"rps": rps, "p50": ms(pct["50"]), "p99": ms(pct["99"]), "total": total,
            "non2xx": int(bad.group(1)) if bad else 0, "socket_errors": errors.group(1) if errors else "none"}


STEPS = [("the path: info → verify → document URL", ["info", "verify", "document"]),
         ("public info alone", ["info"]),
         ("verify alone", ["verify"]),
         ("document URL alone", ["document"])]


def measure(sealpost, args):
    """Each row of STEPS against a fresh `sealpost serve` of this build."""
    with tempfile.TemporaryDirectory(prefix="sealpost-bench-load-") as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        key = "sp_live_" + os.urandom(32).hex()
        log = open(os.path.join(tmp, "serve.log"), "w")
        server = subprocess.Popen(
            ["taskset", "-c", args.server_cpu, sealpost, "serve", "--addr", f"127.0.0.1:{port}",
             "--data-dir", os.path.join(tmp, "data"), "--api-key", key],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")})
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(base + "/v1/openapi.json").read()
                    break
                except OSError:
                    time.sleep(0.1)
            shares = make_shares(base, key, args.shares)
            results = []
            for label, steps in STEPS:
                r = run_wrk(base, shares, steps, args, tmp)
                print(f"  {sealpost}: {label}: {r}", file=sys.stderr)
                if r["non2xx"] or r["socket_errors"] != "none":
                    raise SystemExit(f"{label}: {r['non2xx']} answers not 200, socket errors {r['socket_errors']}")
                results.append(r)
            capped = [s["id"] for s in shares[:20] if reached_cap(base, key, s["id"])]
            if capped:
                raise SystemExit(f"{len(capped)} of 20 shares sampled reached the event cap: the figures count requests "
                                 f"that recorded nothing; run with more --shares (or fewer --seconds)")
        finally:
            server.terminate()
            server.wait()
            log.close()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sealpost", required=True, action="append",
                        help="a release build of the sealpost binary; again for another build to compare")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--shares", type=int, default=4000)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found (Debian: apt-get install wrk)")

    builds = [measure(sealpost, args) for sealpost in args.sealpost]
    print(f"`sealpost serve` (release, embedded backend, JSON logs on) pinned to 1 core; wrk -t1 -c{args.connections} "
          f"-d{args.seconds}s on the other; {args.shares} shares; every answer 200.\n")
    if len(builds) == 1:
        rows = [(label, f"{r['rps']:,.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}", f"{r['total']:,}")
                for (label, _), r in zip(STEPS, builds[0])]
        print(table(["requests", "req/s (1 core)", "p50 (ms)", "p99 (ms)", "requests in run"], rows))
        return
    names = [f"build {i + 1}" for i in range(len(builds))]
    print("; ".join(f"{name}: `{path}`" for name, path in zip(names, args.sealpost)) + "\n")
    header = ["requests"] + [f"{n} req/s" for n in names] + [f"{n} ÷ build 1" for n in names[1:]] + [f"{n} p99 (ms)" for n in names]
    rows = []
    for i, (label, _) in enumerate(STEPS):
        rps = [b[i]["rps"] for b in builds]
        rows.append([label] + [f"{x:,.0f}" for x in rps] + [f"{x / rps[0]:.2f}×" for x in rps[1:]]
                    + [f"{b[i]['p99']:.2f}" for b in builds])
    print(table(header, rows))


if __name__ == "__main__":
    main()
