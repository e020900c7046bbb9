"""What the DAG task of erasure calls."""

from __future__ import annotations

from jobs.privacy.erase import erase_user

__all__ = ["erase_user"]
