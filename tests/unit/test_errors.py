"""The one line a failed task's log ends with: what happened and what to do."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from jobs.core.errors import PermanentDataError, explain_failure


def test_an_unreachable_database_is_named_with_the_remedy():
    with pytest.raises(OperationalError) as caught:
        create_engine("postgresql+psycopg2://push@127.0.0.1:1/push", connect_args={"connect_timeout": 2}).connect()

    line = explain_failure(caught.value)

    assert line.startswith("the pipeline database cannot be reached or dropped the connection (")
    assert "127.0.0.1" in line
    assert "PUSH_DATABASE_URL" in line
    assert "\n" not in line
    assert "sqlalche.me" not in line  # SQLAlchemy's appended link and statement are dropped


def test_refused_data_and_other_errors_keep_their_own_first_line():
    assert explain_failure(PermanentDataError("12% of 100 rows quarantined; fix the source")) == (
        "PermanentDataError: 12% of 100 rows quarantined; fix the source"
    )
    assert explain_failure(ValueError("first\nsecond")) == "ValueError: first"
    assert explain_failure(None).startswith("no exception was recorded")
