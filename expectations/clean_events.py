"""Expectations every clean behaviour-event batch must meet before anything downstream runs.

Derived from the one event schema (``jobs.core.schema``), so a schema change shows up here.
The batch is the clean lake rows of a landing window with their partition columns and three
checks computed by the validator (``jobs.ingest.validate.clean_batch``):
``ts_in_event_partition`` (the row sits in the event-time partition of its ``ts``),
``ts_before_landing`` (not later than the end of the hour it landed in, plus the clock-skew
tolerance) and ``item_in_catalogue`` (null for events without an item).
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from jobs.core import schema

SUITE_NAME = "clean_events"
PARTITION_COLUMNS = ("event_date", "event_hour")
DERIVED_COLUMNS = ("ts_in_event_partition", "ts_before_landing", "item_in_catalogue")


def build_suite(min_known_item_share: float = 1.0) -> gx.ExpectationSuite:
    """``min_known_item_share``: share of item events whose item the catalogue must know."""
    suite = gx.ExpectationSuite(name=SUITE_NAME)
    suite.add_expectation(
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[f.name for f in schema.CLEAN_EVENT_SCHEMA.fields] + [*PARTITION_COLUMNS, *DERIVED_COLUMNS],
            exact_match=True,
        )
    )
    for column in schema.REQUIRED_FIELDS:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="event_id"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="event_type", value_set=list(schema.EVENT_TYPES)))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="price", min_value=0, max_value=schema.MAX_PRICE))
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=0, max_value=schema.MAX_QUANTITY)
    )
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="landing_hour", min_value=0, max_value=23))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="event_hour", min_value=0, max_value=23))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="ts_in_event_partition", value_set=[True]))
    suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="ts_before_landing", value_set=[True]))
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeInSet(column="item_in_catalogue", value_set=[True], mostly=min_known_item_share)
    )
    return suite
