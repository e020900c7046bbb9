"""How benchmarks report: each figure printed as it is measured, all of them kept for a final JSON line."""

from __future__ import annotations


class Report:
    """Prints each figure as it is measured and keeps it for the final JSON."""

    def __init__(self) -> None:
        self.figures: dict[str, float | int | str] = {}

    def __call__(self, label: str, value, unit: str = "", note: str = ""):
        self.figures[label] = value
        print(" ".join(str(part) for part in (label, value, unit, note) if part != ""), flush=True)
        return value
