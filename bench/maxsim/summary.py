"""Side-by-side summary of the RESULT lines written by bench/maxsim/run.sh."""
import sys


def main():
    path, ndocs, npool = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    r = {}
    for line in open(path):
        if line.startswith("RESULT "):
            _, key, val = line.rstrip("\n").split(" ", 2)
            r[key] = val

    def f(key):
        return float(r[key]) if key in r else None

    best = r["best_kernel"]
    doc_mb = int(r["doc_bytes"]) / 1e6
    bw = f("dram_read_gb_per_s")
    print(f"documents 1030 x 128 float32 ({doc_mb:.3f} MB), L2-normalised, seeded; one core")
    print(f"kernel dispatched: {best}; SIMD kernels equal the scalar oracle bit for bit: "
          f"{r['simd_equals_scalar']}; numpy BLAS: {r.get('numpy_blas', '?')}")
    print(f"memory read bandwidth probe (1 thread, {ndocs * doc_mb / 1e3:.2f} GB): {bw:.2f} GB/s")
    print()
    hdr = f"{'':34}{'docs/s':>10}{'GB/s':>8}{'GFLOP/s':>9}{'x numpy':>9}{'% DRAM bw':>11}"
    print(hdr)
    for where, label in (("cache", "in cache (same doc)"),
                         ("dram", f"out of cache ({ndocs} docs; numpy {npool})")):
        print(label)
        for nq in (20, 32, 4):
            npy = f(f"numpy_q{nq}_{where}_docs_per_s")
            for kern in ("avx512", "avx2"):
                dps = f(f"{kern}_q{nq}_{where}_docs_per_s")
                if dps is None:
                    continue
                gbs = f(f"{kern}_q{nq}_{where}_gb_per_s")
                gfl = 2.0 * 1030 * nq * 128 * dps / 1e9
                ratio = f"{dps / npy:9.2f}" if npy else f"{'':9}"
                pct = f"{100 * gbs / bw:10.0f}%" if where == "dram" else f"{'':11}"
                print(f"  q{nq:<3} kernel {kern:<22}{dps:10.0f}{gbs:8.2f}{gfl:9.1f}{ratio}{pct}")
            if npy:
                gbs = f(f"numpy_q{nq}_{where}_gb_per_s")
                gfl = 2.0 * 1030 * nq * 128 * npy / 1e9
                pct = f"{100 * gbs / bw:10.0f}%" if where == "dram" else f"{'':11}"
                print(f"  q{nq:<3} numpy{'':24}{npy:10.0f}{gbs:8.2f}{gfl:9.1f}{1:9.2f}{pct}")
    if r.get("screen_available") == "yes":
        print()
        print(f"screened exact MaxSim (AMX bf16 screen + {best} on the kept rows; same bits as the "
              f"kernel: {r.get('screened_equals_plain')})")
        print(f"{'':34}{'docs/s':>10}{'x ' + best:>11}{'rows kept':>11}")
        for where in ("cache", "dram"):
            for nq in (20, 32, 4):
                base = f(f"{best}_q{nq}_{where}_docs_per_s")
                for split, name in ((0, "one bf16"), (1, "hi+lo bf16")):
                    dps = f(f"screen{split}_q{nq}_{where}_docs_per_s")
                    if dps is None or base is None:
                        continue
                    kept = f(f"screen{split}_q{nq}_kept_rows")
                    print(f"  q{nq:<3} {where:<6} {name:<20}{dps:10.0f}{dps / base:11.2f}{kept:11.1f}")
    sc = f("scalar_q32_cache_docs_per_s")
    print(f"  q32  scalar oracle (in cache){'':4}{sc:10.1f}")
    if "sql_q32_ms" in r:
        kms = f("kernel_q32_pool_ms")
        sms = f("sql_q32_ms")
        s1 = f("sql_q1_ms")
        print()
        print(f"SQL: SELECT id FROM t ORDER BY emb <#> q LIMIT 10 over {ndocs} rows (q: 32 x 128, "
              f"kernel {r.get('sql_kernel')}, data in shared_buffers, no parallel workers)")
        print("  best of 5, CPU time of the backend (wall clock in brackets)")
        print(f"  SQL query                      {sms:9.0f} ms  ({ndocs / sms * 1e3:.0f} docs/s)"
              f"  [{f('sql_q32_wall_ms'):.0f} ms]")
        print(f"  kernel alone, same docs        {kms:9.0f} ms  ({ndocs / kms * 1e3:.0f} docs/s)"
              f"  [{f('kernel_q32_pool_wall_ms'):.0f} ms]")
        print(f"  SQL / kernel                   {sms / kms:9.2f}")
        print(f"  SQL with a 1-row query         {s1:9.0f} ms  (detoast + executor, ~1/32 of the MaxSim work)"
              f"  [{f('sql_q1_wall_ms'):.0f} ms]")
        print(f"  => detoast + executor per row  {(s1 - kms / 32) / ndocs * 1e3:9.0f} us, "
              f"MaxSim per row {kms / ndocs * 1e3:.0f} us")
        same = r.get("sql_top10") == r.get("top10")
        print(f"  SQL top 10 equals the kernel's top 10: {'yes' if same else 'NO'} ({r.get('sql_top10')})")

if __name__ == "__main__":
    main()
