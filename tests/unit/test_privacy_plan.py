"""Erasure planning and pseudonyms: pure functions, no database."""

from __future__ import annotations

import re

import pandas as pd

from jobs.privacy.erase import Column, erasure_plan, id_pattern, mention_queries
from jobs.privacy.pseudonym import hmac_pads, pseudonym
from jobs.privacy.suppression import user_pseudonyms, without_erased

CATALOGUE = [
    Column("push", "users", "user_id", "text", "BASE TABLE"),
    Column("push", "users", "email", "text", "BASE TABLE"),
    Column("push", "quarantine", "raw", "text", "BASE TABLE"),
    Column("push", "quarantine", "line_no", "bigint", "BASE TABLE"),
    Column("push", "stream_batches", "trigger_users", "ARRAY", "BASE TABLE"),
    Column("push", "triggers", "context", "jsonb", "BASE TABLE"),
    Column("analytics", "current_recommendations", "user_id", "text", "VIEW"),
]


def test_the_plan_deletes_by_user_id_scrubs_arrays_and_raw_lines_and_leaves_views_alone():
    plan = {step.target: step.sql for step in erasure_plan(CATALOGUE)}
    assert plan == {
        "push.users.user_id": 'DELETE FROM "push"."users" WHERE "user_id" = :user_id',
        "push.quarantine.raw": 'DELETE FROM "push"."quarantine" WHERE "raw" ~ :pattern',
        "push.stream_batches.trigger_users": 'UPDATE "push"."stream_batches" SET "trigger_users" ='
        ' array_remove("trigger_users", :user_id) WHERE CAST(:user_id AS text) = ANY(CAST("trigger_users" AS text[]))',
    }


def test_every_text_json_and_array_column_of_tables_and_views_is_searched():
    queries = mention_queries(CATALOGUE)
    assert set(queries) == {
        '"push"."users"',
        '"push"."quarantine"',
        '"push"."stream_batches"',
        '"push"."triggers"',
        '"analytics"."current_recommendations"',
    }
    assert '"email"' in queries['"push"."users"']
    assert "line_no" not in queries['"push"."quarantine"']


def test_the_id_pattern_matches_whole_ids_only():
    pattern = re.compile(id_pattern("u0001"))
    assert pattern.search('{"user_id": "u0001", "x": 1}')
    assert pattern.search("u0001")
    assert not pattern.search('{"user_id": "u00012"}')
    assert not pattern.search("xu0001")
    assert re.compile(id_pattern("a.b")).search("a.b")
    assert not re.compile(id_pattern("a.b")).search("axb")


def test_pseudonyms_are_keyed_and_the_pads_are_rfc_2104s():
    # RFC 4231-style known answer: HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
    assert pseudonym("The quick brown fox jumps over the lazy dog", "key") == "f7bc83f430538424b13298e6aa6fb143"
    assert len(pseudonym("u1", "k")) == 32
    assert pseudonym("u1", "k") != pseudonym("u1", "other")
    inner, outer = hmac_pads("k")
    assert len(inner) == len(outer) == 64
    assert inner[0] == ord("k") ^ 0x36
    assert outer[1] == 0x5C


def test_erased_users_are_dropped_from_a_users_snapshot():
    users = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "email": ["a@x", "b@x", "c@x"]})
    kept, dropped = without_erased(users, "k", [pseudonym("u2", "k")])
    assert kept["user_id"].tolist() == ["u1", "u3"]
    assert dropped == 1
    assert user_pseudonyms(kept, "k")["user_key"].tolist() == [pseudonym("u1", "k"), pseudonym("u3", "k")]
