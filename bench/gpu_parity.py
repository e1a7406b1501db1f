"""Full-size parity and speed of the colpali CUDA backend against transformers, on one GPU.

Run by bench/gpu_check.sh (see docs/cuda.md); needs torch + transformers with CUDA.

  python3 bench/gpu_parity.py WORKDIR CUDA_TOOL

1. Builds transformers' ColPaliForRetrieval with random weights in the real ColPali-3B shapes
   (ColPali-3B shapes), bf16, sdpa, on the GPU, and saves it with
   save_pretrained into WORKDIR/model.
2. Encodes PAGES random pages (uniform pixels, already bf16 values so both sides see the same
   input) and QUERIES random queries (14..30 tokens: <bos>, random ids, 10 x <pad>, "\\n",
   right-padded) with transformers, and times transformers at page batch 1 and 32 and single
   queries (median of 5 / 10 CUDA-event timings after warm-up, the method of hf_baseline_gpu.py).
3. Frees the model and runs `CUDA_TOOL encode` (our engine, CUDA backend) on the same ids and
   pixels from the saved folder, then `CUDA_TOOL bench`.
4. Compares: per-row cosine of every valid output row; MaxSim scores of every query against
   every page (fp32, zero rows included as in colpali-engine); top-10 ranking agreement.
Prints a table; writes $OUT/gpu_parity.json and $OUT/gpu_summary.txt; exits 1 when parity
fails or our tool failed.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

WORK, TOOL = sys.argv[1], sys.argv[2]
OUT = os.environ.get("OUT", "/tmp/out")
PAGES = int(os.environ.get("PARITY_PAGES", "200"))
QUERIES = int(os.environ.get("PARITY_QUERIES", "100"))
TOPK = 10
# PARITY_TINY=1: a tiny config on whatever device torch has (dry run of this script on a CPU
# machine, with CUDA_TOOL_CPU=1 so that cuda_tool uses the CPU backend)
TINY = os.environ.get("PARITY_TINY") == "1"
DEV = "cuda" if torch.cuda.is_available() else "cpu"
os.makedirs(OUT, exist_ok=True)
for d in ("model", "in", "ours"):
    os.makedirs(os.path.join(WORK, d), exist_ok=True)
RES = {}


def log(*a):
    print(*a, flush=True)


def bench(fn, warm=2, rep=5):
    """Median ms of rep calls after warm calls (CUDA events, as hf_baseline_gpu.py)."""
    for _ in range(warm):
        fn()
    ts = []
    if DEV != "cuda":
        for _ in range(rep):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
    else:
        torch.cuda.synchronize()
        for _ in range(rep):
            s = torch.cuda.Event(enable_timing=True)
            e = torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize()
            ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


from transformers import ColPaliConfig, ColPaliForRetrieval, PaliGemmaConfig
import transformers

RES["device"] = torch.cuda.get_device_name(0) if DEV == "cuda" else "cpu (dry run)"
log("torch", torch.__version__, "transformers", transformers.__version__, RES["device"])
RES["transformers"] = transformers.__version__

vision = dict(model_type="siglip_vision_model", hidden_size=1152, intermediate_size=4304,
              num_hidden_layers=27, num_attention_heads=16, patch_size=14, image_size=448,
              projection_dim=2048, num_image_tokens=1024, hidden_act="gelu_pytorch_tanh",
              layer_norm_eps=1e-6, vision_use_head=False)  # real ColPali: no pooling head
text = dict(model_type="gemma", hidden_size=2048, intermediate_size=16384, num_hidden_layers=18,
            num_attention_heads=8, num_key_value_heads=1, head_dim=256, vocab_size=257216,
            max_position_embeddings=8192, rope_theta=10000.0, rms_norm_eps=1e-6,
            hidden_activation="gelu_pytorch_tanh")
vlm = PaliGemmaConfig(vision_config=vision, text_config=text, image_token_index=257152,
                      vocab_size=257216, projection_dim=2048, hidden_size=2048)
IMG_TOK, VOCAB_IDS, S, NIMG = 257152, 256000, 448, 1024
if TINY:
    vision.update(hidden_size=32, intermediate_size=80, num_hidden_layers=2, num_attention_heads=2,
                  image_size=56, projection_dim=32, num_image_tokens=16)
    text.update(hidden_size=32, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                head_dim=16, vocab_size=2176)
    vlm = PaliGemmaConfig(vision_config=vision, text_config=text, image_token_index=2152,
                          vocab_size=2176, projection_dim=32, hidden_size=32)
    IMG_TOK, VOCAB_IDS, S, NIMG = 2152, 2000, 56, 16
cfg = ColPaliConfig(vlm_config=vlm, embedding_dim=128)

torch.manual_seed(0)
t0 = time.time()
with torch.device(DEV):
    try:
        model = ColPaliForRetrieval._from_config(cfg, attn_implementation="sdpa", dtype=torch.bfloat16)
    except TypeError:
        model = ColPaliForRetrieval._from_config(cfg, attn_implementation="sdpa", torch_dtype=torch.bfloat16)
model = model.to(DEV).eval()
log(f"model init {time.time() - t0:.1f} s, {sum(p.numel() for p in model.parameters())} parameters")
t0 = time.time()
model.save_pretrained(os.path.join(WORK, "model"))
log(f"save_pretrained {time.time() - t0:.1f} s:", sorted(os.listdir(os.path.join(WORK, "model"))))

# ---- inputs ----
g = torch.Generator().manual_seed(1)
page_ids = [IMG_TOK] * NIMG + [2, 1000, 1500, 1200, 1800, 108]
T = len(page_ids)
px = (torch.rand(PAGES, 3, S, S, generator=g) * 2 - 1).to(torch.bfloat16)
qlens = torch.randint(14, 31, (QUERIES,), generator=g).tolist()
TQ = max(qlens)
qids = torch.zeros(QUERIES, TQ, dtype=torch.int64)
qmask = torch.zeros(QUERIES, TQ, dtype=torch.int64)
for i, L in enumerate(qlens):
    body = torch.randint(3, VOCAB_IDS, (L - 12,), generator=g)
    row = torch.cat([torch.tensor([2]), body, torch.zeros(10, dtype=torch.int64), torch.tensor([108])])
    qids[i, :L] = row
    qmask[i, :L] = 1
ind = os.path.join(WORK, "in")
px.float().numpy().tofile(os.path.join(ind, "page_pixels.f32"))
np.array(page_ids, dtype=np.int32).tofile(os.path.join(ind, "page_ids.i32"))
qids.to(torch.int32).numpy().tofile(os.path.join(ind, "query_ids.i32"))
np.array(qlens, dtype=np.int32).tofile(os.path.join(ind, "query_lens.i32"))
with open(os.path.join(ind, "shapes.txt"), "w") as f:
    f.write(f"{PAGES} {T} {QUERIES} {TQ} {S}\n")

# ---- transformers: embeddings ----
hf_pages = torch.empty(PAGES, T, 128)
with torch.inference_mode():
    for i in range(0, PAGES, 16):
        b = min(16, PAGES - i)
        ids = torch.tensor([page_ids] * b, device=DEV)
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=px[i:i + b].to(DEV))
        hf_pages[i:i + b] = out.embeddings.float().cpu()
    out = model(input_ids=qids.to(DEV), attention_mask=qmask.to(DEV))
    hf_queries = out.embeddings.float().cpu()

# ---- transformers: speed, same inputs shape as ours ----
with torch.inference_mode():
    for B in (1, 32):
        ids = torch.tensor([page_ids] * B, device=DEV)
        am = torch.ones_like(ids)
        pxb = (torch.rand(B, 3, S, S, device=DEV) * 2 - 1).to(torch.bfloat16)
        if DEV == "cuda":
            torch.cuda.reset_peak_memory_stats()
        ms = bench(lambda: model(input_ids=ids, attention_mask=am, pixel_values=pxb))
        RES[f"hf_pages_b{B}_ms"] = ms
        RES[f"hf_pages_b{B}_per_s"] = B * 1000 / ms
        if B == 32 and DEV == "cuda":
            RES["hf_peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 1e9
    ids = torch.randint(3, VOCAB_IDS, (1, 24), device=DEV)
    ids[:, 0] = 2
    RES["hf_query_b1_ms"] = bench(lambda: model(input_ids=ids, attention_mask=torch.ones_like(ids)), warm=3, rep=10)
log("transformers:", {k: round(v, 3) for k, v in RES.items() if k.startswith("hf_")})

# Which Gemma attention does this transformers run, for these very calls?  transformers 5.24 was
# seen running ColPaliForRetrieval causally for page batches and for padded query batches, but
# bidirectionally for a query batch without padding (docs/encoder.md#attention expects bidirectional).
# Change one later token of sequence 0: its first row moves only under bidirectional attention;
# the same call twice gives the noise floor.
def detect(call, ids, pos, new_id):
    with torch.inference_mode():
        e1 = call(ids).embeddings[0, 0].float()
        e1b = call(ids).embeddings[0, 0].float()
        ids2 = ids.clone()
        ids2[0, pos] = new_id
        e2 = call(ids2).embeddings[0, 0].float()
    noise = (e1 - e1b).abs().max().item()
    moved = (e1 - e2).abs().max().item()
    return ("causal" if moved <= 2 * noise + 1e-7 else "bidirectional"), moved, noise


pids2 = torch.tensor([page_ids] * 2, device=DEV)
px2 = px[:2].to(DEV)
PAGE_MODE, mv, nz = detect(lambda ids: model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=px2),
                           pids2, NIMG + 2, 1234)
log(f"transformers' Gemma attention for page batches: {PAGE_MODE} (first row moved {mv:.3g}, noise {nz:.3g})")
qm = qmask.to(DEV)
QUERY_MODE, mv, nz = detect(lambda ids: model(input_ids=ids, attention_mask=qm), qids.to(DEV), qlens[0] - 1, 1234)
log(f"transformers' Gemma attention for padded query batches: {QUERY_MODE} (first row moved {mv:.3g}, noise {nz:.3g})")
RES["hf_gemma_attention_pages"] = PAGE_MODE
RES["hf_gemma_attention_queries"] = QUERY_MODE
del model
if DEV == "cuda":
    torch.cuda.empty_cache()

# ---- ours ----
t0 = time.time()
r = subprocess.run([TOOL, "encode", os.path.join(WORK, "model"), ind, os.path.join(WORK, "ours"),
                    PAGE_MODE, QUERY_MODE])
if r.returncode != 0:
    log("FAIL: cuda_tool encode exited with", r.returncode)
    RES["parity_error"] = f"cuda_tool encode exited with {r.returncode}"
else:
    log(f"cuda_tool encode {time.time() - t0:.1f} s")
    ours_pages = torch.from_numpy(np.fromfile(os.path.join(WORK, "ours", "pages.f32"), dtype=np.float32)).view(PAGES, T, 128)
    ours_queries = torch.from_numpy(np.fromfile(os.path.join(WORK, "ours", "queries.f32"), dtype=np.float32)).view(QUERIES, TQ, 128)

    def row_cos(a, b):
        return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1)

    pc = row_cos(ours_pages.reshape(-1, 128), hf_pages.reshape(-1, 128))
    qvalid = qmask.bool().reshape(-1)
    qc = row_cos(ours_queries.reshape(-1, 128)[qvalid], hf_queries.reshape(-1, 128)[qvalid])
    pad_max = ours_queries.reshape(-1, 128)[~qvalid].abs().max().item() if (~qvalid).any() else 0.0
    allc = torch.cat([pc, qc])
    RES["rows"] = int(allc.numel())
    RES["cos_min"] = allc.min().item()
    RES["cos_p001"] = torch.quantile(allc.float(), 0.001).item()
    RES["cos_mean"] = allc.mean().item()
    RES["cos_rows_below_0995"] = int((allc < 0.995).sum().item())
    RES["page_cos_min"] = pc.min().item()
    RES["query_cos_min"] = qc.min().item()
    RES["query_padding_rows_max_abs"] = pad_max

    def maxsim(Q, D):
        Q = Q.to(DEV)
        D = D.to(DEV)
        s = torch.empty(Q.shape[0], D.shape[0], device=DEV)
        for i in range(Q.shape[0]):
            s[i] = torch.einsum("qd,ntd->nqt", Q[i], D).amax(dim=2).sum(dim=1)
        return s.cpu()

    s_hf = maxsim(hf_queries, hf_pages)
    s_us = maxsim(ours_queries, ours_pages)
    top_hf = s_hf.topk(TOPK, dim=1).indices
    top_us = s_us.topk(TOPK, dim=1).indices
    RES["top10_positions_identical"] = (top_hf == top_us).float().mean().item()
    RES["top10_set_overlap"] = float(np.mean([len(set(a.tolist()) & set(b.tolist())) / TOPK
                                              for a, b in zip(top_hf, top_us)]))
    RES["top1_identical"] = (top_hf[:, 0] == top_us[:, 0]).float().mean().item()
    RES["maxsim_max_abs_diff"] = (s_hf - s_us).abs().max().item()
    RES["maxsim_hf_score_spread"] = (s_hf.max(dim=1).values - s_hf.min(dim=1).values).mean().item()
    RES["parity_pass"] = bool(RES["cos_min"] >= 0.995 and RES["top10_positions_identical"] >= 0.95)

# ---- ours: speed ----
r = subprocess.run([TOOL, "bench", os.path.join(WORK, "model"), "5"], capture_output=True, text=True)
sys.stderr.write(r.stderr)
if r.returncode == 0 and r.stdout.strip():
    for k, v in json.loads(r.stdout.strip().splitlines()[-1]).items():
        RES["ours_" + k] = v
else:
    RES["bench_error"] = f"cuda_tool bench exited with {r.returncode}"

with open(os.path.join(OUT, "gpu_parity.json"), "w") as f:
    json.dump(RES, f, indent=1)


def fmt(k, nd=3):
    v = RES.get(k)
    return "-" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def ratio(a, b, inv=False):
    if a not in RES or b not in RES:
        return "-"
    return f"{(RES[b] / RES[a]) if inv else (RES[a] / RES[b]):.2f}x"


L = [""]
L.append(f"== colpali CUDA backend vs transformers on {RES['device']} (Gemma attention: pages "
         f"{RES.get('hf_gemma_attention_pages')}, queries {RES.get('hf_gemma_attention_queries')}) ==")
L.append(f"parity: {fmt('rows', 0)} rows, cosine min {fmt('cos_min', 5)} p0.1% {fmt('cos_p001', 5)} "
    f"mean {fmt('cos_mean', 5)}, rows < 0.995: {fmt('cos_rows_below_0995', 0)}")
L.append(f"        top-10 MaxSim positions identical {fmt('top10_positions_identical')} (set overlap "
    f"{fmt('top10_set_overlap')}, top-1 {fmt('top1_identical')}), max |score diff| "
    f"{fmt('maxsim_max_abs_diff')}  -> {'PASS' if RES.get('parity_pass') else 'FAIL'}")
L.append(f"{'workload':<28}{'transformers':>14}{'ours':>12}{'ours/hf':>10}")
L.append(f"{'pages/s batch 1':<28}{fmt('hf_pages_b1_per_s', 1):>14}{fmt('ours_pages_b1_per_s', 1):>12}{ratio('ours_pages_b1_per_s', 'hf_pages_b1_per_s'):>10}")
L.append(f"{'pages/s batch 32':<28}{fmt('hf_pages_b32_per_s', 1):>14}{fmt('ours_pages_b32_per_s', 1):>12}{ratio('ours_pages_b32_per_s', 'hf_pages_b32_per_s'):>10}")
L.append(f"{'single query ms':<28}{fmt('hf_query_b1_ms', 2):>14}{fmt('ours_query_b1_ms', 2):>12}{ratio('ours_query_b1_ms', 'hf_query_b1_ms', inv=True):>10}")
L.append(f"{'peak GPU GB (batch 32)':<28}{fmt('hf_peak_gpu_gb', 2):>14}{fmt('ours_peak_gpu_gb', 2):>12}{ratio('ours_peak_gpu_gb', 'hf_peak_gpu_gb'):>10}")
L.append("(ours/hf: speed-up for pages/s and query latency, memory ratio for GB)")
for line in L:
    log(line)
with open(os.path.join(OUT, "gpu_summary.txt"), "w") as f:
    f.write("\n".join(L) + "\n")
sys.exit(0 if RES.get("parity_pass") and "bench_error" not in RES else 1)
