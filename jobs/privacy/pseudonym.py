"""Keyed-hash pseudonyms of user ids: HMAC-SHA256 with ``PUSH_PSEUDONYM_KEY``, 32 hex digits.

One definition, computed three ways that agree: in Python (the users loader writes
``push.user_pseudonyms``, erasure writes ``push.erased_users``), and in Spark from the key's two
HMAC pads (the cleaner drops erased users' lines without ever knowing their ids). The key never
enters the database; without it a pseudonym cannot be traced back to an id.
"""

from __future__ import annotations

import hashlib
import hmac

from pyspark.sql import Column
from pyspark.sql import functions as F

PSEUDONYM_HEX_DIGITS = 32
_BLOCK = 64  # SHA-256 block size in bytes


def _key_bytes(key: str) -> bytes:
    if not key:
        raise ValueError("PUSH_PSEUDONYM_KEY is empty: pseudonyms need a secret key")
    return key.encode("utf-8")


def pseudonym(user_id: str, key: str) -> str:
    """The pseudonym of ``user_id`` under ``key``."""
    digest = hmac.new(_key_bytes(key), user_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:PSEUDONYM_HEX_DIGITS]


def hmac_pads(key: str) -> tuple[bytes, bytes]:
    """The inner and outer padded keys of HMAC-SHA256 (RFC 2104)."""
    raw = _key_bytes(key)
    if len(raw) > _BLOCK:
        raw = hashlib.sha256(raw).digest()
    raw = raw.ljust(_BLOCK, b"\x00")
    return bytes(b ^ 0x36 for b in raw), bytes(b ^ 0x5C for b in raw)


def pseudonym_column(user_id: Column, key: str) -> Column:
    """:func:`pseudonym` as a Spark expression (built-in functions only, no Python UDF)."""
    inner, outer = hmac_pads(key)
    inner_hash = F.unhex(F.sha2(F.concat(F.lit(inner), F.encode(user_id, "UTF-8")), 256))
    return F.substring(F.sha2(F.concat(F.lit(outer), inner_hash), 256), 1, PSEUDONYM_HEX_DIGITS)
