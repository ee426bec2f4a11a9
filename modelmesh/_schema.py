"""JSON schemas for structured outputs, as OpenAI's strict mode wants them.

`strict_schema(schema)` turns a schema (pydantic's `model_json_schema()`) into one OpenAI
accepts with `"strict": true`: every object closed (`additionalProperties: false`) and
every property required, a `default` of null dropped, a lone `allOf` merged into its
parent, all the way down (`properties`, `items`, `anyOf`, `$defs`). Pure; no pydantic import.
"""
from __future__ import annotations

from typing import Any

__all__ = ["strict_schema"]

_NESTED_MAPS = ("properties", "$defs", "definitions")
_NESTED_LISTS = ("anyOf", "oneOf", "prefixItems")


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    for key in _NESTED_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: strict_schema(sub) if isinstance(sub, dict) else sub for name, sub in out[key].items()}
    for key in _NESTED_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [strict_schema(sub) if isinstance(sub, dict) else sub for sub in out[key]]
    if isinstance(out.get("items"), dict):
        out["items"] = strict_schema(out["items"])
    all_of = out.get("allOf")
    if isinstance(all_of, list):
        if len(all_of) == 1 and isinstance(all_of[0], dict):
            del out["allOf"]
            out.update(strict_schema(all_of[0]))
        else:
            out["allOf"] = [strict_schema(sub) if isinstance(sub, dict) else sub for sub in all_of]
    if "default" in out and out["default"] is None:
        del out["default"]
    if out.get("type") == "object":
        out["additionalProperties"] = False
        out["required"] = list(out.get("properties", {}))
    return out
