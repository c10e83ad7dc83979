"""What the send worker archives per second, and the largest share AWS can send in 15 minutes.

Method: `shared/benches/send_worker.rs` makes one share of `--docs` documents of `--mib` MiB
(bytes that do not compress, as a scan's are not), stores the uploads where their URLs put them,
sends the share and times `Service::finish_send`: what `send-worker` runs for a queued share
(each upload moved into place, read once, SHA-256 and CRC-32 on the way into the ZIP, the ZIP
written; on S3 as a multipart upload, parts in flight while the next are read). On the embedded
backend (a folder) that is the worker's own cost; against moto's server (S3, DynamoDB and SQS
on loopback, no TLS) the worker's CPU time is its own process's and moto's is read from /proc
separately, since on AWS S3's side of the work is not the function's. Median of `--rounds`.

The figures feed the model in BENCHMARKS.md section 5: Lambda gives a function CPU in
proportion to its memory (one vCPU at 1,769 MB), so the worker's CPU seconds per GiB, measured
here natively, say how fast a function of a given size archives when the CPU is what limits it;
what the network gives a function is not published and is not measurable here.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "rehearsal"))
import common  # noqa: E402
import harness  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def run(argv: list[str]) -> tuple[int, float, float]:
    out = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
    size, wall, cpu = out.split("\t")
    return int(size), float(wall), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True, help="the send_worker bench program, built with --release")
    parser.add_argument("--python", default=str(REPO / ".venv/bin/python"), help="a Python with moto's server")
    parser.add_argument("--docs", type=int, default=3)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    rows = []
    results: dict[str, list[tuple[int, float, float, float]]] = {"embedded (a folder)": [], "AWS adapters on moto": []}
    with tempfile.TemporaryDirectory() as tmp:
        moto = harness.Moto(args.python, Path(tmp))
        try:
            for r in range(args.rounds):
                data = Path(tmp) / f"embedded-{r}"
                size, wall, cpu = run([args.bin, "embedded", str(data), str(args.docs), str(args.mib)])
                results["embedded (a folder)"].append((size, wall, cpu, 0.0))
                subprocess.run(["rm", "-rf", str(data)], check=True)
                before = process_cpu(moto.process.pid)
                size, wall, cpu = run([args.bin, "aws", moto.url, moto.url, str(args.docs), str(args.mib)])
                results["AWS adapters on moto"].append((size, wall, cpu, process_cpu(moto.process.pid) - before))
        finally:
            moto.stop()
    for backend, runs in results.items():
        size = runs[0][0]
        wall = statistics.median(r[1] for r in runs)
        cpu = statistics.median(r[2] for r in runs)
        moto_cpu = statistics.median(r[3] for r in runs)
        gib = size / 2**30
        rows.append([backend, f"{size / 2**20:,.0f}", f"{wall:.1f}", f"{size / 2**20 / wall:,.0f}", f"{cpu:.1f}",
                     f"{cpu / gib:.2f}", f"{moto_cpu:.1f}" if moto_cpu else "-"])
    print(f"One share of {args.docs} × {args.mib} MiB; median of {args.rounds} rounds; {common.cpu_model()}.")
    print()
    print(common.table(["backend", "archive (MiB)", "worker run (s)", "MiB/s", "worker CPU (s)", "worker CPU s per GiB",
                        "moto CPU (s)"], rows))


if __name__ == "__main__":
    main()
