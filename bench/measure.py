"""Run one command and print its wall time and resource usage as JSON.

Usage: measure.py STDOUT_FILE STDERR_FILE COMMAND [ARG...]

The benchmark starts this small process for every measurement instead of spawning the
command itself. Linux keeps a process's peak resident memory across exec, so a command
spawned straight from the benchmark, whose memory grows with the tenants it generates,
would report the benchmark's own peak as its `ru_maxrss`. From here the floor is this
interpreter's resident memory, about 14 MiB.
"""

import json
import os
import subprocess
import sys
import time


def main():
    stdout_path, stderr_path, *command = sys.argv[1:]
    with open(stdout_path, "wb") as out, open(stderr_path, "ab") as err:
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    print(json.dumps({
        "wall_s": wall,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "maxrss_mib": usage.ru_maxrss / 1024,
        "exit": process.returncode,
    }))


if __name__ == "__main__":
    main()
