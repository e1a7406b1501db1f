#!/usr/bin/env python3
"""Exact MaxSim top-10 with one-thread numpy on the corpus of bench/index/gen.c,
for comparison with the exact scan in PostgreSQL (bench/index/corpora.sh).

    GEN=/tmp/mvivf-gen [GEN_* traits] python3 bench/index/numpy_exact.py NDOCS NQ

The pages are held in memory as one float32 array (numpy's best case: no
reading or decoding per query); per query the time covers the product with
every page row, the per-page maxima and sums, and the top 10.  Run it with
one BLAS thread (OPENBLAS_NUM_THREADS=1) and without OPENBLAS_CORETYPE /
OPENBLAS_L2_SIZE, which slow a current numpy down.
"""
import os
import subprocess
import sys
import time

import numpy as np

DIM, ROWS = 128, 1030


def main():
    n, nq = int(sys.argv[1]), int(sys.argv[2])
    gen = os.environ.get("GEN", "/tmp/mvivf-gen")
    raw = subprocess.run([gen, "docs", str(n)], capture_output=True, check=True).stdout
    rec = 2 + 4 + 4 + 4 + 12 + ROWS * DIM * 4
    docs = np.empty((n * ROWS, DIM), np.float32)
    off = 19
    for i in range(n):
        docs[i * ROWS:(i + 1) * ROWS] = np.frombuffer(
            raw[off + 26: off + rec], dtype=">f4").reshape(ROWS, DIM)
        off += rec
    del raw
    raw = subprocess.run([gen, "queries", str(n), str(nq)], capture_output=True, check=True).stdout
    off, queries = 19, []
    for _ in range(nq):
        off += 2 + 4 + 4 + 4 + 4
        ln = int.from_bytes(raw[off:off + 4], "big")
        off += 4
        nv = int.from_bytes(raw[off + 4:off + 8], "big")
        queries.append(np.frombuffer(raw[off + 12:off + ln], dtype=">f4").reshape(nv, DIM).astype(np.float32))
        off += ln
    times = []
    for q in queries:
        t0 = time.perf_counter()
        s = (docs @ q.T).reshape(n, ROWS, -1).max(axis=1).sum(axis=1)
        top = np.argpartition(-s, 10)[:10]
        top = top[np.argsort(-s[top])]
        times.append((time.perf_counter() - t0) * 1000)
    try:
        from threadpoolctl import threadpool_info
        blas = ";".join(f"{i.get('internal_api')}:{i.get('architecture')}:{i.get('num_threads')}" for i in threadpool_info())
    except ImportError:
        blas = "threadpoolctl not installed"
    print(f"numpy exact top-10: {n} pages, {nq} queries, p50 {np.median(times):.1f} ms ({blas})")


if __name__ == "__main__":
    main()
