"""Rotation policies named from configuration in tests ("policy_helpers:function")."""
from __future__ import annotations

from modelmesh._core._policies import Deactivation, DeactivationReason

NOT_A_FUNCTION = 42


def after_two_requests(state, now):
    """Deactivation: a model that has served two requests rests."""
    if state.total_requests >= 2:
        return Deactivation(reason=DeactivationReason.MANUAL, detail="two requests are enough")
    return None


def on_503(state, now):
    """Deactivation: one 503 takes the model out at once."""
    if state.last_status == 503:
        return Deactivation(reason=DeactivationReason.PROVIDER_OUTAGE, detail="503 seen")
    return None


def back_in_ten(state, decision, now):
    """Recovery: ten seconds, whatever the reason (asked before the configured cooldown)."""
    return now + 10.0
