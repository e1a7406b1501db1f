#!/usr/bin/env python3
"""Recall/latency curves of bench/index/pgvector.sh output, one panel per corpus.

    python3 bench/index/plot_curves.py pgvector-output.txt out.png

Per corpus shape: mvivf (its defaults, then mvivf.max_rerank capping the
depth at 80, 40, 20, 10), pgvector's token-HNSW pattern (k' nearest tokens
per query row at growing hnsw.ef_search, then the exact rerank of their
pages) and the exact sequential scan (square, recall 1).  Solid lines: each
query's first run in a fresh session; dotted: the same queries run again.
Latency on a log scale.  Only side-by-side ratios of one run mean anything.
"""
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter, ScalarFormatter  # noqa: E402

STYLE = {"mvivf": ("tab:blue", "o"), "pgvector": ("tab:orange", "^"),
         "exact": ("black", "s")}


def main():
    points = defaultdict(lambda: defaultdict(list))
    for line in open(sys.argv[1]):
        f = line.split()
        if len(f) != 8 or f[0] != "curve" or f[1] == "profile":
            continue
        _, profile, method, setting, recall, first, again, docs = f
        points[profile][method].append((setting, float(recall), float(first), float(again)))
    profiles = list(points)
    fig, axes = plt.subplots(1, len(profiles), figsize=(4.2 * len(profiles), 4.2),
                             squeeze=False, sharey=True)
    for ax, profile in zip(axes[0], profiles):
        for method, rows in points[profile].items():
            color, marker = STYLE.get(method, ("gray", "x"))
            rows = sorted(rows, key=lambda r: r[2])
            ax.plot([r[2] for r in rows], [r[1] for r in rows], marker=marker, color=color,
                    label=method if method != "exact" else "exact scan")
            if method != "exact":
                ax.plot([r[3] for r in rows], [r[1] for r in rows], marker=marker,
                        fillstyle="none", linestyle=":", color=color)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{profile}", fontsize=10)
        ax.set_xlabel("p50 ms (log)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("recall@10")
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.suptitle("mvivf and pgvector token HNSW + exact rerank\n"
                 "(solid: first run in a fresh session, dotted: run again)", fontsize=9)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
