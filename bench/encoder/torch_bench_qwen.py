"""colpali-engine on PyTorch CPU: pages/s and single-query latency of
ColQwen2 / ColQwen2_5 with their processors (Pillow image processor at the
trained budget of 768 visual tokens, the training query format), processor
included, as the reference stack runs it.  Attention from $TORCH_ATTN
(default "sdpa"), compute dtype from $TORCH_DTYPE (default "float32").

usage: torch_bench_qwen.py MODEL_DIR THREADS RUNS QUERY IMAGE...
Prints one line: pages_per_s=... query_ms=... peak_rss_mb=...
"""
import json, os, resource, statistics, sys, time

import torch
from PIL import Image
from transformers import Qwen2VLImageProcessorPil, Qwen2VLVideoProcessor, AutoTokenizer

from colpali_engine.models import ColQwen2, ColQwen2_5, ColQwen2_5_Processor, ColQwen2Processor

model_dir, threads, runs, query = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
images = sys.argv[5:]
torch.set_num_threads(threads)
arch = json.load(open(os.path.join(model_dir, "config.json")))["architectures"][0]
cls, pcls = (ColQwen2, ColQwen2Processor) if arch == "ColQwen2" else (ColQwen2_5, ColQwen2_5_Processor)
t0 = time.perf_counter()
model = cls.from_pretrained(model_dir, dtype=getattr(torch, os.environ.get("TORCH_DTYPE", "float32")),
                            attn_implementation=os.environ.get("TORCH_ATTN", "sdpa")).eval()
processor = pcls(image_processor=Qwen2VLImageProcessorPil(min_pixels=3136, max_pixels=768 * 784),
                 tokenizer=AutoTokenizer.from_pretrained(model_dir), video_processor=Qwen2VLVideoProcessor())
load_s = time.perf_counter() - t0


def pages(paths):
    imgs = [Image.open(p) for p in paths]
    return model(**processor.process_images(imgs))


def one_query():
    return model(**processor.process_texts(["Query: " + query + "<|endoftext|>" * 10]))


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
print("load_s=%.3f pages=%d pages_per_s=%.4f s_per_page=%.3f cpu_s_per_page=%.3f query_ms=%.2f query_cpu_ms=%.2f peak_rss_mb=%.0f"
      % (load_s, len(images), len(images) / pages_med, pages_med / len(images), pages_cpu / len(images),
         query_med * 1000, query_cpu * 1000, rss))
