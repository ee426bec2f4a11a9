"""Provider codecs: pure translation between OpenAI-shaped requests and each vendor's wire format."""
from ._base import (
    Codec,
    CodecError,
    StreamDecoder,
    StreamDone,
    StreamError,
    StreamItem,
    Target,
    codec_names,
    get_codec,
    register_codec,
)

__all__ = ["Codec", "CodecError", "StreamDecoder", "StreamDone", "StreamError", "StreamItem", "Target",
           "codec_names", "get_codec", "register_codec"]
