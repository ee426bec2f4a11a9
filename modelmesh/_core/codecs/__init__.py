"""Provider codecs: pure translation between OpenAI-shaped requests and each vendor's wire format.

`get_codec(name)` gives the built-in codec of a wire format; each codec module is imported the
first time its format is asked for.
"""
from __future__ import annotations

import importlib

from ._base import Codec, CodecError, StreamDecoder, StreamDone, StreamError, StreamItem, Target

__all__ = ["Codec", "CodecError", "StreamDecoder", "StreamDone", "StreamError", "StreamItem", "Target",
           "codec_names", "get_codec", "codec_for_connector", "INTERFACES", "infrastructure_of"]

# wire format -> (module, class)
_BUILTIN = {
    "openai": ("openai", "OpenAICodec"),
    "azure-openai": ("azure", "AzureOpenAICodec"),
    "anthropic": ("anthropic", "AnthropicCodec"),
    "gemini": ("gemini", "GeminiCodec"),
    "elevenlabs": ("elevenlabs", "ElevenLabsCodec"),
    "deepgram": ("deepgram", "DeepgramCodec"),
    "cohere": ("cohere", "CohereCodec"),
}
_LOADED: dict[str, Codec] = {}


def get_codec(name: str) -> Codec:
    """The codec for a wire format: "openai", "anthropic", "gemini", "azure-openai", "elevenlabs", "deepgram", "cohere"."""
    codec = _LOADED.get(name) if isinstance(name, str) else None
    if codec is None:
        if not isinstance(name, str) or name not in _BUILTIN:
            raise ValueError(f"unknown codec {name!r}; known codecs: {', '.join(codec_names())}")
        module, cls = _BUILTIN[name]
        codec = _LOADED[name] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
    return codec


# connectors with a wire format of their own; every other one (the OpenAI-compatible family,
# the local servers, a custom "module:Class" connector speaking it) speaks "openai"
_OWN_WIRE = frozenset({"anthropic", "gemini", "azure-openai", "elevenlabs", "deepgram", "cohere"})


def codec_for_connector(connector: str) -> str:
    """The wire format a configured connector speaks."""
    return connector if connector in _OWN_WIRE else "openai"


def codec_names() -> list[str]:
    return sorted(_BUILTIN)


# The infrastructure interfaces of seed 002 beyond serving requests, as far as the mesh drives them:
# discovery (a model listing), quota (remaining quota or balance), pricing (prices in the listing),
# batch, files, fine_tuning. What each built-in connector offers is a fact about its vendor's API
# and lives here; a custom connector class states its own (`infrastructure`, empty by default).
INTERFACES = ("discovery", "quota", "pricing", "batch", "files", "fine_tuning")
_OPENAI_FAMILY = frozenset({"discovery", "batch", "files", "fine_tuning"})
_OFFERS: dict[str, frozenset[str]] = {
    "openai": _OPENAI_FAMILY,
    "openai-compatible": _OPENAI_FAMILY,  # whatever the server is: its configuration says what it has
    "anthropic": frozenset({"discovery", "batch"}),
    "groq": frozenset({"discovery", "batch", "files"}),
    "together": frozenset({"discovery", "batch", "files"}),
    "openrouter": frozenset({"discovery", "quota", "pricing"}),
    "deepseek": frozenset({"discovery", "quota"}),
}


def infrastructure_of(connector: str, codec: Codec | None = None) -> frozenset[str]:
    """The interfaces a configured connector offers: a built-in one's from the table above
    (any other built-in one lists its models), a custom class's from its `infrastructure`
    attribute."""
    if ":" in connector:
        return frozenset(getattr(codec, "infrastructure", ()) or ())
    offered = _OFFERS.get(connector)
    if offered is None:
        offered = frozenset({"discovery"})
    return offered
