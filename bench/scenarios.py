"""The benchmark's measurements. Each function runs one scenario on both tools where the
scenario has a peer, and returns plain dicts that `report.py` turns into tables.

- `throughput`: delete N stale tokens against a rate-limited tenant, patrol and the peer
  in alternating order, each on a fresh simulated tenant loaded from the same file.
- `scale`: list, judge and report tenants of growing size in a dry run; the peer lists.
- `idle`, `idle_after_run` and `scrape`: the daemon (`patrol run`), when the binary has
  that command.
"""

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

import harness
import tenant
from harness import CLIENT_ID, CLIENT_SECRET, SECRET_ENV, Sim


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_patrol_audit(ctx, policy, stdout_path, apply):
    command = [ctx.patrol, "audit", "--config", str(policy), "--format", "json"]
    command.append("--apply" if apply else "--dry-run")
    return harness.measure(command, stdout_path, ctx.tmp / "patrol.stderr",
                           env={SECRET_ENV: CLIENT_SECRET, "RUST_LOG": "warn"})


def run_peer(ctx, base_url, stdout_path, apply):
    command = [ctx.sdk_python, str(ctx.bench_dir / "peer.py"), "--base-url", base_url, "--client-id", CLIENT_ID]
    if apply:
        command.append("--apply")
    return harness.measure(command, stdout_path, ctx.tmp / "peer.stderr", env={"PEER_CLIENT_SECRET": CLIENT_SECRET})


def read_json(path):
    with open(path, encoding="utf-8") as source:
        return json.load(source)


# --- deletion throughput -------------------------------------------------------------

def throughput(ctx, cases, reps, tools=("patrol", "peer")):
    """Measure each case of (limit, window seconds, latency ms, N) with every tool."""
    now = datetime.now(timezone.utc)
    files = {}
    results = []
    for limit, window, latency, stale in cases:
        if stale not in files:
            tokens, due = tenant.deletion_tenant(stale, CLIENT_ID, now)
            path = ctx.tmp / f"deletion-{stale}.json"
            tenant.write(tokens, path)
            files[stale] = (path, {token["id"] for token in tokens}, set(due))
        path, all_ids, due = files[stale]
        expected_left = all_ids - due
        case = {"limit": limit, "window_s": window, "latency_ms": latency, "n": stale, "runs": {tool: [] for tool in tools}}
        for rep in range(reps):
            order = list(tools) if rep % 2 == 0 else list(reversed(tools))
            for tool in order:
                log(f"throughput {limit}/{window}s latency {latency} ms N={stale} {tool} run {rep + 1}/{reps}")
                with Sim(ctx.patrol, path, ctx.tmp / "sim.log", limit, window, latency) as sim:
                    out = ctx.tmp / f"{tool}.out"
                    if tool == "patrol":
                        state = ctx.tmp / "state-throughput"
                        shutil.rmtree(state, ignore_errors=True)
                        policy = harness.write_policy(ctx.tmp / "throughput.toml", sim.base_url, state, limit, window, apply=True)
                        measured = run_patrol_audit(ctx, policy, out, apply=True)
                        report = read_json(out) if measured["exit"] in (0, 75) else {"tokens": []}
                        outcomes = {}
                        for token in report["tokens"]:
                            outcomes[token["outcome"]] = outcomes.get(token["outcome"], 0) + 1
                        deleted, failed = outcomes.get("deleted", 0), outcomes.get("failed", 0)
                    else:
                        measured = run_peer(ctx, sim.base_url, out, apply=True)
                        peer = read_json(out) if measured["exit"] == 0 else {"deleted": 0, "failed": 0, "errors": {}}
                        deleted, failed = peer["deleted"], peer["failed"]
                        measured["errors"] = peer.get("errors", {})
                    stats = sim.stats()
                    left = sim.token_ids()
                requests = sum(harness.sim_requests(stats, kind) - harness.sim_requests(stats, kind, "429")
                               for kind in ("token", "list", "delete"))
                measured.update({
                    "deleted": deleted,
                    "failed": failed,
                    "exact": left == expected_left,
                    "too_many_requests": stats["too_many_requests"],
                    "requests": requests,
                    "bound_s": harness.lower_bound(requests, limit, window),
                    "max_in_window": max((w["max_in_window"] for w in stats["windows"] if w["version"] == "v1"), default=0),
                })
                if measured["exit"] != 0:
                    log(f"  {tool} exited {measured['exit']}; see {ctx.tmp}")
                case["runs"][tool].append(measured)
        results.append(case)
    return results


