#!/usr/bin/env python3
"""Two builds of the extension side by side on the exact scans of float and half pages.

    [AB_SCANS=float,half,binary,recipe] [AB_BASE=float] bench/storage/ab_exact.py DBNAME NQ ROUNDS LIBDIR OLD.so NEW.so
    (DBNAME: a database made by bench/storage/run.sh with KEEP=1, or any
    database with docs_f (multivector), docs_h (halfmultivector), docs_b
    (bitmultivector) and queries (qid, q multivector); AB_SCANS: the
    statements to time, in the order they run (default float,half), and
    AB_BASE the one the ratios are to (default the first): binary is the
    exact hamming scan with the query's sign bits, recipe the binary first
    pass reranked by the float MaxSim of its best 40, index the mvivf index
    on docs_f and binindex the one on docs_b (hamming; run.sh builds both); LIBDIR: $(pg_config --pkglibdir) of the
    server, which must be a private installation: each round copies one of
    the two libraries over LIBDIR/colpali.so and opens a new connection,
    which loads it)

On a machine others share only ratios taken in one run mean anything: the
rounds alternate the builds (old, new, new, old, ...), and in each round one
backend runs, for each of the NQ queries in turn, the exact seq scan
ORDER BY emb <#> q LIMIT 10 on the float pages and then on the half pages,
taking the backend's own CPU time (/proc/PID/schedstat) and the wall time of
each statement.  Prints per round and build the p50 of every scan and its
ratio to the base scan (CPU and wall), then the median and range of the
ratios per build, and checks that both builds return the same ids and
distances.  Scores of stored pages are kept while the query and the
snapshot stay the same (src/maxsim_stream.c), also from one statement to
the next: a statement on the same pages and query right after another one
reads none of them.  Order AB_SCANS so that a scan of other pages or with
another query format comes between (e.g. index,binary,float,half,recipe).
The server must run on this machine; NEW.so stays installed at the end.
"""
import os
import shutil
import statistics
import sys
import time

import psycopg

from exact_session import exact_session

ALL_SCANS = {
    "float": "SELECT id, emb <#> q FROM docs_f, (SELECT q FROM queries WHERE qid = %(q)s) s "
             "ORDER BY emb <#> q LIMIT 10",
    "half": "SELECT id, emb <#> q FROM docs_h, (SELECT q FROM queries WHERE qid = %(q)s) s "
            "ORDER BY emb <#> q LIMIT 10",
    # (OFFSET 0 keeps the cast of the query out of the per-row expression)
    "binary": "SELECT id, emb <#> qb FROM docs_b, (SELECT q::bitmultivector AS qb FROM queries "
              "WHERE qid = %(q)s OFFSET 0) s ORDER BY emb <#> qb LIMIT 10",
    # the mvivf index on docs_f (settings around it, untimed: INDEX_ON / INDEX_OFF)
    "index": "SELECT id, emb <#> (SELECT q FROM queries WHERE qid = %(q)s) AS d FROM docs_f "
             "ORDER BY emb <#> (SELECT q FROM queries WHERE qid = %(q)s) LIMIT 10",
    # the mvivf index on docs_b, hamming (run.sh builds it)
    "binindex": "SELECT id, emb <#> (SELECT q::bitmultivector FROM queries WHERE qid = %(q)s) AS d FROM docs_b "
                "ORDER BY emb <#> (SELECT q::bitmultivector FROM queries WHERE qid = %(q)s) LIMIT 10",
    "recipe": "SELECT c.id, f.emb <#> s.q FROM (SELECT id FROM docs_b, (SELECT q::bitmultivector AS qb "
              "FROM queries WHERE qid = %(q)s OFFSET 0) t ORDER BY emb <#> qb LIMIT 40) c "
              "JOIN docs_f f USING (id), (SELECT q FROM queries WHERE qid = %(q)s) s "
              "ORDER BY f.emb <#> s.q LIMIT 10",
}
SCANS = [(name, ALL_SCANS[name]) for name in os.environ.get("AB_SCANS", "float,half").split(",")]
INDEXED = ("index", "binindex")
INDEX_ON = "SET enable_indexscan = on; SET enable_seqscan = off"
INDEX_OFF = "SET enable_indexscan = off; SET enable_seqscan = on"


