#!/usr/bin/env python3
"""CPU time of the exact scans, side by side, on a machine others share.

    GEN=... NDOCS=... GEN_SEED=... bench/storage/cpu_compare.py DBNAME NQ
    (run by bench/storage/run.sh, which sets those)

On a shared machine a query's wall time is mostly time spent waiting for a
core; the CPU time the backend itself spends (its /proc/PID/schedstat) is far
steadier.  For each of NQ queries in turn (round robin), every statement runs
once in one backend and its CPU time is taken; numpy (one BLAS thread, the
pages held as one float32 array: its best case) scores the same query on the
same pages and its process CPU time is taken the same way.  Prints p50 CPU
and wall milliseconds per statement and the ratio to the first one.

Statements: the exact seq scan ORDER BY emb <#> q LIMIT 10 on float, half and
binary (hamming) pages, each with colpali.maxsim_streaming on (out-of-line
pages read chunk by chunk) and off (each page detoasted whole first, as
before), the float and half scans with colpali.maxsim_screening off (every
row through the exact kernel; on, the default, screens rows on AMX where the
CPU has it), and the float scan's parts: headers only, and detoast + 1-row
query.
The server must run on this machine (schedstat is read by backend PID).
"""
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

from exact_session import exact_session

STMTS = [
    ("float, streaming", "on", "SELECT id FROM docs_f ORDER BY emb <#> $1 LIMIT 10"),
    ("float, materialised", "off", "SELECT id FROM docs_f ORDER BY emb <#> $1 LIMIT 10"),
    ("float, streaming, unscreened", "on,off", "SELECT id FROM docs_f ORDER BY emb <#> $1 LIMIT 10"),
    ("half, streaming", "on", "SELECT id FROM docs_h ORDER BY emb <#> $1 LIMIT 10"),
    ("half, materialised", "off", "SELECT id FROM docs_h ORDER BY emb <#> $1 LIMIT 10"),
    ("half, streaming, unscreened", "on,off", "SELECT id FROM docs_h ORDER BY emb <#> $1 LIMIT 10"),
    ("binary hamming, streaming", "on", "SELECT id FROM docs_b ORDER BY emb <#> $1::bitmultivector LIMIT 10"),
    ("binary hamming, materialised", "off", "SELECT id FROM docs_b ORDER BY emb <#> $1::bitmultivector LIMIT 10"),
    ("float headers only", "on", "SELECT id FROM docs_f ORDER BY num_vectors(emb) + 0 * dims($1) LIMIT 10"),
    ("float detoast + 1-row query, streaming", "on",
     "SELECT id FROM docs_f ORDER BY emb <#> (($1::real[])[1:1][1:dims($1)])::multivector LIMIT 10"),
    ("float detoast + 1-row query, materialised", "off",
     "SELECT id FROM docs_f ORDER BY emb <#> (($1::real[])[1:1][1:dims($1)])::multivector LIMIT 10"),
]


def main():
    db, nq = sys.argv[1], int(sys.argv[2])
    conn, cur, backend_cpu = exact_session(db)

    # the same pages for numpy, from the generator run.sh loaded them from
    # (COPY binary: signature and header, then per row: field count, id, page)
    raw = subprocess.run([os.environ["GEN"], "docs", os.environ["NDOCS"], os.environ["GEN_SEED"]],
                         capture_output=True, check=True).stdout
    n = int(os.environ["NDOCS"])
    rows, dim = 1030, 128
    rec = 2 + 4 + 4 + 4 + 12 + rows * dim * 4
    docs = np.empty((n * rows, dim), np.float32)
    ids = np.empty(n, np.int64)
    off = 19
    for i in range(n):
        ids[i] = int.from_bytes(raw[off + 6:off + 10], "big", signed=True)
        docs[i * rows:(i + 1) * rows] = np.frombuffer(raw[off + 26:off + rec], dtype=">f4").reshape(rows, dim)
        off += rec
    del raw
    queries = [(qid, np.asarray(q, np.float32)) for qid, q in
               cur.execute("SELECT qid, q::real[] FROM queries ORDER BY qid LIMIT %s", (nq,))]

    cpu = {name: [] for name, _, _ in STMTS}
    wall = {name: [] for name, _, _ in STMTS}
    cpu["numpy (1 thread)"], wall["numpy (1 thread)"] = [], []
    agree = 0
    for qid, q in queries:
        # the query is cast inside its subquery, once per statement: a cast
        # outside it would be applied to the subquery's result for every row
        def with_query(stmt):
            return re.sub(r"\$1(::(\w*multivector))?",
                          lambda m: f"(SELECT q{m.group(1) or ''} FROM queries WHERE qid = {qid})", stmt)
        first = None
        for name, setting, stmt in STMTS:
            # "streaming[,screening]": colpali.maxsim_screening is on unless named off
            streaming, _, screening = setting.partition(",")
            cur.execute(f"SET colpali.maxsim_streaming = {streaming}")
            cur.execute(f"SET colpali.maxsim_screening = {screening or 'on'}")
            c0, t0 = backend_cpu(), time.perf_counter()
            got = [r[0] for r in cur.execute(with_query(stmt))]
            wall[name].append((time.perf_counter() - t0) * 1000)
            cpu[name].append(backend_cpu() - c0)
            if first is None:
                first = got
        c0, t0 = time.process_time(), time.perf_counter()
        s = (docs @ q.T).reshape(n, rows, -1).max(axis=1).sum(axis=1)
        top = np.argpartition(-s, 10)[:10]
        top = top[np.argsort(-s[top])]
        cpu["numpy (1 thread)"].append((time.process_time() - c0) * 1000)
        wall["numpy (1 thread)"].append((time.perf_counter() - t0) * 1000)
        agree += len(set(ids[top]) & set(first))
    base = statistics.median(cpu[STMTS[0][0]])
    print(f"{'statement (exact seq scan, LIMIT 10)':44s} {'cpu p50 ms':>11s} {'wall p50 ms':>12s} {'cpu vs first':>13s}")
    for name in cpu:
        c = statistics.median(cpu[name])
        print(f"{name:44s} {c:11.1f} {statistics.median(wall[name]):12.1f} {base / c:12.2f}x")
    print(f"(numpy's top 10 share {agree / (10 * len(queries)):.3f} of the float scan's; "
          f"{len(queries)} queries, round robin; cpu = the backend's or numpy's own CPU time)")


if __name__ == "__main__":
    main()
