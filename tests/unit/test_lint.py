"""The tree passes its linter and formatter (ruff, configured in pyproject.toml): CI runs this."""

from __future__ import annotations

import subprocess
import sys

from tests.support import ROOT


def test_ruff_check_and_format_pass():
    for args in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        result = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
