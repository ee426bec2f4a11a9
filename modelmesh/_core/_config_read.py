"""Reading configuration data: value converters, problems, and sections with paths.

Theory of operation: each value converter (`as_int`, `as_duration`, `as_choice`, ...)
returns the typed value or raises ValueError with the exact message a user reads in a
ConfigurationError. `Ctx` gathers problems as "path: message" lines and substitutes
`${secrets:NAME}` references (an unresolvable one becomes `UNRESOLVED`, reported once);
`Section` reads one mapping, knowing its path and its allowed keys, and falls back to
the default when a value is absent or bad so that reading goes on. `_config` uses these
to build the value objects of `_config_schema`; this module knows nothing of them.
"""
from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import urlsplit

from ._cron import CronSchedule
from ._durations import parse_duration

__all__ = [
    "UNRESOLVED", "ItemErrors", "Ctx", "Section", "show", "suggest", "join",
    "as_bool", "as_str", "as_secret", "as_int", "as_number", "as_duration", "as_positive_duration",
    "as_choice", "as_list", "as_status_codes", "as_url", "as_cron", "as_schedule", "as_mapping_of",
    "as_header_secret", "as_headers", "header_value_problem", "MAX_DURATION", "MAX_INT",
]

_CUSTOM_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an RFC 9110 token
_CONTROL = re.compile(r"[\x00-\x20\x7f]")

MAX_DURATION = 365 * 86400.0  # a span longer than a year is a typo, and sleeps no one waits out
MAX_INT = 10**15              # counts and limits stay exact as floats, and printable


class _Unresolved:
    """Stands where a secret reference could not be resolved (and was already reported)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unresolved secret>"


UNRESOLVED = _Unresolved()


# -- value converters: each raises ValueError with the message the user will read ------

def show(value: Any) -> str:
    """A value as the user wrote it in YAML: strings in double quotes, null, true."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int) and abs(value) > MAX_INT:
        return f"a {value.bit_length()}-bit integer"  # repr may refuse (over 4300 digits)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def suggest(word: Any, options: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def join(path: str, key: Any) -> str:
    """The path of a mapping key; list items are written `path[i]` by their callers."""
    key = key if isinstance(key, str) else show(key)
    return f"{path}.{key}" if path else key


def as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {show(value)}")
    return value


def as_str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {show(value)}")
    return value


def as_secret(value: Any) -> str:
    """A credential: like as_str, but a wrong value is never echoed back."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got a value of type {type(value).__name__}")
    return value


def as_int(low: int | None = None, high: int | None = None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {show(value)}")
        _check_range(value, low, MAX_INT if high is None else high)
        return value
    return convert


def as_number(low: float | None = None, high: float | None = None,
              above: float | None = None) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not _finite(value):
            raise ValueError(f"expected a number, got {show(value)}")
        if above is not None and value <= above:
            raise ValueError(f"expected a number greater than {above:g}, got {show(value)}")
        _check_range(value, low, high)
        return float(value)
    return convert


def _finite(value: float) -> bool:
    """Whether `value` is a finite float, or an int that can become one."""
    if isinstance(value, int):
        return abs(value) <= MAX_INT
    return math.isfinite(value)


def _check_range(value: float, low: float | None, high: float | None) -> None:
    if low is not None and high is not None and not low <= value <= high:
        raise ValueError(f"expected a value from {low:g} to {high:g}, got {show(value)}")
    if low is not None and value < low:
        raise ValueError(f"expected a value of at least {low:g}, got {show(value)}")
    if high is not None and value > high:
        raise ValueError(f"expected a value of at most {high:g}, got {show(value)}")


def as_duration(value: Any) -> float:
    try:
        seconds = parse_duration(value)
    except (ValueError, OverflowError):  # OverflowError: an int too big for a float
        raise ValueError(f'expected a duration like "60s", got {show(value)}') from None
    if seconds > MAX_DURATION:
        raise ValueError(f'expected a duration of at most a year ("365d"), got {show(value)}')
    return seconds


def as_positive_duration(value: Any) -> float:
    seconds = as_duration(value)
    if seconds <= 0:
        raise ValueError(f'expected a duration longer than zero like "60s", got {show(value)}')
    return seconds


def _canonical(value: str, options: Iterable[str]) -> str | None:
    norm = value.strip().lower().replace("_", "-")
    for option in options:
        if option == value or option.lower().replace("_", "-") == norm:
            return option
    return None


def as_choice(options: Iterable[str], custom: bool = False) -> Callable[[Any], str]:
    """One of `options`; with `custom`, also a "package.module:Name" import path."""
    options = tuple(options)

    def convert(value: Any) -> str:
        if isinstance(value, str):
            found = _canonical(value, options)
            if found is not None:
                return found
            if custom and _CUSTOM_PATH.match(value.strip()):
                return value.strip()
        listed = ", ".join(repr(o) for o in options)
        extra = ' or a "package.module:Name" path' if custom else ""
        raise ValueError(f"expected one of {listed}{extra}, got {show(value)}"
                         f"{suggest(value, options)}")
    return convert


class ItemErrors(ValueError):
    """Problems with single items of a list or mapping, reported at each item's path."""

    def __init__(self, items: Sequence[tuple[int | str, str]]) -> None:
        super().__init__("; ".join(f"{where}: {message}" for where, message in items))
        self.items = items


