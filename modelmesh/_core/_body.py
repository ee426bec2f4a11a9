"""The caller's request body, checked before anything is routed.

A value that cannot be sent as JSON (NaN, infinity, a set, an object, a non-string key) is
the caller's mistake: it must end the request at once with a BadRequestError naming the
parameter, not reach a provider, where it would surface as a transport failure and count
against a healthy model. The one value that is not JSON and is welcome is an `Upload` (a file
the client read for a multipart or raw-body request), which the codec encodes itself.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from . import _errors as E
from ._types import Upload

__all__ = ["check_body"]

_MAX_DEPTH = 64


def check_body(body: Mapping[str, Any]) -> None:
    """Raise BadRequestError naming the first value that is not plain, finite JSON."""
    for key, value in body.items():
        if type(value) in _PLAIN:
            continue
        problem = _problem(value, 0)
        if problem is not None:
            where, what = problem
            raise E.BadRequestError(f"request parameter '{key}{where}': {what}")


_PLAIN = frozenset({str, int, bool, type(None)})  # exact types, tested first: most values of a body


def _problem(value: Any, depth: int) -> tuple[str, str] | None:
    kind = type(value)
    if kind in _PLAIN or kind is Upload:
        return None
    if kind is float and value - value == 0.0:  # finite (inf - inf and nan - nan are nan)
        return None
    if kind is dict and depth < _MAX_DEPTH:  # a message: plain values under string keys, in the common case
        for k, v in value.items():
            if type(k) is not str or type(v) not in _PLAIN:
                break
        else:
            return None
    if kind is list and depth < _MAX_DEPTH:  # messages: a list of such dicts, told without recursion
        for v in value:
            if type(v) in _PLAIN:
                continue
            if type(v) is not dict:
                break
            for k, x in v.items():
                if type(k) is not str or type(x) not in _PLAIN:
                    break
            else:
                continue
            break
        else:
            return None
    if depth > _MAX_DEPTH:
        return "", f"nested deeper than {_MAX_DEPTH} levels"
    if isinstance(value, (str, bool, int)):  # their subclasses (a str enum, say)
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else ("", f"must be a finite number, got {value!r}")
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                return "", f"keys must be strings, got {type(k).__name__} {k!r}"
            if type(v) in _PLAIN:  # most values of a message: no call for them
                continue
            inner = _problem(v, depth + 1)
            if inner is not None:
                return f".{k}{inner[0]}", inner[1]
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if type(v) in _PLAIN:
                continue
            inner = _problem(v, depth + 1)
            if inner is not None:
                return f"[{i}]{inner[0]}", inner[1]
        return None
    return "", f"is not a JSON value ({type(value).__name__})"
