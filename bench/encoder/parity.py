"""Compare colpali-encode with transformers (fp32, eager, CPU) on one model
folder: per-row cosine and max |d| of a page and a query.  Loaded with
from_pretrained, transformers 5.24 runs ColPali's Gemma bidirectionally (as
ColPali was trained), like the engine's default.

usage: parity.py MODEL_DIR IMAGE QUERY [THREADS]
"""
import json, subprocess, sys

import numpy as np
import torch
from PIL import Image
from transformers import ColPaliForRetrieval, ColPaliProcessor
from transformers.models.siglip import SiglipImageProcessorPil

model_dir, image, query = sys.argv[1:4]
threads = sys.argv[4] if len(sys.argv) > 4 else "2"
torch.set_num_threads(int(threads))
out = subprocess.run(["./colpali-encode", "--model", model_dir, "--threads", threads,
                      "--attention", "bidirectional", "--image", image, "--query", query],
                     check=True, capture_output=True, text=True).stdout.splitlines()
c_page, c_query = (np.array(json.loads(l), dtype=np.float64) for l in out)
model = ColPaliForRetrieval.from_pretrained(model_dir, dtype=torch.float32,
                                            attn_implementation="eager").eval()
proc = ColPaliProcessor.from_pretrained(model_dir)
proc.image_processor = SiglipImageProcessorPil.from_pretrained(model_dir)
with torch.inference_mode():
    t_page = model(**proc.process_images([Image.open(image).convert("RGB")])).embeddings[0].double().numpy()
    t_query = model(**proc.process_queries([query])).embeddings[0].double().numpy()
for name, c, t in (("page", c_page, t_page), ("query", c_query, t_query)):
    cos = (c * t).sum(1) / np.linalg.norm(c, axis=1) / np.linalg.norm(t, axis=1)
    print(f"{name}: rows {c.shape[0]} (torch {t.shape[0]}), max|d| {np.abs(c - t).max():.3g}, min cosine {cos.min():.7f}")
ms_c = np.max(c_query @ c_page.T, axis=1).sum()
ms_t = np.max(t_query @ t_page.T, axis=1).sum()
print(f"MaxSim C {ms_c:.6f} torch {ms_t:.6f} |d| {abs(ms_c - ms_t):.3g}")
