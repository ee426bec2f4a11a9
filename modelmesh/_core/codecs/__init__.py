"""Provider codecs: pure translation between OpenAI-shaped requests and each vendor's wire format.

`get_codec(name)` gives the built-in codec of a wire format; each codec module is imported the
first time its format is asked for.
"""
from __future__ import annotations

import importlib

from ._base import Codec, CodecError, StreamDecoder, StreamDone, StreamError, StreamItem, Target

__all__ = ["Codec", "CodecError", "StreamDecoder", "StreamDone", "StreamError", "StreamItem", "Target",
           "codec_names", "get_codec", "codec_for_connector"]

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
