"""The price and context-window catalogue: a pinned snapshot shipped inside the package.

Theory of operation: `_data/model_catalogue.json` is a trimmed copy of pydantic's
genai-prices data (MIT; source, version, licence and date in `_data/MODEL_CATALOGUE.md`
and in the file's header). Nothing here runs at `import modelmesh`: the file is read and
parsed once, on the first `lookup` (the build step asks when a configured model lacks a
price or a context window; the discovery shell asks for models it finds), and kept.
It is never fetched from the network.

A connector maps to the catalogue's providers it is priced like (`SOURCES`); within one,
models are tried in order and the first whose match rule (genai-prices' clauses over the
lower-cased id) matches wins, as genai-prices itself does. Self-hosted connectors (ollama,
vllm, openai-compatible, ...) have no price: they map to nothing.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["CatalogueEntry", "lookup", "SOURCES", "header"]

# connector -> the catalogue providers whose prices apply to it, in order
SOURCES: dict[str, tuple[str, ...]] = {
    "openai": ("openai",), "azure-openai": ("azure", "openai"), "anthropic": ("anthropic",),
    "gemini": ("google",), "groq": ("groq",), "mistral": ("mistral",), "deepseek": ("deepseek",),
    "together": ("together",), "openrouter": ("openrouter",), "xai": ("x-ai",),
    "perplexity": ("perplexity",), "fireworks": ("fireworks",), "cerebras": ("cerebras",),
    "elevenlabs": ("elevenlabs",),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogueEntry:
    """What the catalogue knows of one model: USD per million tokens, per request, context."""

    id: str
    input_per_1m: float
    output_per_1m: float
    per_request: float
    context_window: int | None


@functools.lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    text = resources.files("modelmesh").joinpath("_data/model_catalogue.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def header() -> dict[str, str]:
    """Where the snapshot comes from: source, version, licence, date."""
    data = _data()
    return {k: str(data[k]) for k in ("source", "version", "license", "date")}


def _matches(clause: list[Any], ref: str) -> bool:
    kind, arg = clause
    if kind == "eq":
        return bool(ref == arg.lower())
    if kind == "starts":
        return ref.startswith(arg.lower())
    if kind == "ends":
        return ref.endswith(arg.lower())
    if kind == "contains":
        return arg.lower() in ref
    if kind == "regex":
        return re.search(arg, ref) is not None
    if kind == "or":
        return any(_matches(c, ref) for c in arg)
    if kind == "and":
        return all(_matches(c, ref) for c in arg)
    raise ValueError(f"model catalogue: unknown match clause {kind!r}")


@functools.lru_cache(maxsize=4096)
def lookup(connector: str, model_id: str) -> CatalogueEntry | None:
    """The catalogue's entry for `model_id` served through `connector`, or None."""
    sources = SOURCES.get(connector)
    if not sources or not isinstance(model_id, str) or not model_id:
        return None
    ref = model_id.lower()
    providers = _data()["providers"]
    for source in sources:
        for row in providers.get(source, ()):
            if _matches(row[1], ref):
                return CatalogueEntry(id=row[0], input_per_1m=float(row[2]), output_per_1m=float(row[3]),
                                      per_request=float(row[4]), context_window=row[5])
    return None
