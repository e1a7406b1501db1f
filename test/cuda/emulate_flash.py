"""Lane-level emulation of attn_flash (cuda/kernels_attention.cu) in numpy, for checking its
index arithmetic without a GPU: every lane's registers are modelled as in the kernel, mma.sync
m16n8k16 is applied through the PTX fragment layouts (A: rows g / g+8, cols 2c(+1) / +8;
B: rows 2c(+1) / +8, col g; C: rows g / g+8, cols 2c(+1)), and the result is compared with a
float64 reference attention (same masking rules as CpBackend.attention).  bf16 rounding is
modelled too, so the error must be of bf16 size (not of a wrong index).

    python3 test/cuda/emulate_flash.py
"""
import numpy as np

BQ, BK = 64, 64


def bf16(x):
    x = np.asarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


def mma(d, a, b):
    """d[lane][4] += A(16x16) . B(16x8) with per-lane fragments a[lane][8] (element order a0..a7)
    and b[lane][4] (b0..b3), through the PTX layouts."""
    A = np.zeros((16, 16), np.float32)
    B = np.zeros((16, 8), np.float32)
    for lane in range(32):
        g, c = lane >> 2, lane & 3
        for i in range(8):
            row = g if (i < 2 or 4 <= i < 6) else g + 8
            col = c * 2 + (i & 1) + (8 if i >= 4 else 0)
            A[row, col] = a[lane][i]
        for i in range(4):
            B[c * 2 + (i & 1) + (8 if i >= 2 else 0), g] = b[lane][i]
    D = A.astype(np.float64) @ B.astype(np.float64)
    for lane in range(32):
        g, c = lane >> 2, lane & 3
        for i in range(4):
            d[lane][i] += D[g + (8 if i >= 2 else 0), c * 2 + (i & 1)]


