"""Benchmark of patrol against a cleanup script on SailPoint's official Python SDK, both
run against `patrol sim` on 127.0.0.1. `bench/run` builds the binary and calls this
script; run `bench/run --help` for the options.

The full run writes docs/benchmarks.md, the plots in docs/ and the raw numbers in
bench/results.json. `--smoke` runs every scenario once at a small size in seconds, writes
into a temporary directory and asserts nothing about timing: it only keeps the benchmark
from rotting.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import report
import scenarios

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent

# (limit, window seconds, latency ms, stale tokens)
FULL_THROUGHPUT = [
    (100, 10, 0, 200),
    (100, 10, 100, 200),
    (100, 1, 0, 200),
    (100, 1, 100, 200),
    (100, 1, 0, 1000),
    (100, 1, 100, 1000),
    (100, 1, 0, 2000),
]
SMOKE_THROUGHPUT = [(100, 1, 0, 30), (20, 1, 10, 30)]
FULL_SIZES = [10_000, 100_000, 1_000_000]
SMOKE_SIZES = [1_000]
SCENARIOS = ["throughput", "scale", "idle", "scrape"]


def parse_args():
    parser = argparse.ArgumentParser(
        description="Benchmark patrol against the official Python SDK.",
        epilog="bench/run passes --patrol, --sdk-python and --plot-python itself; "
        "give it only the other options.",
    )
    parser.add_argument("--patrol", required=True, help="patrol binary to measure (set by bench/run)")
    parser.add_argument("--sdk-python", required=True,
                        help="interpreter of the venv with the sailpoint SDK (set by bench/run)")
    parser.add_argument("--plot-python",
                        help="interpreter with matplotlib; without it no plots are drawn (set by bench/run)")
    parser.add_argument("--smoke", action="store_true", help="one small run of each scenario, into a temporary directory")
    parser.add_argument("--reps", type=int, help="repetitions of each measurement (default 3, smoke 1)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--sizes", help="comma-separated tenant sizes of the scale scenario")
    parser.add_argument("--idle-seconds", type=float, help="idle time before the daemon's footprint is read (default 60, smoke 2)")
    parser.add_argument("--out", help="directory for benchmarks.md and the plots (default docs/ for a full run, "
                        "a temporary one for a smoke or partial run)")
    parser.add_argument("--results", help="file for the raw results (default bench/results.json, or results.json in --out when given)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temporary directory with policies and logs (tenant files are still deleted)")
    parser.add_argument("--render-only", metavar="RESULTS", help="measure nothing: rewrite the page and plots from a results file")
    return parser.parse_args()


def render(results, results_path, out, plot_python):
    """Draw the plots and write benchmarks.md into `out`."""
    plots = []
    if plot_python:
        command = [plot_python, str(BENCH_DIR / "plot.py"), str(results_path), str(out)]
        plots = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout.split()
    (out / "benchmarks.md").write_text(report.render(results, plots), encoding="utf-8")


def main():
    args = parse_args()
    if args.render_only:
        results_path = Path(args.render_only)
        out = Path(args.out) if args.out else ROOT / "docs"
        out.mkdir(parents=True, exist_ok=True)
        render(json.loads(results_path.read_text(encoding="utf-8")), results_path, out, args.plot_python)
        scenarios.log(f"wrote {out / 'benchmarks.md'} from {results_path}")
        return 0
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        sys.exit(f"unknown scenario(s) {', '.join(sorted(unknown))}; expected some of {', '.join(SCENARIOS)}")

    tmp = Path(tempfile.mkdtemp(prefix="patrol-bench-"))
    # Only a full run replaces the committed page and results: a partial one would drop
    # every table it did not measure.
    partial = (set(only) != set(SCENARIOS) or args.sizes or args.reps
               or args.idle_seconds is not None)
    if args.out:
        out = Path(args.out)
    elif args.smoke:
        out = Path(tempfile.mkdtemp(prefix="patrol-bench-smoke-"))
    elif partial:
        out = Path(tempfile.mkdtemp(prefix="patrol-bench-partial-"))
        scenarios.log(f"a partial run leaves docs/ and bench/results.json alone; it writes to {out}")
    else:
        out = ROOT / "docs"
    out.mkdir(parents=True, exist_ok=True)
    if args.results:
        results_path = Path(args.results)
    elif args.smoke or args.out or partial:
        results_path = out / "results.json"
    else:
        results_path = BENCH_DIR / "results.json"
    reps = args.reps or (1 if args.smoke else 3)
    ctx = SimpleNamespace(patrol=str(Path(args.patrol).resolve()), sdk_python=args.sdk_python, tmp=tmp, bench_dir=BENCH_DIR)
    started = time.time()

    results = {
        "smoke": args.smoke,
        "reps": reps,
        "machine": dict(report.machine_info(ctx.patrol, args.sdk_python),
                        profile="debug" if "/debug/" in ctx.patrol else "release"),
        "command": "bench/run" + (" --smoke" if args.smoke else ""),
    }
    try:
        if "throughput" in only:
            results["throughput"] = scenarios.throughput(ctx, SMOKE_THROUGHPUT if args.smoke else FULL_THROUGHPUT, reps)
        if "scale" in only:
            sizes = SMOKE_SIZES if args.smoke else FULL_SIZES
            if args.sizes:
                sizes = [int(size) for size in args.sizes.split(",")]
            results["scale"] = scenarios.scale(ctx, sizes, reps)
        daemon = scenarios.daemon_available(ctx.patrol)
        results["daemon_available"] = daemon
        if "idle" in only and daemon:
            idle_seconds = 2 if args.smoke else 60
            if args.idle_seconds is not None:
                idle_seconds = args.idle_seconds
            results["idle"] = scenarios.idle(ctx, idle_seconds, reps)
            size, timeout = (1_000, 60) if args.smoke else (100_000, 600)
            # The later reading checks that nothing more is given back after the first. patrol
            # closes connections unused for 15 s, and jemalloc returns their buffers within
            # 20 s more, so both readings come after that.
            settled = idle_seconds + 1 if args.smoke else max(idle_seconds, 210)
            results["idle_after_run"] = scenarios.idle_after_run(ctx, size, idle_seconds, settled, reps,
                                                                 timeout_s=timeout)
        if "scrape" in only and daemon:
            size, timeout = (1_000, 60) if args.smoke else (100_000, 600)
            results["scrape"] = scenarios.scrape(ctx, size, 20, reps, timeout_s=timeout)
        if not daemon:
            scenarios.log("idle and scrape: not measured, patrol run unavailable")
    finally:
        if args.keep_temp:
            scenarios.log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    results["duration_s"] = time.time() - started
    results_path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    render(results, results_path, out, args.plot_python)
    scenarios.log(f"wrote {out / 'benchmarks.md'} and {results_path} in {results['duration_s']:.0f} s")

    failures = report.failures(results)
    for failure in failures:
        scenarios.log(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
