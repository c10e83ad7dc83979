"""Benchmark 1: the ZIP of a share, ours against what a practice would use instead.

200 documents, 1 GiB in all (140 PDFs whose content streams are incompressible, as a real
PDF's compressed streams are, and 60 plain-text reports that deflate well), archived by:

- Sealpost's archive builder (shared/benches/archive.rs → service::archive::build_archive, as
  `sealpost serve` runs it when a share is sent): PDFs stored, text deflated at level 6;
- Info-ZIP `zip` (Debian), as one would type it, and with `-n .pdf` (PDFs stored, the same
  choice as ours);
- Python's `zipfile` with ZIP_DEFLATED, as one would write it, and with PDFs stored.

Each runs --runs times, in rounds (median reported), on files in the page cache; wall time and the
process's own peak RSS (wait4). Every archive is checked with `unzip -tq` once.

    python3 bench/zip.py --archive-bin target/release/deps/archive-… [--runs 3] [--total-mib 1024]
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from common import measure, median, table  # noqa: E402

PYTHON_ZIP = r"""
import os, sys, zipfile
out, src, store_pdf = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
    for name in sorted(os.listdir(src)):
        stored = store_pdf and name.endswith(".pdf")
        z.write(os.path.join(src, name), name, compress_type=zipfile.ZIP_STORED if stored else None)
"""

WORDS = (
    "Befund Labor Haemoglobin Leukozyten Thrombozyten Kreatinin Glukose Cholesterin "
    "Referenzbereich erhoeht normal Kontrolle empfohlen Patientin Untersuchung Blutbild "
    "Diagnose Therapie Verlauf unauffaellig Rezept Dosierung taeglich morgens abends"
).split()


def make_documents(folder, total_mib, seed=7):
    """140 PDFs and 60 text files, `total_mib` MiB in all, sizes drawn from a fixed seed."""
    rng = random.Random(seed)
    total = total_mib * 1024 * 1024
    text_share = 0.08
    pdf_sizes = [rng.uniform(0.3, 1.7) for _ in range(140)]
    text_sizes = [rng.uniform(0.3, 1.7) for _ in range(60)]
    pdf_scale = total * (1 - text_share) / sum(pdf_sizes)
    text_scale = total * text_share / sum(text_sizes)
    for i, weight in enumerate(pdf_sizes):
        size = int(weight * pdf_scale)
        with open(os.path.join(folder, f"Befund-{i:03}.pdf"), "wb") as f:
            head = b"%%PDF-1.7\n1 0 obj<</Length %d/Filter/FlateDecode>>stream\n" % size
            f.write(head)
            left = size - len(head)
            while left > 0:
                chunk = min(left, 1 << 20)
                f.write(os.urandom(chunk))
                left -= chunk
            f.write(b"\nendstream endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")
    for i, weight in enumerate(text_sizes):
        size = int(weight * text_scale)
        lines = []
        written = 0
        while written < size:
            line = " ".join(rng.choice(WORDS) for _ in range(12)) + f" {rng.randint(1, 999)}.{rng.randint(0, 9)}\n"
            lines.append(line)
            written += len(line)
        with open(os.path.join(folder, f"Bericht-{i:03}.txt"), "w") as f:
            f.writelines(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive-bin", required=True, help="the built shared/benches/archive.rs")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--total-mib", type=int, default=1024)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    for tool in ("zip", "unzip"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (Debian: apt-get install zip unzip)")

    with tempfile.TemporaryDirectory(prefix="sealpost-bench-zip-") as tmp:
        docs = os.path.join(tmp, "docs")
        os.mkdir(docs)
        make_documents(docs, args.total_mib)
        names = sorted(os.listdir(docs))
        total = sum(os.path.getsize(os.path.join(docs, n)) for n in names)
        out = os.path.join(tmp, "out.zip")

        def sealpost():
            work = os.path.join(tmp, "work")
            shutil.rmtree(work, ignore_errors=True)
            os.mkdir(work)
            secs, rss, printed = measure([args.archive_bin, docs, work])
            path = printed.split("\t")[0]
            return secs, rss, path

        def info_zip(extra):
            def run():
                if os.path.exists(out):
                    os.remove(out)
                secs, rss, _ = measure(["zip", "-q", "-X", *extra, out, *names], cwd=docs)
                return secs, rss, out
            return run

        def python_zip(store_pdf):
            def run():
                secs, rss, _ = measure([args.python, "-c", PYTHON_ZIP, out, docs, "1" if store_pdf else "0"])
                return secs, rss, out
            return run

        contenders = [
            ("Sealpost archive builder (PDF stored, text deflated)", sealpost),
            ("Info-ZIP `zip -q` (everything deflated)", info_zip([])),
            ("Info-ZIP `zip -q -n .pdf` (PDF stored)", info_zip(["-n", ".pdf"])),
            ("Python `zipfile`, ZIP_DEFLATED", python_zip(False)),
            ("Python `zipfile`, PDF stored", python_zip(True)),
        ]
        # Rounds, each running every archiver once: a noisy neighbour then slows all of them
        # alike rather than whichever ran while it was busy.
        times = {name: [] for name, _ in contenders}
        rsss = {name: [] for name, _ in contenders}
        sizes = {}
        for round_ in range(args.runs):
            for name, run in contenders:
                secs, rss, path = run()
                times[name].append(secs)
                rsss[name].append(rss)
                if round_ == 0:
                    subprocess.run(["unzip", "-tq", path], check=True, stdout=subprocess.DEVNULL)
                    sizes[name] = os.path.getsize(path)
                print(f"  {name}: {secs:.2f} s, {rss:.1f} MiB", file=sys.stderr)
        results = [(name, median(times[name]), max(rsss[name]), sizes[name]) for name, _ in contenders]

    ours = results[0][1]
    rows = [
        (name, f"{secs:.2f}", f"{secs / ours:.2f}×", f"{rss:.1f}", f"{size / 2**20:.0f}")
        for name, secs, rss, size in results
    ]
    print(f"{len(names)} documents, {total / 2**30:.2f} GiB in all; median of {args.runs} runs, files in the page cache.\n")
    print(table(["archiver", "time (s)", "time vs ours", "peak RSS (MiB)", "archive (MiB)"], rows))
    fastest_rival = min(r[1] for r in results[1:])
    verdict = "met" if ours < fastest_rival and results[0][2] < 64 else "NOT met"
    print(f"\nGoal (faster than every other archiver here, peak RSS under 64 MiB): {verdict}.")


if __name__ == "__main__":
    main()
