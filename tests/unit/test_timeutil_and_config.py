from datetime import UTC, datetime

import pendulum

from jobs.core.config import to_sqlalchemy_url
from jobs.core.timeutil import as_utc, hours_between, parse_utc


def test_parse_utc_converts_offsets_and_assumes_utc():
    assert parse_utc("2026-11-25T08:00:00+08:00") == datetime(2026, 11, 25, 0, tzinfo=UTC)
    assert parse_utc("2026-11-25T00:00:00Z") == datetime(2026, 11, 25, tzinfo=UTC)
    assert parse_utc("2026-11-25T00:00:00") == datetime(2026, 11, 25, tzinfo=UTC)


def test_as_utc_accepts_pendulum():
    value = as_utc(pendulum.datetime(2026, 11, 25, 9, tz="Asia/Shanghai"))
    assert value == datetime(2026, 11, 25, 1, tzinfo=UTC)
    assert type(value) is datetime


def test_hours_between_floors_the_start():
    hours = list(hours_between(datetime(2026, 11, 25, 0, 30, tzinfo=UTC), datetime(2026, 11, 25, 3, tzinfo=UTC)))
    assert [h.hour for h in hours] == [0, 1, 2]


def test_airflow_style_urls_get_the_psycopg2_driver():
    assert to_sqlalchemy_url("postgres://a@h:1/db") == "postgresql+psycopg2://a@h:1/db"
    assert to_sqlalchemy_url("postgresql://a@h:1/db") == "postgresql+psycopg2://a@h:1/db"
    assert to_sqlalchemy_url("postgresql+psycopg2://a@h:1/db") == "postgresql+psycopg2://a@h:1/db"
