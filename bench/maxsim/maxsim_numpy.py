"""numpy MaxSim on the data written by maxsim_bench (bench/maxsim/run.sh).

Single BLAS thread (per-core comparison): (doc @ query.T).max(axis=0).sum().
Times are CPU time of this thread (time.thread_time), as in maxsim_bench.c.
Prints "RESULT key value" lines.
"""
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

NROWS, DIM = 1030, 128


def main():
    d, ndocs_pool = sys.argv[1], int(sys.argv[2])
    docs = np.fromfile(f"{d}/docs.f32", dtype=np.float32, count=ndocs_pool * NROWS * DIM)
    docs = docs.reshape(ndocs_pool, NROWS, DIM)
    q = np.fromfile(f"{d}/queries.f32", dtype=np.float32).reshape(52, DIM)
    queries = {20: np.ascontiguousarray(q[:20].T), 32: np.ascontiguousarray(q[20:].T)}
    doc_bytes = NROWS * DIM * 4

    with threadpool_limits(limits=1, user_api="blas"):
        info = [i for i in threadpool_info() if i["user_api"] == "blas"]
        if info:
            print(f"RESULT numpy_blas {info[0]['internal_api']}-{info[0]['version']}"
                  f"-{info[0].get('architecture')}-threads{info[0]['num_threads']}")
        for nq, qt in queries.items():
            # in cache: one doc again and again
            doc = docs[0]
            float((doc @ qt).max(axis=0).sum(dtype=np.float64))
            reps = 1000 if nq == 20 else 700
            t0 = time.thread_time()
            for _ in range(reps):
                float((doc @ qt).max(axis=0).sum(dtype=np.float64))
            t = time.thread_time() - t0
            print(f"RESULT numpy_q{nq}_cache_docs_per_s {reps / t:.1f}")
            print(f"RESULT numpy_q{nq}_cache_gb_per_s {reps * doc_bytes / t / 1e9:.2f}")
            # out of cache: each doc of the pool once
            t0 = time.thread_time()
            for i in range(docs.shape[0]):
                float((docs[i] @ qt).max(axis=0).sum(dtype=np.float64))
            t = time.thread_time() - t0
            print(f"RESULT numpy_q{nq}_dram_docs_per_s {docs.shape[0] / t:.1f}")
            print(f"RESULT numpy_q{nq}_dram_gb_per_s {docs.shape[0] * doc_bytes / t / 1e9:.2f}")


if __name__ == "__main__":
    main()
