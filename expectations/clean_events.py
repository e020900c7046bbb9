"""Expectations every clean behaviour-event batch must meet before anything downstream runs.

Derived from the one event schema (``jobs.core.schema``), so a schema change shows up here.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from jobs.core import schema

SUITE_NAME = "clean_events"


def build_suite() -> gx.ExpectationSuite:
    suite = gx.ExpectationSuite(name=SUITE_NAME)
    suite.add_expectation(
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[f.name for f in schema.CLEAN_EVENT_SCHEMA.fields], exact_match=True
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
    return suite