# --- scale ---------------------------------------------------------------------------

def scale(ctx, sizes, reps):
    now = datetime.now(timezone.utc)
    results = []
    for size in sizes:
        path = ctx.tmp / f"scale-{size}.json"
        log(f"scale: writing a tenant of {size} tokens")
        tenant.write(tenant.scale_tenant(size, CLIENT_ID, now), path)
        entry = {"size": size, "runs": {"patrol": [], "patrol_later": [], "peer": []}}
        with Sim(ctx.patrol, path, ctx.tmp / "sim.log", rate_limit=0) as sim:
            state = ctx.tmp / "state-scale"
            policy = harness.write_policy(ctx.tmp / "scale.toml", sim.base_url, state, full_policy=True)
            for rep in range(reps):
                order = ["patrol", "peer"] if rep % 2 == 0 else ["peer", "patrol"]
                for tool in order:
                    log(f"scale {size} tokens {tool} run {rep + 1}/{reps}")
                    if tool == "patrol":
                        # A fresh state directory each time: every run is a first run, which
                        # records every flagged token in the audit log.
                        shutil.rmtree(state, ignore_errors=True)
                        measured = run_patrol_audit(ctx, policy, "/dev/null", apply=False)
                        # Then a later run on the state the first one left, as a daemon's
                        # runs after its first are: no token is newly flagged, and the
                        # first-flagged times of every flagged token are read and written.
                        log(f"scale {size} tokens patrol later run {rep + 1}/{reps}")
                        later = run_patrol_audit(ctx, policy, "/dev/null", apply=False)
                        if later["exit"] != 0:
                            log(f"  patrol later run exited {later['exit']}; see {ctx.tmp}")
                        entry["runs"]["patrol_later"].append(later)
                    else:
                        measured = run_peer(ctx, sim.base_url, ctx.tmp / "peer.out", apply=False)
                        if measured["exit"] == 0:
                            peer = read_json(ctx.tmp / "peer.out")
                            measured["listed"] = peer["listed_unused"] + peer["listed_never_used"]
                    if measured["exit"] != 0:
                        log(f"  {tool} exited {measured['exit']}; see {ctx.tmp}")
                    entry["runs"][tool].append(measured)
        os.remove(path)
        results.append(entry)
    return results


# --- daemon: idle footprint and scrape latency ---------------------------------------

