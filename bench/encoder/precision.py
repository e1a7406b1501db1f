"""How far each precision is from transformers in float32, on the bench model
(real widths, 2 layers per tower, random weights): the C engine in fp32 and
with --precision bf16, transformers in bfloat16.  Pages and one query, as in
bench/encoder/run.sh.

usage: precision.py MODEL_DIR QUERY IMAGE...   (run from the repository root,
after make; prints one line per candidate: min per-row cosine, max |delta|
and the largest relative MaxSim difference against float32 transformers)
"""
import json, os, subprocess, sys

import numpy as np
import torch
from PIL import Image
from transformers import ColPaliForRetrieval, ColPaliProcessor
from transformers.models.siglip import SiglipImageProcessorPil

model_dir, query, images = sys.argv[1], sys.argv[2], sys.argv[3:]
torch.set_num_threads(2)


def torch_embed(dtype):
    model = ColPaliForRetrieval.from_pretrained(model_dir, dtype=dtype).eval()
    proc = ColPaliProcessor.from_pretrained(model_dir)
    proc.image_processor = SiglipImageProcessorPil.from_pretrained(model_dir)
    with torch.inference_mode():
        pages = []
        for p in images:
            b = proc.process_images([Image.open(p).convert("RGB")])
            pages.append(model(**b).embeddings[0].float().numpy())
        q = model(**proc.process_queries([query])).embeddings[0].float().numpy()
    return pages, q


def c_embed(precision):
    args = ["./colpali-encode", "--model", model_dir, "--threads", "2", "--precision", precision]
    for p in images:
        args += ["--image", p]
    args += ["--query", query]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout.splitlines()
    mats = [np.array(json.loads(line), dtype=np.float32) for line in out]
    return mats[:-1], mats[-1]


def maxsim(q, d):
    return float((q @ d.T).max(axis=1).sum())


def compare(name, cand, ref):
    (cp, cq), (rp, rq) = cand, ref
    cos, maxd, rel = 1.0, 0.0, 0.0
    for a, b in list(zip(cp, rp)) + [(cq, rq)]:
        n = min(len(a), len(b))  # torch pads queries; the rows beyond are masked zeros
        a, b = a[:n], b[:n]
        c = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
        cos = min(cos, float(c.min()))
        maxd = max(maxd, float(np.abs(a - b).max()))
    for a, b in zip(cp, rp):
        s, t = maxsim(cq, a), maxsim(rq, b)
        rel = max(rel, abs(s - t) / abs(t))
    print(f"{name:34s} min cosine {cos:.7f}  max|delta| {maxd:.2e}  MaxSim rel. diff {rel:.2e}")


ref = torch_embed(torch.float32)
compare("C engine fp32 vs torch float32:", c_embed("fp32"), ref)
compare("C engine bf16 vs torch float32:", c_embed("bf16"), ref)
compare("torch bfloat16 vs torch float32:", torch_embed(torch.bfloat16), ref)
