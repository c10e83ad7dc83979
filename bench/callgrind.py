"""Benchmark 4: instructions per verify, counted by valgrind's callgrind.

Instruction counts do not depend on what else the machine is doing, so a regression shows up
as a number that moved, not as noise. shared/benches/verify.rs builds the embedded service
in a fresh data dir, creates one share and answers its code N times through the router; the
difference between the totals for two values of N, divided by the difference of N, is the
cost of one verify without the set-up both runs share.

    python3 bench/callgrind.py --verify-bin target/release/deps/verify-… [--n 20 220]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from common import table  # noqa: E402


def instructions(binary, n, tmp):
    data = tempfile.mkdtemp(dir=tmp)
    out = os.path.join(tmp, f"callgrind.{n}.out")
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, os.path.join(data, "d"), str(n)],
        capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"valgrind failed:\n{run.stderr[-2000:]}")
    total = re.search(r"Collected : (\d+)", run.stderr)
    return int(total.group(1)), out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verify-bin", required=True, help="the built shared/benches/verify.rs")
    parser.add_argument("--n", type=int, nargs=2, default=[20, 220])
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind not found (Debian: apt-get install valgrind)")
    low, high = args.n
    with tempfile.TemporaryDirectory(prefix="sealpost-bench-callgrind-") as tmp:
        i_low, _ = instructions(args.verify_bin, low, tmp)
        i_high, out_high = instructions(args.verify_bin, high, tmp)
        per_verify = (i_high - i_low) / (high - low)
        print(f"callgrind, release build, embedded store, one thread; ({high} verifies − {low} verifies) / {high - low}.\n")
        print(table(["run", "instructions"], [
            (f"{low} verifies", f"{i_low:,}"),
            (f"{high} verifies", f"{i_high:,}"),
            ("**one verify**", f"**{per_verify:,.0f}**"),
        ]))


if __name__ == "__main__":
    main()
