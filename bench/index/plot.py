#!/usr/bin/env python3
"""Recall/latency plot of bench/index/corpora.sh output.

    python3 bench/index/plot.py corpora-output.txt out.png

Per corpus profile: the index at its defaults (rerank depth adapting to the
query) on each query's first run in a fresh session (filled circle), the same
queries run again in that session (open circle) and with a fixed depth cap,
mvivf.max_rerank = 80, also run again (triangle); the exact scan is the square
at recall 1.  Latency on a log scale.  Output of corpora.sh from before the
first-run column (12 fields) plots its defaults and cap points only.  Only
side-by-side ratios of one run mean anything: the latencies are those of one
machine at one time.
"""
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    rows = []
    for line in open(sys.argv[1]):
        f = line.split()
        if len(f) not in (12, 13) or f[0] == "profile":
            continue
        try:
            v = [float(x) for x in f[1:]]
        except ValueError:
            continue
        if len(f) == 12:
            v.insert(7, float("nan"))  # no again_ms column
        rows.append((f[0], *v))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (p, noshare, build, bpt, exact, rec, ms, ratio, again, refined, reranked, r80,
         ms80) in rows:
        line, = ax.plot([ms], [rec], marker="o", linestyle="none",
                        label=f"{p} (noshare {noshare:.2f})")
        color = line.get_color()
        if not math.isnan(again):
            ax.plot([again], [rec], marker="o", fillstyle="none", color=color)
        ax.plot([ms80], [r80], marker="^", fillstyle="none", color=color)
        ax.plot([exact], [1.0], marker="s", color=color, fillstyle="none")
        ax.annotate("", xy=(exact, 1.0), xytext=(ms, rec),
                    arrowprops=dict(arrowstyle="-", linestyle=":", color=color))
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency, ms (log scale; squares: exact seq scan)")
    ax.set_ylabel("recall@10")
    ax.set_title("mvivf, 1,000 pages x 1030 x 128: first runs (filled), run again (open),\n"
                 "max_rerank 80 run again (triangles)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
