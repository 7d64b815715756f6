"""Start-up benchmark: wall time and peak RSS of `vipsync --help` (and of one light
command), each a fresh process, the median of several runs.

    python bench/startup_bench.py [--n 7]

Targets: `vipsync --help` in 0.3 s or less and 35 MB or less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

VIPSYNC = Path(sys.executable).with_name("vipsync")


def run(argv: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MiB) of one fresh process. The CPU time
    (user + system) is what the start-up costs whatever else the machine is doing."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # ru_maxrss: KiB on Linux


def measure(label: str, argv: list[str], n: int) -> None:
    runs = [run(argv) for _ in range(n)]
    secs = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    rss = statistics.median(r[2] for r in runs)
    print(
        f"{label}: {secs:.2f} s wall, {cpu:.2f} s CPU, peak RSS {rss:.0f} MiB "
        f"(median of {n}; load average {os.getloadavg()[0]:.2f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=7, help="runs per command (default 7)")
    args = ap.parse_args()
    exe = [str(VIPSYNC)] if VIPSYNC.exists() else [sys.executable, "-m", "vipsync.cli.main"]
    measure("vipsync --help", [*exe, "--help"], args.n)
    measure("vipsync db --help", [*exe, "db", "--help"], args.n)
    measure("python -c pass (the interpreter alone)", [sys.executable, "-c", "pass"], args.n)


if __name__ == "__main__":
    main()
