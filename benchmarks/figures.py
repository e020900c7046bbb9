"""How benchmarks report: each figure printed as it is measured, then one JSON line, kept as data.

Every run appends its result, with the commit and the machine, to ``benchmarks/results.jsonl``;
``docs/benchmarks.md`` states the current figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path


class Report:
    """Prints each figure as it is measured and keeps it for the final JSON."""

    def __init__(self) -> None:
        self.figures: dict[str, float | int | str] = {}

    def __call__(self, label: str, value, unit: str = "", note: str = ""):
        self.figures[label] = value
        print(" ".join(str(part) for part in (label, value, unit, note) if part != ""), flush=True)
        return value


RESULTS_FILE = Path(__file__).resolve().parent / "results.jsonl"


def machine() -> dict:
    """What the figures were measured on: they mean little without it."""
    memory = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024**2, 1)
    return {
        "cpus": os.cpu_count(),
        "memory_gb": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _commit() -> tuple[str | None, bool]:
    root = RESULTS_FILE.parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None, False
    return commit.stdout.strip(), bool(status.stdout.strip())


def record(benchmark: str, result: dict, results_file: Path = RESULTS_FILE) -> dict:
    """Print the run's one JSON line, and append it with commit and machine to ``benchmarks/results.jsonl``."""
    print(json.dumps(result, default=str), flush=True)
    commit, dirty = _commit()
    entry = {
        "benchmark": benchmark,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "uncommitted_changes": dirty,
        "machine": machine(),
        "result": result,
    }
    results_file.parent.mkdir(parents=True, exist_ok=True)
    with results_file.open("a") as out:
        out.write(json.dumps(entry, default=str) + "\n")
    return entry