def run_scan(cur, name, stmt, qid):
    """Run one statement, with the index scan's settings around it."""
    if name in INDEXED:
        for s in INDEX_ON.split(";"):
            cur.execute(s)
    try:
        return cur.execute(stmt, {"q": qid}).fetchall()
    finally:
        if name in INDEXED:
            for s in INDEX_OFF.split(";"):
                cur.execute(s)


def install(lib, libdir):
    tmp = os.path.join(libdir, ".colpali-ab.so")
    shutil.copyfile(lib, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, os.path.join(libdir, "colpali.so"))


def run_round(db, qids):
    conn, cur, backend_cpu = exact_session(db)

    # warm up: the library, the buffers, the caches
    for name, stmt in SCANS:
        run_scan(cur, name, stmt, qids[0])
    cpu = {name: [] for name, _ in SCANS}
    wall = {name: [] for name, _ in SCANS}
    answers = {}
    for qid in qids:
        for name, stmt in SCANS:
            if name in INDEXED:
                for st in INDEX_ON.split(";"):
                    cur.execute(st)
            c0, t0 = backend_cpu(), time.perf_counter()
            got = cur.execute(stmt, {"q": qid}).fetchall()
            wall[name].append((time.perf_counter() - t0) * 1000)
            cpu[name].append(backend_cpu() - c0)
            if name in INDEXED:
                for st in INDEX_OFF.split(";"):
                    cur.execute(st)
            answers[(name, qid)] = got
    conn.close()
    return cpu, wall, answers


def main():
    db, nq, rounds, libdir, old, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        sys.argv[4], sys.argv[5], sys.argv[6]
    with psycopg.connect(dbname=db) as conn:
        qids = [r[0] for r in conn.execute("SELECT qid FROM queries ORDER BY qid LIMIT %s", (nq,))]
    builds = {"old": old, "new": new}
    # the ratios are to AB_BASE (default: the first scan); the order of
    # AB_SCANS is the order they run in, query by query
    names = [name for name, _ in SCANS]
    base = os.environ.get("AB_BASE", names[0])
    names = [base] + [n for n in names if n != base]
    others = names[1:]
    ratios = {b: {n: {"cpu": [], "wall": []} for n in others} for b in builds}
    p50 = {b: {n: [] for n in names} for b in builds}
    ref = {}
    print(f"{'round':>5s} {'build':>5s} " + " ".join(f"{n + ' cpu':>11s}" for n in names) + " " +
          " ".join(f"{names[0] + '/' + n:>13s}" for n in others) + "  (CPU; wall)")
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
            med = {n: statistics.median(cpu[n]) for n in names}
            medw = {n: statistics.median(wall[n]) for n in names}
            for n in names:
                p50[b][n].append(med[n])
            for n in others:
                ratios[b][n]["cpu"].append(med[names[0]] / med[n])
                ratios[b][n]["wall"].append(medw[names[0]] / medw[n])
            print(f"{r + 1:5d} {b:>5s} " + " ".join(f"{med[n]:11.1f}" for n in names) + " " +
                  " ".join(f"{med[names[0]] / med[n]:6.2f}x;{medw[names[0]] / medw[n]:5.2f}x" for n in others),
                  flush=True)
    install(builds["new"], libdir)
    print()
    for b in builds:
        parts = []
        for n in others:
            c, w = ratios[b][n]["cpu"], ratios[b][n]["wall"]
            parts.append(f"{names[0]}/{n} CPU median {statistics.median(c):.2f}x (range {min(c):.2f}-{max(c):.2f}), "
                         f"wall median {statistics.median(w):.2f}x (range {min(w):.2f}-{max(w):.2f})")
        print(f"{b}: " + "; ".join(parts) + "; CPU p50 ms " +
              ", ".join(f"{n} {statistics.median(p50[b][n]):.1f}" for n in names))
    print("new/old CPU time: " + ", ".join(
        f"{n} {statistics.median(p50['new'][n]) / statistics.median(p50['old'][n]):.3f}" for n in names))
    print(f"(same ids and distances from both builds for all {len(qids)} queries, {', '.join(names)}; "
          f"{rounds} rounds of {len(qids)} queries)")


if __name__ == "__main__":
    main()
