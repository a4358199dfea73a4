"""Run one side of a benchmark in its own process: its JSON answer, wall time and peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child(
    module: str, args: list[str], env: dict[str, str], log: Path
) -> tuple[dict, float, float]:
    """`python -m module args...`: its last stdout line as JSON, wall seconds, peak RSS in MiB."""
    started = time.perf_counter()
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        output = process.stdout.read() if process.stdout else ""
        _, status, usage = os.wait4(process.pid, 0)  # rusage of this child alone
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-20:])
        raise RuntimeError(f"{module} {' '.join(args)} failed with exit code {code}:\n{tail}")
    return json.loads(output.strip().splitlines()[-1]), seconds, usage.ru_maxrss / 1024
