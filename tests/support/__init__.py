"""Helpers shared by the tests: data builders, local servers, pipeline runs. No tests here.

Test modules import from this package, never from each other.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def scratch_root() -> Path:
    """The folder under which test sessions keep their clusters and files (``.local/tests``)."""
    root = ROOT / ".local" / "tests"
    root.mkdir(parents=True, exist_ok=True)
    return root