def as_list(item: Callable[[Any], Any], allow_single: bool = True) -> Callable[[Any], tuple[Any, ...]]:
    """A list of items (or one bare item); every bad item is reported at its own index."""
    def convert(value: Any) -> tuple[Any, ...]:
        if isinstance(value, (str, int, float)) and allow_single:
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list, got {show(value)}")
        out, bad = [], []
        for index, entry in enumerate(value):
            if entry is UNRESOLVED:
                continue
            try:
                out.append(item(entry))
            except (ValueError, TypeError) as exc:
                bad.append((index, str(exc)))
        if bad:
            raise ItemErrors(bad)
        return tuple(out)
    return convert


def as_status_codes(value: Any) -> tuple[int, ...]:
    return as_list(as_int(100, 599))(value)


def as_url(value: Any) -> str:
    """An http(s) URL with a host; it goes into request lines as it is, so no whitespace or
    control character anywhere, and no credentials (they would show in every log)."""
    example = 'expected an http(s) URL like "https://api.example.com/v1"'
    if not isinstance(value, str):
        raise ValueError(f"{example}, got {show(value)}")
    text = value.strip(" ")
    bad = _CONTROL.search(text)
    if bad:
        what = "a space" if bad.group() == " " else f"the control character {bad.group()!r}"
        raise ValueError(f"{example}, got one with {what} at position {bad.start()}")
    try:
        parts = urlsplit(text)
        port = parts.port  # a ValueError when it is not a number from 0 to 65535
    except ValueError:
        raise ValueError(f"{example}, got {show(value)} (bad host or port)") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{example}, got one with credentials in it; give them under auth:")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or port == 0:
        raise ValueError(f"{example}, got {show(value)}")
    return text


def _header_value_problem(value: str) -> str | None:
    if value != value.lstrip():  # requests refuses it, quoting the value in its message
        return "starts with whitespace"
    if any(c in value for c in "\r\n\x00"):
        return "holds a line break or NUL (header injection)"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError as exc:
        return f"holds a character that an HTTP header cannot carry at position {exc.start}"
    return None


def header_value_problem(value: Any) -> str | None:
    """Why `value` cannot be sent as an HTTP header value, without echoing it; None if it can."""
    if not isinstance(value, str) or not value:
        return f"expected a non-empty string, got a value of type {type(value).__name__}"
    return _header_value_problem(value)


def as_header_secret(value: Any) -> str:
    """A credential sent in a header (an API key): sendable, and never echoed."""
    problem = header_value_problem(value)
    if problem is None and value != value.rstrip():
        problem = "ends with whitespace (a key never does; a copy-paste often does)"
    if problem:
        raise ValueError(problem)
    return cast(str, value)