def flash(q, k, v, B, T, nh, nkv, hd, scale, lens, causal, HDP):
    out = np.full(q.shape, np.nan, np.float32)
    g_ = nh // nkv
    nrows = T * g_
    for b in range(B):
        L = lens[b] if lens is not None else T
        for kvh in range(nkv):
            for row0 in range(0, nrows, BQ):
                def qoff(i):
                    t, h = i // g_, kvh * g_ + i % g_
                    return ((b * T + t) * nh + h) * hd
                Qs = np.zeros((BQ, HDP), np.float32)
                for r in range(BQ):
                    if row0 + r < nrows:
                        Qs[r, :hd] = bf16(q[qoff(row0 + r):qoff(row0 + r) + hd])
                t_last = (min(row0 + BQ, nrows) - 1) // g_
                kend = min(t_last + 1, L) if causal else L
                for warp in range(4):
                    o = np.zeros((32, HDP // 8, 4))
                    m = np.full((32, 2), -np.inf)
                    l = np.zeros((32, 2))
                    for k0 in range(0, kend, BK):
                        Ks = np.zeros((BK, HDP), np.float32)
                        Vt = np.zeros((HDP, BK), np.float32)
                        for r in range(BK):
                            if k0 + r < L:
                                off = ((b * T + k0 + r) * nkv + kvh) * hd
                                Ks[r, :hd] = bf16(k[off:off + hd])
                                Vt[:hd, r] = bf16(v[off:off + hd])
                        s = np.zeros((32, BK // 8, 4))
                        for kk in range(0, HDP, 16):
                            a = [[0] * 8 for _ in range(32)]
                            for lane in range(32):
                                gr, gc = lane >> 2, lane & 3
                                rr = warp * 16 + gr
                                a[lane] = [Qs[rr, kk + 2 * gc], Qs[rr, kk + 2 * gc + 1],
                                           Qs[rr + 8, kk + 2 * gc], Qs[rr + 8, kk + 2 * gc + 1],
                                           Qs[rr, kk + 8 + 2 * gc], Qs[rr, kk + 9 + 2 * gc],
                                           Qs[rr + 8, kk + 8 + 2 * gc], Qs[rr + 8, kk + 9 + 2 * gc]]
                            for nt in range(BK // 8):
                                bb = []
                                for lane in range(32):
                                    gr, gc = lane >> 2, lane & 3
                                    kr = nt * 8 + gr
                                    bb.append([Ks[kr, kk + 2 * gc], Ks[kr, kk + 2 * gc + 1],
                                               Ks[kr, kk + 8 + 2 * gc], Ks[kr, kk + 9 + 2 * gc]])
                                d = [list(s[lane, nt]) for lane in range(32)]
                                mma(d, a, bb)
                                for lane in range(32):
                                    s[lane, nt] = d[lane]
                        sl2 = scale * 1.4426950408889634
                        for lane in range(32):
                            gr, gc = lane >> 2, lane & 3
                            t_lo = (row0 + warp * 16 + gr) // g_
                            t_hi = (row0 + warp * 16 + gr + 8) // g_
                            for nt in range(BK // 8):
                                for e in range(4):
                                    kj = k0 + nt * 8 + 2 * gc + (e & 1)
                                    ok = kj < L and (not causal or kj <= (t_lo if e < 2 else t_hi))
                                    s[lane, nt, e] = s[lane, nt, e] * sl2 if ok else -np.inf
                        # row max over the 4 lanes of a group (shfl_xor 1, 2)
                        mx = np.zeros((32, 2))
                        for lane in range(32):
                            mx[lane, 0] = max(s[lane, :, 0].max(), s[lane, :, 1].max())
                            mx[lane, 1] = max(s[lane, :, 2].max(), s[lane, :, 3].max())
                        for lane in range(32):
                            grp = [(lane & ~3) | j for j in range(4)]
                            for h in range(2):
                                newm = max(m[lane, h], max(mx[x, h] for x in grp))
                                mx[lane, h] = newm
                        for lane in range(32):
                            for h in range(2):
                                ms = 0.0 if mx[lane, h] == -np.inf else mx[lane, h]
                                al = np.exp2(m[lane, h] - ms)
                                m[lane, h] = mx[lane, h]
                                l[lane, h] *= al
                                o[lane, :, 2 * h] *= al
                                o[lane, :, 2 * h + 1] *= al
                                for nt in range(BK // 8):
                                    for e in (2 * h, 2 * h + 1):
                                        s[lane, nt, e] = np.exp2(s[lane, nt, e] - ms)
                                        l[lane, h] += s[lane, nt, e]
                        for j in range(BK // 16):
                            a = []
                            for lane in range(32):
                                p0, p1 = s[lane, 2 * j], s[lane, 2 * j + 1]
                                a.append(list(bf16([p0[0], p0[1], p0[2], p0[3], p1[0], p1[1], p1[2], p1[3]])))
                            for nd in range(HDP // 8):
                                bb = []
                                for lane in range(32):
                                    gr, gc = lane >> 2, lane & 3
                                    vr = nd * 8 + gr
                                    bb.append([Vt[vr, j * 16 + 2 * gc], Vt[vr, j * 16 + 2 * gc + 1],
                                               Vt[vr, j * 16 + 8 + 2 * gc], Vt[vr, j * 16 + 9 + 2 * gc]])
                                d = [list(o[lane, nd]) for lane in range(32)]
                                mma(d, a, bb)
                                for lane in range(32):
                                    o[lane, nd] = d[lane]
                    for lane in range(32):
                        gr, gc = lane >> 2, lane & 3
                        grp = [(lane & ~3) | j for j in range(4)]
                        for half in range(2):
                            i = row0 + warp * 16 + gr + 8 * half
                            if i >= nrows:
                                continue
                            inv = 1.0 / sum(l[x, half] for x in grp)
                            zero = (i // g_) >= L
                            base = qoff(i)
                            for nd in range(HDP // 8):
                                c = nd * 8 + 2 * gc
                                for e in range(2):
                                    if c + e < hd:
                                        out[base + c + e] = 0.0 if zero else o[lane, nd, 2 * half + e] * inv
    return out


def reference(q, k, v, B, T, nh, nkv, hd, scale, lens, causal):
    out = np.zeros(q.shape, np.float64)
    q4 = q.reshape(B, T, nh, hd).astype(np.float64)
    k4 = k.reshape(B, T, nkv, hd).astype(np.float64)
    v4 = v.reshape(B, T, nkv, hd).astype(np.float64)
    o4 = out.reshape(B, T, nh, hd)
    for b in range(B):
        L = lens[b] if lens is not None else T
        for h in range(nh):
            kh = h // (nh // nkv)
            for t in range(L):
                n = min(L, t + 1) if causal else L
                sc = k4[b, :n, kh] @ q4[b, t, h] * scale
                p = np.exp(sc - sc.max())
                o4[b, t, h] = (p / p.sum()) @ v4[b, :n, kh]
    return out


def check(B, T, nh, nkv, hd, lens, causal, HDP, seed):
    rng = np.random.default_rng(seed)
    q = rng.uniform(-2, 2, B * T * nh * hd).astype(np.float32)
    k = rng.uniform(-2, 2, B * T * nkv * hd).astype(np.float32)
    v = rng.uniform(-1, 1, B * T * nkv * hd).astype(np.float32)
    scale = 1 / np.sqrt(hd)
    got = flash(q, k, v, B, T, nh, nkv, hd, scale, lens, causal, HDP)
    ref = reference(q, k, v, B, T, nh, nkv, hd, scale, lens, causal)
    nmse = np.sum((got - ref) ** 2) / np.sum(ref ** 2)
    ok = nmse < 1e-4
    print(f"{'ok' if ok else 'FAIL'}  B{B} T{T} h{nh}/{nkv} d{hd} (HDP {HDP}) lens {lens} causal {causal}: NMSE {nmse:.2e}")
    return ok


if __name__ == "__main__":
    results = [
        check(1, 70, 2, 2, 24, None, False, 32, 1),        # two key tiles, partial tiles, odd hd
        check(2, 20, 8, 1, 16, [20, 7], False, 16, 2),     # MQA grouping (8 heads share a tile), padding
        check(2, 20, 8, 1, 16, [20, 7], True, 16, 3),      # causal + padding
        check(1, 67, 4, 2, 40, [67], True, 64, 4),         # GQA, causal across two key tiles
    ]
    raise SystemExit(0 if all(results) else 1)
