"""Processes and measurements shared by the benchmark's scenarios: the simulated tenant,
policy files, child processes measured with wait4, and small statistics.

Everything listens on and talks to 127.0.0.1 only. The measured processes are the real
`patrol` binary and the peer script. Their resource usage comes from `os.wait4` in
measure.py: user and system CPU seconds, and peak resident memory (`ru_maxrss`, KiB on
Linux).
"""

import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CLIENT_ID = "aaaa0000000000000000000000000001"
CLIENT_SECRET = "bench-secret-5d1e"
SECRET_ENV = "BENCH_CLIENT_SECRET"


class Sim:
    """A `patrol sim` child process serving one token file on a free loopback port."""

    def __init__(self, patrol, tokens_path, log_path, rate_limit=100, rate_window=10, latency_ms=0):
        command = [
            patrol, "sim",
            "--listen", "127.0.0.1:0",
            "--tokens", str(tokens_path),
            "--client", f"{CLIENT_ID}:{CLIENT_SECRET}",
            "--rate-limit", str(rate_limit),
            "--rate-window", str(rate_window),
            "--latency-ms", str(latency_ms),
        ]
        self.log = open(log_path, "ab")
        env = dict(os.environ, RUST_LOG="warn")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.log, env=env)
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"patrol sim did not print its base URL (got {line!r}); see {log_path}")
        self.base_url = line

    def get(self, path):
        with urllib.request.urlopen(self.base_url + path, timeout=600) as response:
            return json.load(response)

    def stats(self):
        return self.get("/_sim/stats")

    def token_ids(self):
        return {token["id"] for token in self.get("/_sim/tokens")}

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def sim_requests(stats, kind, status=None):
    """Counts the sim's responses of one path kind (`token`, `list`, `delete`), of one
    status if given, over every method."""
    total = 0
    for kinds in stats["requests"].values():
        for code, count in kinds.get(kind, {}).items():
            if status is None or code == status:
                total += count
    return total


RULES = """
[[rule]]
name = "unused-90d"
action = "delete"
last_used_older_than = "90d"

[[rule]]
name = "never-used-30d"
action = "delete"
never_used = true
created_older_than = "30d"
"""

# The report rules of config/patrol.example.toml, so that the scale runs judge every token
# against a realistic policy.
REPORT_RULES = """
[[rule]]
name = "expired"
action = "delete"
expired = true

[[rule]]
name = "unused-60d"
action = "report"
last_used_older_than = "60d"

[[rule]]
name = "expiring-14d"
action = "report"
expires_within = "14d"

[[rule]]
name = "all-scopes-never-expires"
action = "report"
never_expires = true
scope_includes = ["sp:scopes:all"]
managed = false

[[rule]]
name = "service-identity-unused-14d"
action = "report"
owner_name_matches = "^svc-"
last_used_older_than = "14d"
managed = false

[[rule]]
name = "throwaway-unused-7d"
action = "report"
name_matches = '(?i)^(test|tmp|temp)([-_ .]|$)'
last_used_older_than = "7d"

[[exemption]]
name_matches = "^break-glass-"
reason = "Emergency access tokens, reviewed by the security team every quarter"
"""


def write_policy(path, api_url, state_dir, rate_limit=100, rate_window=10, apply=False,
                 full_policy=False, daemon=None):
    """Write a policy for the tenant at `api_url`. `daemon` is a dict with `cron`,
    `run_on_start` and `listen` for `patrol run`."""
    text = f"""[[tenant]]
name = "bench"
api_url = "{api_url}"
api_version = "v1"
client_id = "{CLIENT_ID}"
client_secret_env = "{SECRET_ENV}"
rate_limit = {rate_limit}
rate_limit_window = "{rate_window}s"

[safety]
dry_run = {"false" if apply else "true"}
grace_period = "0s"
max_deletions_per_run = 10000000
max_deletion_percent = 100

[state]
dir = "{state_dir}"
"""
    if daemon:
        text += f"""
[schedule]
cron = "{daemon['cron']}"
run_on_start = {"true" if daemon['run_on_start'] else "false"}

[metrics]
listen = "{daemon['listen']}"
"""
    text += RULES
    if full_policy:
        text += REPORT_RULES
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
    return path


def measure(command, stdout_path, stderr_path, env=None):
    """Run `command` to completion through measure.py and return its wall time, CPU times,
    peak RSS and exit code. stdout goes to `stdout_path` (which may be /dev/null)."""
    environment = dict(os.environ, **(env or {}))
    runner = [sys.executable, str(Path(__file__).with_name("measure.py")), str(stdout_path), str(stderr_path)]
    done = subprocess.run(runner + [str(part) for part in command], stdout=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, env=environment, check=True)
    return json.loads(done.stdout)


def free_port():
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def lower_bound(requests, limit, window):
    """Shortest time in which a sliding window of `limit` requests per `window` seconds
    admits `requests` requests: the first `limit` at once, each further batch one window
    later, so ceil(R / L - 1) windows."""
    return max(0, math.ceil(requests / limit - 1)) * window


def summary(values):
    """Median, minimum and maximum of a list of numbers."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def percentile(sorted_values, fraction):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]