def as_headers(value: Any) -> dict[str, str]:
    """Extra request headers: token names, sendable values. Values may be credentials,
    so they are never echoed."""
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping of header name to value, got {show(value)}")
    out, bad = {}, []
    for name, entry in value.items():
        if entry is UNRESOLVED:
            continue
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            bad.append(("", f"{show(name) if isinstance(name, str) else 'a non-string'} is not a "
                            "header name (letters, digits and !#$%&'*+-.^_`|~)"))
            continue
        problem = header_value_problem(entry)
        if problem:
            bad.append((name, problem))
        else:
            out[name] = entry
    if bad:
        raise ItemErrors(bad)
    return out


def as_cron(value: Any) -> str:
    """A 5-field cron expression, checked by the same parser the core schedules with."""
    # its ValueError names the field and column at fault, and refuses a non-string
    return CronSchedule.parse(value).expression


def as_schedule(options: Iterable[str]) -> Callable[[Any], str]:
    """A named reset schedule (`daily`, `monthly`, ...) or a 5-field cron expression."""
    named = as_choice(options)

    def convert(value: Any) -> str:
        if isinstance(value, str) and len(value.split()) == 5:
            return as_cron(value)
        try:
            return named(value)
        except ValueError as exc:
            raise ValueError(f"{exc} (or a 5-field cron expression)") from None
    return convert


