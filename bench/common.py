"""Small helpers shared by the benchmark scripts in this folder (stdlib only)."""

import os
import socket
import statistics
import tempfile
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(argv, **kwargs):
    """Runs argv to completion; returns (wall seconds, peak RSS in MiB, stdout).

    Peak RSS is the program's own maximum resident set, reported by GNU time (`/usr/bin/time`,
    Debian package `time`): Linux keeps a process's high-water mark across fork and exec, so a
    child of this Python process would start from Python's own RSS; time's is ~2 MiB.
    """
    with tempfile.NamedTemporaryFile("r") as rss_file:
        start = time.perf_counter()
        run = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file.name, *argv], stdout=subprocess.PIPE, **kwargs)
        elapsed = time.perf_counter() - start
        if run.returncode != 0:
            raise SystemExit(f"{argv[0]} failed with exit code {run.returncode}")
        rss_kib = int(rss_file.read().split()[-1])
    return elapsed, rss_kib / 1024, run.stdout.decode()


def median(values):
    return statistics.median(values)


def table(header, rows):
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
