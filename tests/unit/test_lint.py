"""The tree passes its linters: ruff (Python, pyproject.toml), import-linter (the direction of
imports, pyproject.toml) and sqlfluff (SQL, .sqlfluff). CI runs this."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT


def test_ruff_check_and_format_pass():
    for args in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        result = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_imports_point_one_way():
    """dags -> stages -> core, stages in flow order, the product free of its surroundings
    (the contracts are in pyproject.toml)."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_sql_passes_its_linter():
    """sqlfluff, postgres dialect, the rules in .sqlfluff (applied migrations are history and skipped)."""
    result = subprocess.run(
        [sys.executable, "-m", "sqlfluff", "lint", "sql", "--processes", "2", "--disable-progress-bar"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


_SQL_START = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|TRUNCATE|ALTER|DROP|MERGE)\b", re.IGNORECASE)


def test_statements_longer_than_a_few_lines_live_in_sql_files():
    """docs/sql.md: a statement over five lines goes to sql/queries/<stage>/, so each has a file
    of its own that the SQL linter reads."""
    long_inline = []
    for path in sorted((ROOT / "jobs").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            is_sql = isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL_START.match(node.value)
            if is_sql and node.value.strip().count("\n") + 1 > 5:
                long_inline.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not long_inline, long_inline