def as_mapping_of(item: Callable[[Any], Any]) -> Callable[[Any], dict[str, Any]]:
    def convert(value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a mapping, got {show(value)}")
        out, bad = {}, []
        for key, entry in value.items():
            if entry is UNRESOLVED:
                continue
            try:
                out[as_str(key)] = item(entry)
            except (ValueError, TypeError) as exc:
                bad.append((str(key), str(exc)))
        if bad:
            raise ItemErrors(bad)
        return out
    return convert


# -- the reading machinery -----------------------------------------------------------

_SECRET_REF = re.compile(r"\$\{secrets:([^}]*)\}")


class Ctx:
    """Problems, resolved secrets and missing secrets gathered during one parse."""

    def __init__(self, resolve_secret: Callable[[str], str | None] | None,
                 strategy_names: Iterable[str] = ()) -> None:
        self.resolve_secret = resolve_secret
        self.strategy_names = tuple(strategy_names)  # user strategies given by name, besides the built-ins
        self.fail_on_missing = True
        self.problems: list[str] = []
        self.secrets: list[str] = []
        self.missing: list[str] = []
        self.refs: dict[str, str] = {}  # path -> the secret a whole-string `${secrets:NAME}` there names

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path or '(top level)'}: {message}")

    def section(self, value: Any, path: str, keys: Iterable[str],
                hints: Mapping[str, str] | None = None) -> Section:
        """A reader over `value`; reports a non-mapping and every unknown key."""
        if value is None or value is UNRESOLVED:
            value = {}
        if not isinstance(value, Mapping):
            self.problem(path, f"expected a mapping, got {show(value)}")
            value = {}
        return Section(self, value, path, tuple(keys), hints or {})

    def substitute(self, value: Any, path: str) -> Any:
        """`value` with every `${secrets:NAME}` replaced; problems reported at their path."""
        if isinstance(value, str):
            return self._substitute_string(value, path) if "${secrets:" in value else value
        if isinstance(value, Mapping):
            return {k: self.substitute(v, join(path, k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.substitute(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    def _substitute_string(self, text: str, path: str) -> Any:
        refs = list(_SECRET_REF.finditer(text))
        if not refs:
            self.problem(path, "malformed secret reference (expected ${secrets:NAME})")
            return UNRESOLVED
        whole = len(refs) == 1 and refs[0].group(0) == text
        if whole:
            self.refs[path] = refs[0].group(1).strip()
        out, lost = text, False
        for ref in refs:
            resolved = self.secret(ref.group(1).strip(), path)
            lost = lost or resolved is None
            out = out.replace(ref.group(0), resolved or "", 1)
        # a lost whole-string secret leaves the key unset; a lost embedded one an empty gap
        return UNRESOLVED if lost and (whole or self.fail_on_missing) else out

    def secret(self, name: str, path: str, *, what: str | None = None, required: bool = False,
                 hint: str = "") -> str | None:
        """The value of the secret `name` for the setting at `path`; None, with a problem noted,
        when it cannot be had. A missing secret is a problem when `secrets.fail_on_missing` is
        on or the setting is `required` (nothing works without it), else it is listed as missing.
        `what` names the secret in messages, `hint` says where to put a missing one."""
        what = what or f"secret {name!r}"
        if not name:
            self.problem(path, "secret reference with an empty name")
            return None
        if self.resolve_secret is None:
            self.problem(path, f"{what} referenced but no secret resolver was given")
            return None
        try:
            value = self.resolve_secret(name)
        except Exception as exc:  # noqa: BLE001 - a store's message may hold anything
            self.problem(path, f"{what} could not be read ({type(exc).__name__})")
            return None
        if value is None or value == "":
            if self.fail_on_missing or required:
                self.problem(path, f"{what} not found{hint}")
            else:
                self.missing.append(f"{path}: {name}")
            return None
        if not isinstance(value, str):
            self.problem(path, f"{what} is not a string")
            return None
        self.secrets.append(value)
        return value


class Section:
    """Typed access to one mapping of the configuration, which knows its path."""

    __slots__ = ("ctx", "data", "path")

    def __init__(self, ctx: Ctx, data: Mapping[Any, Any], path: str,
                 keys: tuple[str, ...], hints: Mapping[str, str]) -> None:
        self.ctx, self.data, self.path = ctx, data, path
        for key in data:
            if key in keys:
                continue
            if not isinstance(key, str):
                ctx.problem(path, f"keys must be strings, got {show(key)}")
            elif key in hints:
                ctx.problem(join(path, key), f"unknown key ({hints[key]})")
            else:
                ctx.problem(join(path, key), f"unknown key{suggest(key, keys)}")

    def at(self, key: str) -> str:
        return join(self.path, key)

    def has(self, key: str) -> bool:
        return self.data.get(key) not in (None, UNRESOLVED)

    def get(self, key: str, default: Any, convert: Callable[[Any], Any],
            nullable: bool | None = None) -> Any:
        """The converted value of `key`, or `default` (after reporting) when it is bad."""
        if key not in self.data or self.data[key] is UNRESOLVED:
            return default
        value = self.data[key]
        if value is None:
            if nullable if nullable is not None else default is None:
                return None
            self.ctx.problem(self.at(key), "must not be null")
            return default
        try:
            return convert(value)
        except ItemErrors as exc:
            for where, message in exc.items:
                at = self.at(key)
                if isinstance(where, int):
                    at = f"{at}[{where}]"
                elif where != "":  # "" is the item's key itself, reported at the mapping
                    at = join(at, where)
                self.ctx.problem(at, message)
        except (ValueError, TypeError) as exc:
            self.ctx.problem(self.at(key), str(exc))
        return default

    def require(self, key: str, convert: Callable[[Any], Any]) -> Any:
        if key not in self.data:
            self.ctx.problem(self.at(key), "required")
        return self.get(key, None, convert)

    def sub(self, key: str, keys: Iterable[str],
            hints: Mapping[str, str] | None = None) -> Section:
        return self.ctx.section(self.data.get(key), self.at(key), keys, hints)

    def either(self, key: str, group: Section, default: Any,
               convert: Callable[[Any], Any]) -> Any:
        """`key` read here or in an alternative group (`execution:`); both is a problem."""
        if group.has(key):
            if self.has(key):
                self.ctx.problem(self.at(key), f"also given in {group.path}; keep one")
            return group.get(key, default, convert)
        return self.get(key, default, convert)
