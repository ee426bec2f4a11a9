"""ConfigValidatorMixin: declared config keys and types, every problem reported at once.

Theory of operation: a connector declares `config_schema`, a mapping of key to a
`{"type": ..., "required": ..., "url": ..., "duration": ..., "choices": ..., "secret": ...}`
descriptor (the seed's shape, with more checks). `_validate_config(config)` returns every
problem as a message naming the key; `_check_config(config)` raises the mesh's
`ConfigurationError` listing them all. A message names the key and what was expected;
it shows the value only where that helps (a URL, a duration, a choice) and never for a key
marked `secret`: a misplaced API key must not end up in a log.
Durations are read by the core's parser (`"30s"`, `"5m"`), the one the YAML config uses.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ..._core._durations import parse_duration
from ..._core._errors import ConfigurationError

__all__ = ["ConfigValidatorMixin"]

_KNOWN = frozenset({"type", "required", "url", "duration", "choices", "secret"})


def _type_name(expected: Any) -> str:
    if isinstance(expected, tuple):
        return " or ".join(t.__name__ for t in expected)
    return str(expected.__name__)


class ConfigValidatorMixin:
    """Validate a connector's config dict against `config_schema` (or a schema passed in)."""

    config_schema: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def _validate_config(self, config: Any, schema: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
        """Every problem with `config`, one message each, naming the key; [] when it is valid."""
        schema = self.config_schema if schema is None else schema
        if not isinstance(config, Mapping):
            return [f"config: expected a mapping of settings, got {type(config).__name__}"]
        errors: list[str] = []
        for key, descriptor in schema.items():
            unknown = set(descriptor) - _KNOWN
            if unknown:
                raise TypeError(f"config_schema[{key!r}] has unknown descriptor keys {sorted(unknown)}; "
                                f"known are {sorted(_KNOWN)}")
            if key not in config or config[key] is None:
                if descriptor.get("required", False):
                    errors.append(f"{key}: required, but missing")
                continue
            problem = self._check_value(config[key], descriptor)
            if problem:
                errors.append(f"{key}: {problem}")
        return errors

    def _check_config(self, config: Any, schema: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Raise ConfigurationError listing every problem, or return when there is none."""
        errors = self._validate_config(config, schema)
        if errors:
            raise ConfigurationError(errors, source=type(self).__name__)

    def _check_value(self, value: Any, descriptor: Mapping[str, Any]) -> str | None:
        expected = descriptor.get("type")
        secret = bool(descriptor.get("secret", False))
        shown = "" if secret else f", got {value!r}"
        if expected is not None:
            wrong_bool = isinstance(value, bool) and expected in (int, float)
            if wrong_bool or not isinstance(value, expected):
                return f"expected {_type_name(expected)}, got {type(value).__name__}"
        if descriptor.get("url") and not self._validate_url(value):
            return f"expected an http(s) URL{shown if isinstance(value, str) and '@' not in value else ''}"
        if descriptor.get("duration"):
            try:
                parse_duration(value)
            except ValueError:
                return f'expected a duration like "30s"{shown}'
        choices = descriptor.get("choices")
        if choices is not None and value not in choices:
            return f"expected one of {', '.join(map(repr, choices))}{shown}"
        return None

    def _require_field(self, config: Mapping[str, Any], field: str, field_type: type | tuple[type, ...]) -> Any:
        """`config[field]`, checked: KeyError or TypeError naming the field otherwise."""
        if field not in config:
            raise KeyError(f"missing required config field {field!r}")
        value = config[field]
        if not isinstance(value, field_type) or (isinstance(value, bool) and field_type in (int, float)):
            raise TypeError(f"config field {field!r}: expected {_type_name(field_type)}, got {type(value).__name__}")
        return value

    @staticmethod
    def _validate_url(url: Any) -> bool:
        """True for an http or https URL with a host."""
        if not isinstance(url, str):
            return False
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - reading it checks it is a number
            return parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            return False

    @staticmethod
    def _validate_duration(value: Any) -> float:
        """Seconds from `30`, `"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"7d"`; ValueError otherwise."""
        return parse_duration(value)
