"""Rotation policies you can plug into pools: objects with one method, or plain functions.

    from modelmesh.policies import PolicySet, RetryLimit, ErrorRate, Cooldown

    client = modelmesh.MeshClient("modelmesh.yaml", policies={
        "chat": PolicySet(deactivation=(RetryLimit(2) | ErrorRate(0.5),), recovery=(Cooldown(30),)),
        "*": PolicySet(deactivation=(my_function,)),          # every pool
    })

A deactivation policy answers `should_deactivate(state, now) -> Deactivation | None`
(a function `fn(state, now)` will do); a recovery policy answers `recover_at(state,
decision, now) -> float | None` (or `fn(state, decision, now)`). `state` is the model's
`ModelState` in that pool. Plugged policies are asked after the configured deactivation
policies and before the configured recovery ones.
"""
from __future__ import annotations

from ._core._policies import (
    AnyOf,
    BudgetLimit,
    Cooldown,
    Deactivation,
    ErrorRate,
    FirstOf,
    Maintenance,
    Manual,
    OnQuotaReset,
    PolicySet,
    Probe,
    QuotaWindow,
    RequestLimit,
    RetryLimit,
    TokenLimit,
)
from ._core._state import ModelState
from ._core._types import DeactivationReason

__all__ = [
    "PolicySet", "Deactivation", "DeactivationReason", "ModelState",
    "RetryLimit", "ErrorRate", "RequestLimit", "TokenLimit", "BudgetLimit", "QuotaWindow", "Maintenance", "AnyOf",
    "Cooldown", "OnQuotaReset", "Manual", "Probe", "FirstOf",
]
