"""A session for timing exact scans, shared by the storage benchmarks.

exact_session(db) connects with autocommit, turns off JIT, index and bitmap
scans and parallel workers (so that ORDER BY emb <#> q runs the exact
sequential scan in this one backend), and returns (conn, cur, backend_cpu),
where backend_cpu() is the backend's CPU time so far in milliseconds (from
/proc/<pid>/schedstat: the client must run on the server's machine).
"""
import psycopg


def exact_session(db):
    conn = psycopg.connect(dbname=db, autocommit=True)
    cur = conn.cursor()
    pid = cur.execute("SELECT pg_backend_pid()").fetchone()[0]
    cur.execute("SET jit = off; SET enable_indexscan = off; SET enable_bitmapscan = off; "
                "SET max_parallel_workers_per_gather = 0")

    def backend_cpu():
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e6

    return conn, cur, backend_cpu
