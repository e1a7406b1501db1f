#!/usr/bin/env python3
"""Recall/latency plot of bench/index/corpora.sh output.

    python3 bench/index/plot.py corpora-output.txt out.png

One line per corpus profile through the index's points (the defaults, whose
rerank depth adapts to the query, and a fixed depth cap, mvivf.max_rerank = 80)
and the exact scan (recall 1 at its latency), latency on a log scale.  Only side-by-side ratios of one run mean anything: the latencies are
those of one (shared, loaded) machine at one time.
"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    rows = []
    for line in open(sys.argv[1]):
        f = line.split()
        if len(f) == 12 and f[0] != "profile":
            try:
                rows.append((f[0], *map(float, f[1:])))
            except ValueError:
                pass
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (p, noshare, build, bpt, exact, rec, ms, ratio, refined, reranked, r80, ms80) in rows:
        line, = ax.plot([ms, ms80], [rec, r80], marker="o", label=f"{p} (noshare {noshare:.2f})")
        ax.plot([exact], [1.0], marker="s", color=line.get_color(), fillstyle="none")
        ax.annotate("", xy=(exact, 1.0), xytext=(ms, rec),
                    arrowprops=dict(arrowstyle="-", linestyle=":", color=line.get_color()))
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency, ms (log scale; squares: exact seq scan)")
    ax.set_ylabel("recall@10")
    ax.set_title("mvivf, 1,000 pages x 1030 x 128: defaults (adaptive) and max_rerank 80")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