def daemon_available(patrol):
    """Return whether this patrol binary has the `run` command."""
    try:
        done = subprocess.run([patrol, "run", "--help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def cpu_seconds(pid):
    """User plus system CPU seconds of a running process, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def context_switches(pid):
    """Read the context switches of each thread of a running process, by thread id."""
    switches = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status", encoding="ascii") as status:
                switches[tid] = sum(int(line.split()[1]) for line in status
                                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")))
        except FileNotFoundError:
            continue  # the thread ended while the list was read
    return switches


def wakeups(before, after):
    """Count the context switches between two readings of `context_switches`, over the
    threads alive at the second one. A sleeping thread switches once for each wake-up."""
    return sum(count - before.get(tid, 0) for tid, count in after.items())


def rss_mib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def fetch(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def start_daemon(ctx, policy):
    env = dict(os.environ, **{SECRET_ENV: CLIENT_SECRET, "RUST_LOG": "warn"})
    err = open(ctx.tmp / "daemon.stderr", "ab")
    process = subprocess.Popen([ctx.patrol, "run", "--config", str(policy)], stdout=subprocess.DEVNULL,
                               stderr=err, stdin=subprocess.DEVNULL, env=env)
    return process, err


def wait_for_metrics(process, base, deadline_s=60):
    """Poll /metrics until it responds; return False if the daemon exited or timed out."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            fetch(base + "/metrics", timeout=2)
            return True
        except (OSError, urllib.error.URLError):
            time.sleep(0.05)
    return False


def stop_daemon(process, err):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    err.close()


NEVER_CRON = "0 0 1 1 *"  # midnight on 1 January: never during a benchmark run


def start_first_run(ctx, sim, name):
    """Start the daemon on a fresh state directory with the full policy and `run_on_start`,
    so that its first run audits the tenant at once. Return the process, its stderr file
    and the base URL of its /metrics."""
    port = harness.free_port()
    state = ctx.tmp / f"state-{name}"
    shutil.rmtree(state, ignore_errors=True)
    policy = harness.write_policy(ctx.tmp / f"{name}.toml", sim.base_url, state, full_policy=True,
                                  daemon={"cron": NEVER_CRON, "run_on_start": True, "listen": f"127.0.0.1:{port}"})
    process, err = start_daemon(ctx, policy)
    return process, err, f"http://127.0.0.1:{port}"


def idle(ctx, seconds, reps):
    """RSS and CPU of the daemon after `seconds` of idling (no run due), after start-up."""
    now = datetime.now(timezone.utc)
    path = ctx.tmp / "idle-tenant.json"
    tenant.write(tenant.scale_tenant(100, CLIENT_ID, now), path)
    runs = []
    with Sim(ctx.patrol, path, ctx.tmp / "sim.log") as sim:
        for rep in range(reps):
            log(f"idle {seconds} s, run {rep + 1}/{reps}")
            port = harness.free_port()
            policy = harness.write_policy(ctx.tmp / "idle.toml", sim.base_url, ctx.tmp / "state-idle",
                                          daemon={"cron": NEVER_CRON, "run_on_start": False, "listen": f"127.0.0.1:{port}"})
            process, err = start_daemon(ctx, policy)
            try:
                if not wait_for_metrics(process, f"http://127.0.0.1:{port}"):
                    raise RuntimeError(f"patrol run did not serve /metrics; see {ctx.tmp / 'daemon.stderr'}")
                rss_start, cpu_start = rss_mib(process.pid), cpu_seconds(process.pid)
                switches = context_switches(process.pid)
                time.sleep(seconds)
                runs.append({
                    "rss_start_mib": rss_start,
                    "rss_mib": rss_mib(process.pid),
                    "cpu_idle_s": cpu_seconds(process.pid) - cpu_start,
                    "wakeups": wakeups(switches, context_switches(process.pid)),
                    "idle_s": seconds,
                })
            finally:
                stop_daemon(process, err)
    return {"runs": runs}


def hwm_mib(pid):
    """Read the peak resident memory of a running process (VmHWM) from /proc."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_for_run(process, base, deadline_s, poll_s=0.5):
    """Poll /metrics until it shows a finished run. Return False if the daemon exited or
    the deadline passed."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if run_finished(fetch(base + "/metrics", timeout=30)):
                return True
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(poll_s)
    return False


def idle_after_run(ctx, size, seconds, settled_s, reps, timeout_s=600):
    """Measure what a large run leaves behind in an idle daemon. The daemon's first run
    (run_on_start) audits a tenant of `size` tokens. RSS and CPU are read `seconds` after
    it, and RSS again `settled_s` after it, once the HTTP client has closed its idle
    connections."""
    now = datetime.now(timezone.utc)
    path = ctx.tmp / f"idle-after-{size}.json"
    tenant.write(tenant.scale_tenant(size, CLIENT_ID, now), path)
    result = {"size": size, "runs": []}
    with Sim(ctx.patrol, path, ctx.tmp / "sim.log", rate_limit=0) as sim:
        for rep in range(reps):
            log(f"idle {seconds} s after a run of {size} tokens, run {rep + 1}/{reps}")
            process, err, base = start_first_run(ctx, sim, "idle-after")
            try:
                if not wait_for_metrics(process, base) or not wait_for_run(process, base, timeout_s):
                    raise RuntimeError(f"patrol run did not finish its first run; see {ctx.tmp / 'daemon.stderr'}")
                rss_end, cpu_start = rss_mib(process.pid), cpu_seconds(process.pid)
                switches = context_switches(process.pid)
                time.sleep(seconds)
                run = {
                    "rss_run_end_mib": rss_end,
                    "peak_mib": hwm_mib(process.pid),
                    "rss_mib": rss_mib(process.pid),
                    "cpu_idle_s": cpu_seconds(process.pid) - cpu_start,
                    "wakeups": wakeups(switches, context_switches(process.pid)),
                    "idle_s": seconds,
                }
                time.sleep(max(settled_s - seconds, 0))
                run["rss_settled_mib"] = rss_mib(process.pid)
                run["settled_s"] = settled_s
                result["runs"].append(run)
            finally:
                stop_daemon(process, err)
    os.remove(path)
    return result


def scrape(ctx, size, scrapers, reps, timeout_s=600):
    """/metrics latency with `scrapers` concurrent clients while the daemon's first run
    (run_on_start) audits a tenant of `size` tokens, and again once it is idle."""
    now = datetime.now(timezone.utc)
    path = ctx.tmp / f"scrape-{size}.json"
    tenant.write(tenant.scale_tenant(size, CLIENT_ID, now), path)
    result = {"size": size, "scrapers": scrapers, "runs": []}
    with Sim(ctx.patrol, path, ctx.tmp / "sim.log", rate_limit=0) as sim:
        for rep in range(reps):
            log(f"scrape: {scrapers} scrapers during an audit of {size} tokens, run {rep + 1}/{reps}")
            process, err, base = start_first_run(ctx, sim, "scrape")
            try:
                if not wait_for_metrics(process, base):
                    raise RuntimeError(f"patrol run did not serve /metrics; see {ctx.tmp / 'daemon.stderr'}")
                result["runs"].append(scrape_once(base, scrapers, timeout_s=timeout_s))
            finally:
                stop_daemon(process, err)
    os.remove(path)
    return result


def run_finished(body):
    """Return whether a /metrics body shows a finished run (patrol_runs_total above zero)."""
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("patrol_runs_total{"):
            try:
                if float(line.rsplit(" ", 1)[1]) > 0:
                    return True
            except ValueError:
                continue
    return False


def scrape_once(base, scrapers, after_s=3.0, timeout_s=600):
    """Scrape with `scrapers` threads until the run finished and `after_s` more seconds
    passed. Returns latencies in ms, split into during the run and after it."""
    lock = threading.Lock()
    during, after, errors = [], [], []
    state = {"finished_at": None}
    started = time.monotonic()

    def worker():
        while True:
            now = time.monotonic()
            finished_at = state["finished_at"]
            if finished_at is not None and now - finished_at > after_s:
                return
            if now - started > timeout_s:
                return
            begin = time.perf_counter()
            try:
                body = fetch(base + "/metrics", timeout=30)
            except (OSError, urllib.error.URLError) as error:
                with lock:
                    errors.append(type(error).__name__)
                continue
            latency = (time.perf_counter() - begin) * 1000
            finished = run_finished(body)
            with lock:
                if finished and state["finished_at"] is None:
                    state["finished_at"] = time.monotonic()
                (after if finished else during).append(latency)

    threads = [threading.Thread(target=worker) for _ in range(scrapers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "during_ms": sorted(during),
        "after_ms": sorted(after),
        "errors": len(errors),
        "run_s": (state["finished_at"] - started) if state["finished_at"] else None,
    }
