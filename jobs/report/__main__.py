"""``python -m jobs.report [--out PATH] [--until ISO-TIME]``: write the evaluation report.

Without ``--out`` the report goes to ``<local dir>/reports/evaluation.html``; without
``--until`` it covers everything in the database.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from jobs.core.config import Settings
from jobs.core.timeutil import as_utc
from jobs.report.job import write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="the HTML file to write")
    parser.add_argument("--until", type=datetime.fromisoformat, help="only data up to this time (UTC if no zone)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    out = args.out or settings.reports_dir / "evaluation.html"
    until = as_utc(args.until) if args.until else None
    print(f"Evaluation report written: {write_report(settings, out, until).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
