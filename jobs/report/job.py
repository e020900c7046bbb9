"""Write the evaluation report: read the frames, build the sections, render, write atomically."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from jobs.core.config import Settings
from jobs.core.db import make_engine
from jobs.report.data import ReportData, load_report_data
from jobs.report.page import render_page
from jobs.report.sections import build_sections

TITLE = "Push notifications: evaluation report"


def report_path_for(settings: Settings, as_of: datetime) -> Path:
    """Where the daily DAG writes the report of one logical time (a re-run replaces it)."""
    return settings.reports_dir / f"evaluation-{as_of:%Y%m%dT%H%M}.html"


def build_report(data: ReportData, until: datetime | None = None) -> str:
    """The report page for ``data`` (pure)."""
    scope = f"Data up to {until:%Y-%m-%d %H:%M} UTC." if until else "All data in the database."
    return render_page(build_sections(data), TITLE, scope)


def write_report(settings: Settings, out: Path, until: datetime | None = None) -> Path:
    """Read the database as of ``until`` and write the report to ``out``; return ``out``."""
    html = build_report(load_report_data(make_engine(settings.database_url), until), until)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(html, encoding="utf-8")
    os.replace(partial, out)  # readers see the old report or the new one, never half a file
    return out
