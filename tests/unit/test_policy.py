from dataclasses import replace
from datetime import time, timedelta

import pytest

from jobs.core.config import Settings
from jobs.notify import policy


def test_policy_params_carry_every_rule():
    settings = replace(
        Settings(),
        channel_daily_caps={"sms": 1, "push": 3},
        min_gap_minutes=90,
        campaign_cap_days=14,
        holdout_percent=7.5,
    )
    params = policy.policy_params(settings)
    assert params["channel_order"] == ["push", "email", "sms", "webhook"]
    assert params["channel_caps"] == [3, 2_147_483_647, 1, 2_147_483_647]
    assert params["min_gap"] == timedelta(minutes=90)
    assert params["long_window"] == timedelta(days=14)  # the campaign window is the longest
    assert params["holdout_basis_points"] == 750
    assert params["quiet_start"] == time(22, 0)


def test_policy_params_reject_bad_configuration():
    with pytest.raises(ValueError, match="unknown channels"):
        policy.policy_params(replace(Settings(), channel_daily_caps={"fax": 1}))
    with pytest.raises(ValueError, match="QUIET_HOURS_START"):
        policy.policy_params(replace(Settings(), quiet_hours_start="10pm"))
    with pytest.raises(ValueError, match="negative"):
        policy.policy_params(replace(Settings(), daily_cap=-1))


def test_reason_codes_are_unique_and_accepted_ones_are_known():
    assert len(set(policy.REASON_CODES)) == len(policy.REASON_CODES)
    assert set(policy.ACCEPTED) <= set(policy.REASON_CODES)


def test_channel_map_settings_parse_and_fail_clearly(monkeypatch):
    monkeypatch.setenv("PUSH_CHANNEL_DAILY_CAPS", "sms:1, email:2")
    assert Settings().channel_daily_caps == {"sms": 1, "email": 2}
    monkeypatch.setenv("PUSH_CHANNEL_DAILY_CAPS", "sms:one")
    with pytest.raises(ValueError, match="PUSH_CHANNEL_DAILY_CAPS"):
        Settings()
