#!/usr/bin/env python3
"""Two builds of the extension side by side on the exact scans of float and half pages.

    bench/storage/ab_exact.py DBNAME NQ ROUNDS LIBDIR OLD.so NEW.so
    (DBNAME: a database made by bench/storage/run.sh with KEEP=1, or any
    database with docs_f (multivector), docs_h (halfmultivector) and
    queries (qid, q multivector); LIBDIR: $(pg_config --pkglibdir) of the
    server, which must be a private installation: each round copies one of
    the two libraries over LIBDIR/colpali.so and opens a new connection,
    which loads it)

On a machine others share only ratios taken in one run mean anything: the
rounds alternate the builds (old, new, new, old, ...), and in each round one
backend runs, for each of the NQ queries in turn, the exact seq scan
ORDER BY emb <#> q LIMIT 10 on the float pages and then on the half pages,
taking the backend's own CPU time (/proc/PID/schedstat) and the wall time of
each statement.  Prints per round and build the p50 of both scans and the
half/float ratio (CPU and wall), then the median and range of the ratios per
build, and checks that both builds return the same ids and distances.
The server must run on this machine; NEW.so stays installed at the end.
"""
import os
import shutil
import statistics
import sys
import time

import psycopg

from exact_session import exact_session

SCANS = [
    ("float", "SELECT id, emb <#> q FROM docs_f, (SELECT q FROM queries WHERE qid = %s) s "
              "ORDER BY emb <#> q LIMIT 10"),
    ("half", "SELECT id, emb <#> q FROM docs_h, (SELECT q FROM queries WHERE qid = %s) s "
             "ORDER BY emb <#> q LIMIT 10"),
]


def install(lib, libdir):
    tmp = os.path.join(libdir, ".colpali-ab.so")
    shutil.copyfile(lib, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, os.path.join(libdir, "colpali.so"))


def run_round(db, qids):
    conn, cur, backend_cpu = exact_session(db)

    # warm up: the library, the buffers, the caches
    for _, stmt in SCANS:
        cur.execute(stmt, (qids[0],)).fetchall()
    cpu = {name: [] for name, _ in SCANS}
    wall = {name: [] for name, _ in SCANS}
    answers = {}
    for qid in qids:
        for name, stmt in SCANS:
            c0, t0 = backend_cpu(), time.perf_counter()
            got = cur.execute(stmt, (qid,)).fetchall()
            wall[name].append((time.perf_counter() - t0) * 1000)
            cpu[name].append(backend_cpu() - c0)
            answers[(name, qid)] = got
    conn.close()
    return cpu, wall, answers


def main():
    db, nq, rounds, libdir, old, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        sys.argv[4], sys.argv[5], sys.argv[6]
    with psycopg.connect(dbname=db) as conn:
        qids = [r[0] for r in conn.execute("SELECT qid FROM queries ORDER BY qid LIMIT %s", (nq,))]
    builds = {"old": old, "new": new}
    ratios = {b: {"cpu": [], "wall": []} for b in builds}
    p50 = {b: {"float": [], "half": []} for b in builds}
    ref = {}
    print(f"{'round':>5s} {'build':>5s} {'float cpu':>10s} {'half cpu':>9s} {'ratio cpu':>10s} "
          f"{'float wall':>11s} {'half wall':>10s} {'ratio wall':>11s}")
    for r in range(rounds):
        order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
        for b in order:
            install(builds[b], libdir)
            cpu, wall, answers = run_round(db, qids)
            for key, got in answers.items():
                if key in ref and ref[key] != got:
                    print(f"DIFFERENT ANSWER: build {b}, {key}", file=sys.stderr)
                    sys.exit(1)
                ref[key] = got
            fc, hc = statistics.median(cpu["float"]), statistics.median(cpu["half"])
            fw, hw = statistics.median(wall["float"]), statistics.median(wall["half"])
            ratios[b]["cpu"].append(fc / hc)
            ratios[b]["wall"].append(fw / hw)
            p50[b]["float"].append(fc)
            p50[b]["half"].append(hc)
            print(f"{r + 1:5d} {b:>5s} {fc:10.1f} {hc:9.1f} {fc / hc:9.2f}x {fw:11.1f} {hw:10.1f} "
                  f"{fw / hw:10.2f}x", flush=True)
    install(builds["new"], libdir)
    print()
    for b in builds:
        c, w = ratios[b]["cpu"], ratios[b]["wall"]
        print(f"{b}: half/float CPU median {statistics.median(c):.2f}x (range {min(c):.2f}-{max(c):.2f}), "
              f"wall median {statistics.median(w):.2f}x (range {min(w):.2f}-{max(w):.2f}); "
              f"CPU p50 ms float {statistics.median(p50[b]['float']):.1f}, "
              f"half {statistics.median(p50[b]['half']):.1f}")
    print(f"new/old CPU time: float {statistics.median(p50['new']['float']) / statistics.median(p50['old']['float']):.3f}, "
          f"half {statistics.median(p50['new']['half']) / statistics.median(p50['old']['half']):.3f}")
    print(f"(same ids and distances from both builds for all {len(qids)} queries, float and half; "
          f"{rounds} rounds of {len(qids)} queries)")


if __name__ == "__main__":
    main()
