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


def results_file() -> Path:
    """Where runs are recorded: ``PUSH_BENCH_RESULTS`` (the tests point it elsewhere), else ``RESULTS_FILE``."""
    return Path(os.environ.get("PUSH_BENCH_RESULTS") or RESULTS_FILE)


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
        # The results file itself does not count: every run changes it.
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", ":!benchmarks/results.jsonl"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None, False
    return commit.stdout.strip(), bool(status.stdout.strip())


def record(benchmark: str, result: dict, results_path: Path | None = None) -> dict:
    """Print the run's one JSON line, and append it with commit and machine to :func:`results_file`."""
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
    path = results_path or results_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(entry, default=str) + "\n")
    return entry
