"""Expectations on a raw landing batch, parsed but not yet cleaned.

Raw data is allowed some bad rows (the cleaner quarantines them); these expectations say how
many: each holds for at least ``1 - max_bad_share`` of the rows. The batch is the cleaner's
parsed frame (``jobs.ingest.rules.parse_and_validate``): normalised event fields plus the
line's rejection ``reason`` (null when valid) and its file and line number.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from jobs.core import schema

SUITE_NAME = "raw_events"


def build_suite(max_bad_share: float) -> gx.ExpectationSuite:
    mostly = 1.0 - max_bad_share
    suite = gx.ExpectationSuite(name=SUITE_NAME)
    for column in ("source_file", "line_no", "landing_date", "landing_hour"):
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column="line_no", min_value=1))
    for column in schema.REQUIRED_FIELDS:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=column, mostly=mostly))
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeInSet(column="event_type", value_set=list(schema.EVENT_TYPES), mostly=mostly)
    )
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeBetween(column="price", min_value=0, max_value=schema.MAX_PRICE, mostly=mostly)
    )
    # Every line read gets exactly one verdict; most must be valid.
    suite.add_expectation(gxe.ExpectColumnValuesToBeNull(column="reason", mostly=mostly))
    return suite
