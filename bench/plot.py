"""Draws the benchmark's plots from bench/results.json with matplotlib: deletion
throughput against the rate-limit bound, and cost against tenant size. Run by
bench/bench.py with the interpreter of bench/.venv. Prints the names of the files it
wrote.

Usage: plot.py RESULTS_JSON OUT_DIR
"""

import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def med(runs, key):
    return statistics.median(run[key] for run in runs)


def throughput(results, out):
    cases = results["throughput"]
    settings = sorted({(c["limit"], c["window_s"], c["latency_ms"]) for c in cases}, key=lambda s: (-s[1], s[2]))
    fig, ax = plt.subplots(figsize=(9, 4.8))
    labels, bound, ours, peer, lows, highs = [], [], [], [], [], []
    for limit, window, latency in settings:
        for case in [c for c in cases if (c["limit"], c["window_s"], c["latency_ms"]) == (limit, window, latency)]:
            n = case["n"]
            labels.append(f"{limit}/{window}s\n{latency} ms\nN={n}")
            b = max(r["bound_s"] for r in case["runs"]["patrol"])
            bound.append(n / b if b else float("nan"))
            ours.append(n / med(case["runs"]["patrol"], "wall_s"))
            peer.append(n / med(case["runs"]["peer"], "wall_s"))
    x = range(len(labels))
    width = 0.27
    ax.bar([i - width for i in x], bound, width, label="rate-limit bound", color="#bbbbbb")
    ax.bar(list(x), ours, width, label="patrol", color="#1f77b4")
    ax.bar([i + width for i in x], peer, width, label="SDK script", color="#ff7f0e")
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("tokens deleted per second (median, log scale)")
    ax.set_title("Deletion throughput against the rate-limit bound")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)
    return "throughput.png"


def scale(results, out):
    entries = results["scale"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))

    targets = {"cpu_s": 0.3, "maxrss_mib": 100}  # patrol's targets at 100,000 tokens
    for ax, key, title, unit in (
        (axes[0], "wall_s", "wall time", "s"),
        (axes[1], "cpu_s", "CPU time", "s"),
        (axes[2], "maxrss_mib", "peak resident memory", "MiB"),
    ):
        if key in targets:
            ax.plot([100_000], [targets[key]], marker="_", markersize=22, markeredgewidth=2,
                    color="#d62728", linestyle="none", label="patrol's target at 100,000")
        series = (
            ("patrol", "patrol, first run", "#1f77b4"),
            ("patrol_later", "patrol, later run", "#2ca02c"),
            ("peer", "SDK script (listing only)", "#ff7f0e"),
        )
        for tool, label, color in series:
            measured = [e for e in entries if e["runs"].get(tool)]
            if not measured:
                continue
            values = [med(e["runs"][tool], key) for e in measured]
            lo = [values[i] - min(r[key] for r in e["runs"][tool]) for i, e in enumerate(measured)]
            hi = [max(r[key] for r in e["runs"][tool]) - values[i] for i, e in enumerate(measured)]
            ax.errorbar([e["size"] for e in measured], values, yerr=[lo, hi], marker="o",
                        label=label, color=color, capsize=3)

        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tokens in the tenant")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)

    # Upper left: the target marks sit low at 100,000 tokens, where a legend at the
    # bottom would cover them.
    axes[0].legend(fontsize=8, loc="upper left")
    axes[1].legend(fontsize=8, loc="upper left")
    fig.suptitle("Cost against tenant size (median, range over repetitions)")
    fig.tight_layout()
    fig.savefig(out / "scale.png", dpi=110)
    plt.close(fig)
    return "scale.png"


def main():
    results = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    out = Path(sys.argv[2])
    written = []
    if results.get("throughput"):
        written.append(throughput(results, out))
    if results.get("scale"):
        written.append(scale(results, out))
    print(" ".join(written))


if __name__ == "__main__":
    main()
