"""What each kind of failure means: one table, `ErrorKind -> Consequence`.

Theory of operation. A failed attempt is classified by its codec into an `ErrorKind`.
Everything that follows from the kind is read from `CONSEQUENCES`, here and nowhere else:

- `scope`: whose fault it is. NONE (the caller's request: no verdict on anyone), MODEL
  (this model, in this pool) or PROVIDER (every model of the provider, in every pool);
- `penalise`: whether it counts in the model's failure streak and rolling window;
- `standby`: how the standby is decided (see `Standby`);
- `provider_rule`: for PROVIDER scope, the pool's `provider_deactivation` rule that must be
  on for the provider to go down; when it is off the model alone goes on standby;
- `same_model_retry`: whether the request may try the same model again after a backoff;
- `effect`: what the request does next: FAIL at once, EXCLUDE the model for this request
  (and try another, without penalty), or ROTATE to the next model;
- `error`: the error class a request that ends on this kind raises;
- `reason`: the DeactivationReason of a standby this row puts in place by itself.

A refused connection is a CONNECTION whose code is "connect": it has a row of its own
(`REFUSED`), since a provider whose host refuses connections is down as a whole. A timeout
is not retried on the same model (it already waited its whole timeout): the request moves
on. A content-filter refusal fails the request with the provider's reason, since the same
prompt is refused everywhere; the pool option `content_filter_failover` tries the other
models instead.

Per provider, two seed keys adjust a row by status: a status listed in `non_retryable_codes`
rotates at once, without a same-model retry; a status listed in `retryable_codes` whose row
would put the model or provider aside at once (an auth failure, a missing model) is taken
as transient instead: counted against the model, left to its deactivation policies, and
retried on the same model where retries are allowed. A spent quota is not: the vendor names
it by its error code, usually under a 429 that is retryable otherwise. Rows whose effect is FAIL or EXCLUDE
are the caller's, whatever the lists say.
"""
from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass, replace

from . import _errors as E
from ._types import DeactivationReason, ErrorInfo, ErrorKind

__all__ = ["Scope", "Standby", "Effect", "Consequence", "CONSEQUENCES", "REFUSED", "consequence_for"]


class Scope(enum.Enum):
    NONE = "none"
    MODEL = "model"
    PROVIDER = "provider"


class Standby(enum.Enum):
    NONE = "none"                # no standby
    POLICY = "policy"            # the pool's deactivation policies decide; a failed trial re-opens
    RETRY_AFTER = "retry_after"  # until the provider's Retry-After when it gives one, else POLICY
    RECOVERY = "recovery"        # at once; the pool's recovery policy says until when
    UNTIL_PROBE = "until_probe"  # the provider at once, until a probe or a person brings it back
    QUOTA_RESET = "quota_reset"  # the provider at once, until its next quota reset (else a cooldown)
    COOLDOWN = "cooldown"        # the provider at once, for the pool's recovery cooldown


class Effect(enum.Enum):
    FAIL = "fail"
    EXCLUDE = "exclude"
    ROTATE = "rotate"


@dataclass(frozen=True, slots=True, kw_only=True)
class Consequence:
    scope: Scope
    penalise: bool
    standby: Standby
    same_model_retry: bool
    effect: Effect
    error: type[E.ModelMeshError]
    reason: DeactivationReason | None = None
    provider_rule: str | None = None


def _row(scope: Scope, penalise: bool, standby: Standby, retry: bool, effect: Effect,
         error: type[E.ModelMeshError], reason: DeactivationReason | None = None,
         rule: str | None = None) -> Consequence:
    return Consequence(scope=scope, penalise=penalise, standby=standby, same_model_retry=retry, effect=effect,
                       error=error, reason=reason, provider_rule=rule)


_K, _S, _B, _X, _R = ErrorKind, Scope, Standby, Effect, DeactivationReason
CONSEQUENCES: dict[ErrorKind, Consequence] = {
    #                        scope   penalise standby     retry  effect     error                  reason
    _K.RATE_LIMITED:     _row(_S.MODEL, True, _B.RETRY_AFTER, True, _X.ROTATE, E.RateLimitError, _R.RATE_LIMITED),
    _K.SERVER_ERROR:     _row(_S.MODEL, True, _B.POLICY, True, _X.ROTATE, E.InternalServerError),
    _K.TIMEOUT:          _row(_S.MODEL, True, _B.POLICY, False, _X.ROTATE, E.APITimeoutError),
    _K.CONNECTION:       _row(_S.MODEL, True, _B.POLICY, True, _X.ROTATE, E.APIConnectionError),
    _K.MALFORMED:        _row(_S.MODEL, True, _B.POLICY, True, _X.ROTATE, E.InternalServerError),
    _K.AUTH:             _row(_S.PROVIDER, True, _B.UNTIL_PROBE, False, _X.ROTATE, E.AuthenticationError,
                              _R.AUTH_FAILURE, "on_auth_failure"),
    _K.QUOTA_EXHAUSTED:  _row(_S.PROVIDER, True, _B.QUOTA_RESET, False, _X.ROTATE, E.RateLimitError,
                              _R.QUOTA_EXHAUSTED),
    _K.MODEL_NOT_FOUND:  _row(_S.MODEL, True, _B.RECOVERY, False, _X.ROTATE, E.NotFoundError, _R.MODEL_NOT_FOUND),
    _K.CONTEXT_LENGTH:   _row(_S.NONE, False, _B.NONE, False, _X.EXCLUDE, E.ContextLengthError),
    _K.CONTENT_FILTERED: _row(_S.NONE, False, _B.NONE, False, _X.FAIL, E.ContentFilteredError),
    _K.BAD_REQUEST:      _row(_S.NONE, False, _B.NONE, False, _X.FAIL, E.BadRequestError),
    # a redirect (API calls never follow one) or a key the transport cannot send: the provider's
    # configuration is wrong, so every model of it waits for a probe or a person
    _K.MISCONFIGURED:    _row(_S.PROVIDER, True, _B.UNTIL_PROBE, False, _X.ROTATE, E.InternalServerError,
                              _R.MISCONFIGURED),
}
# a connection the provider's host refused: the provider is down, not one model
REFUSED = _row(_S.PROVIDER, True, _B.COOLDOWN, True, _X.ROTATE, E.APIConnectionError, _R.PROVIDER_OUTAGE, "on_api_outage")


def consequence_for(info: ErrorInfo, retryable_codes: Collection[int] = (),
                    non_retryable_codes: Collection[int] = (), *, content_filter_failover: bool = False) -> Consequence:
    """The row for `info`, with the provider's per-status retry lists and the pool's
    `content_filter_failover` applied."""
    row = REFUSED if info.kind is ErrorKind.CONNECTION and info.code == "connect" else CONSEQUENCES[info.kind]
    if content_filter_failover and info.kind is ErrorKind.CONTENT_FILTERED:
        return replace(row, effect=Effect.EXCLUDE)
    if info.status is None or row.effect is not Effect.ROTATE:
        return row
    if info.status in non_retryable_codes and row.same_model_retry:
        return replace(row, same_model_retry=False)
    # a spent quota is named by the vendor's error code, not its status (often a plain 429)
    if info.status in retryable_codes and not row.same_model_retry and row.standby is not Standby.QUOTA_RESET:
        return replace(row, scope=Scope.MODEL, standby=Standby.POLICY, same_model_retry=True, provider_rule=None)
    return row
