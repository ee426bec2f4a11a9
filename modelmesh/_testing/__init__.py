"""The implementation of `modelmesh.testing`; import from there."""
from ._clock import FakeClock
from ._media import fake_speech
from ._server import STYLES, FakeUpstream, refuse_connections, upstreams
from ._steps import (
    CutStream,
    Drop,
    Error,
    FormFile,
    Headers,
    HtmlError,
    MalformedJSON,
    RecordedRequest,
    Refuse,
    Reply,
    SlowFirstByte,
    SlowStream,
    Step,
    StepLike,
    StreamErrorEvent,
    ToolCall,
)
from ._wire import fake_embedding

__all__ = [
    "FakeClock", "FakeUpstream", "upstreams", "refuse_connections", "STYLES",
    "RecordedRequest", "Headers", "ToolCall", "Step", "StepLike",
    "Reply", "Error", "SlowFirstByte", "CutStream", "StreamErrorEvent", "MalformedJSON",
    "HtmlError", "Refuse", "Drop", "SlowStream", "fake_embedding", "FormFile", "fake_speech",
]
