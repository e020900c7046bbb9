"""Headless Chromium for the browser tests: Debian's ``chromium`` package driven by Playwright.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` through
``executable_path``. When the package is missing and the tests run as root (CI), it is
installed with apt-get (with ``fonts-dejavu-core``, so that pages render readable text);
otherwise the tests fail with the command to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("PUSH_TEST_CHROMIUM", "/usr/bin/chromium"))
PACKAGES = ["chromium", "fonts-dejavu-core"]
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _apt_get(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=600", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=900)


def ensure_chromium() -> Path:
    """Return the Chromium binary, installing Debian's package first when root can."""
    if CHROMIUM.exists():
        return CHROMIUM
    how = f"install Debian's package: apt-get install --no-install-recommends {' '.join(PACKAGES)}"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"{CHROMIUM} (Debian package 'chromium') is missing and cannot be installed here: {how}")
    install = ("install", "-y", "--no-install-recommends", *PACKAGES)
    result = _apt_get(*install)
    if result.returncode != 0:  # a fresh machine has no package lists yet
        _apt_get("update")
        result = _apt_get(*install)
    if result.returncode != 0 or not CHROMIUM.exists():
        pytest.fail(f"installing Debian package 'chromium' failed ({how}):\n{result.stderr[-2000:]}")
    return CHROMIUM


def artifact(name: str) -> Path:
    """A path under ``test-artifacts/`` (kept after the run, ignored by git)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
