"""transformers on PyTorch CPU: pages/s and single-query latency of
ColPaliForRetrieval (float32, Pillow image processor), processor included,
as the reference stack runs it.  Attention implementation from $TORCH_ATTN
(default "sdpa", transformers' own default; "eager" is what the goldens use).
Compute dtype from $TORCH_DTYPE (default "float32"; "bfloat16" runs the model
in bfloat16, as transformers users on a CPU with AVX512_BF16 or AMX might).

usage: torch_bench.py MODEL_DIR THREADS RUNS QUERY IMAGE...
Prints one line: pages_per_s=... query_ms=... peak_rss_mb=...
"""
import os, resource, statistics, sys, time

import torch
from PIL import Image
from transformers import ColPaliForRetrieval, ColPaliProcessor
from transformers.models.siglip import SiglipImageProcessorPil

model_dir, threads, runs, query = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
images = sys.argv[5:]
torch.set_num_threads(threads)
t0 = time.perf_counter()
model = ColPaliForRetrieval.from_pretrained(model_dir, dtype=getattr(torch, os.environ.get("TORCH_DTYPE", "float32")),
                                            attn_implementation=os.environ.get("TORCH_ATTN", "sdpa")).eval()
processor = ColPaliProcessor.from_pretrained(model_dir)
processor.image_processor = SiglipImageProcessorPil.from_pretrained(model_dir)
load_s = time.perf_counter() - t0


def pages(paths):
    imgs = [Image.open(p).convert("RGB") for p in paths]
    batch = processor.process_images(imgs)
    return model(**batch).embeddings


def one_query():
    batch = processor.process_queries([query])
    return model(**batch).embeddings


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn):
    t, c = [], []
    for _ in range(runs):
        s, cs = time.perf_counter(), cpu_s()
        fn()
        t.append(time.perf_counter() - s)
        c.append(cpu_s() - cs)
    return statistics.median(t), statistics.median(c)


with torch.inference_mode():
    pages(images[:1])
    pages_med, pages_cpu = timed(lambda: pages(images))
    one_query()
    query_med, query_cpu = timed(one_query)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"device=cpu load_s={load_s:.3f} pages={len(images)} pages_per_s={len(images) / pages_med:.4f} "
      f"s_per_page={pages_med / len(images):.3f} cpu_s_per_page={pages_cpu / len(images):.3f} "
      f"query_ms={query_med * 1000:.2f} query_cpu_ms={query_cpu * 1000:.2f} peak_rss_mb={rss:.0f} runs={runs}")
