#!/usr/bin/env python3
"""Peak memory of colpali-ingest against the length of the PDF.

    PG* environment -> a server with colpali; python3 bench/ingest/memory.py [SHORT LONG]

Draws two PDFs (default 5 and 80 pages) with Pillow, loads each with
colpali-ingest --embed later into a scratch table, and prints the peak
resident memory of the tool and its pdftoppm children (the largest of them:
getrusage of the waited-for descendants) and the page rate, side by side.
Pages are rendered one per pdftoppm call, so the peak should not grow with
the page count.  Nothing is embedded: this measures the tool, not the model.
For comparison, the long PDF is also converted the way pdf2image-based
tools do it (every page rendered, then all held as decoded images), and
the peak of that is printed as the baseline.
"""
import os
import resource
import subprocess
import sys
import tempfile
import time

from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.join(HERE, "..", "..", "python")


def make_pdf(path, pages):
    ims = []
    for i in range(pages):
        im = Image.new("RGB", (1240, 1754), "white")       # A4 at 150 dpi
        d = ImageDraw.Draw(im)
        for k in range(60):
            d.text((80, 80 + 26 * k), "page %d line %d: the quick brown fox" % (i + 1, k), fill="black")
        d.rectangle((200, 1300, 200 + 8 * i % 800, 1600), fill=(30, 90, 200))
        ims.append(im)
    ims[0].save(path, save_all=True, append_images=ims[1:], resolution=150)


def run(pdf):
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    code = ("import resource, subprocess, sys, time\n"
            "t = time.monotonic()\n"
            "r = subprocess.run(sys.argv[1:], stderr=subprocess.DEVNULL)\n"
            "dt = time.monotonic() - t\n"
            "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, dt)\n")
    out = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "colpali_pg.ingest",
                          "--create", "--embed", "later", "--table", "bench_ingest_mem",
                          "--progress", "none", pdf],
                         env=env, stdout=subprocess.PIPE, check=True).stdout.split()
    if out[0] != b"0":
        sys.exit("colpali-ingest failed on %s" % pdf)
    return int(out[1]), float(out[2])


def all_pages_at_once(pdf):
    """Peak RSS (kB) of rendering every page and holding them all decoded."""
    code = ("import glob, os, resource, subprocess, sys, tempfile\n"
            "from PIL import Image\n"
            "with tempfile.TemporaryDirectory() as d:\n"
            "    subprocess.run(['pdftoppm', '-png', '-scale-to', '896', sys.argv[1], d + '/p'], check=True)\n"
            "    pages = [Image.open(f).convert('RGB') for f in sorted(glob.glob(d + '/p*.png'))]\n"
            "print(max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,\n"
            "          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n")
    return int(subprocess.run([sys.executable, "-c", code, pdf], stdout=subprocess.PIPE, check=True).stdout)


def main():
    short, long_ = (int(a) for a in sys.argv[1:3]) if len(sys.argv) > 2 else (5, 80)
    subprocess.run(["psql", "-Xqc", "DROP TABLE IF EXISTS bench_ingest_mem"], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for n in (short, long_):
            pdf = os.path.join(tmp, "doc%d.pdf" % n)
            make_pdf(pdf, n)
            kb, secs = run(pdf)
            results.append((n, os.path.getsize(pdf), kb, n / secs))
        baseline = all_pages_at_once(pdf)
    subprocess.run(["psql", "-Xqc", "DROP TABLE IF EXISTS bench_ingest_mem"], check=True)
    print("%8s %12s %14s %10s" % ("pages", "PDF bytes", "peak RSS kB", "pages/s"))
    for n, size, kb, rate in results:
        print("%8d %12d %14d %10.2f" % (n, size, kb, rate))
    print("peak RSS ratio %d pages / %d pages: %.2f (page ratio %.0f)" % (
        long_, short, results[1][2] / results[0][2], long_ / short))
    print("all %d pages at once (pdf2image style): peak RSS %d kB, %.1fx colpali-ingest's" % (
        long_, baseline, baseline / results[1][2]))


if __name__ == "__main__":
    main()
