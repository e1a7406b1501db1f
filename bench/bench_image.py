#!/usr/bin/env python3
"""Side-by-side timing of page preprocessing: the engine (bench_image.c) vs
Pillow + numpy doing what transformers' slow SiglipImageProcessor does.
Best-of-20 CPU time per step, one thread on both sides.

    make build/libcolpali_engine.a
    OMP_NUM_THREADS=1 python3 bench/bench_image.py   (needs Pillow + numpy)
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def page(w=1700, h=2200):
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    rng = np.random.default_rng(1)
    for y in range(120, h - 120, 40):
        x = 100
        while x < w - 200:
            ww = int(rng.integers(30, 160))
            d.rectangle([x, y, x + ww, y + 18], fill=(20, 20, 20))
            x += ww + 25
    d.rectangle([200, 900, 1500, 1500], outline=(0, 0, 200), width=6)
    return img


def py_pre(path):
    im = Image.open(path)
    im.load()
    t1 = time.process_time()
    im = im.convert("RGB")
    r = im.resize((448, 448), Image.Resampling.BICUBIC)
    t2 = time.process_time()
    a = (np.array(r).astype(np.float64) * (1 / 255)).astype(np.float32)
    a = (a - np.float32(0.5)) / np.float32(0.5)
    a = a.transpose(2, 0, 1).copy()
    t3 = time.process_time()
    return t1, t2, t3


def main():
    tmp = tempfile.mkdtemp()
    p = page()
    files = [os.path.join(tmp, "page.png"), os.path.join(tmp, "page.jpg")]
    p.save(files[0])
    p.save(files[1], quality=90)
    exe = os.path.join(ROOT, "build", "bench_image")
    subprocess.check_call(["cc", "-O2", "-fopenmp", "-I" + os.path.join(ROOT, "src/engine"), "-o", exe,
                           os.path.join(ROOT, "bench/bench_image.c"),
                           os.path.join(ROOT, "build/libcolpali_engine.a"),
                           "-lopenblas", "-ljansson", "-ljpeg", "-lpcre2-8", "-lutf8proc", "-lm"])
    subprocess.check_call([exe] + files)
    for f in files:
        td = tr = tp = 1e30
        for _ in range(20):
            t0 = time.process_time()
            t1, t2, t3 = py_pre(f)
            td = min(td, t1 - t0)
            tr = min(tr, t2 - t1)
            tp = min(tp, t3 - t0)
        print("Pillow %-28s decode %7.2f ms  resize %6.2f ms  full preprocess %7.2f ms"
              % (f, 1e3 * td, 1e3 * tr, 1e3 * tp))


if __name__ == "__main__":
    sys.exit(main())
