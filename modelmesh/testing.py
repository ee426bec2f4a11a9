"""Test helpers for ModelMesh and for its users' tests: fake vendor servers and a fake clock.

Theory of operation: `FakeUpstream("openai" | "anthropic" | "gemini")` is a real HTTP/1.1
server on 127.0.0.1 that answers in that vendor's wire format (chat, streamed chat,
embeddings, models; Azure OpenAI paths too) and records every request it receives in
`.requests`, so a test asserts on what was really sent. `up.script(*steps)` queues one
step per coming request (`Error(429, retry_after=2)`, `CutStream(after_chunks=2)`,
`SlowFirstByte(0.2)`, `Drop()`, ...); `up.always(step)` applies when the queue is empty;
otherwise it answers "Hello from {name}". `FakeClock` replaces `time.time` and
`time.sleep` so no test waits for a cooldown.

OpenAI style also serves the files and fine-tuning APIs (`up.files`, `up.fine_tuning_jobs`
show what it holds): a job ends at its `up.fine_tune_polls`-th retrieve, succeeded (its
`ft:...` model then answers chat) or, with `up.fine_tune_error` set when it was created,
failed with that message.

    with FakeUpstream("anthropic", api_key="k") as up:
        up.script(Error(529, code="overloaded_error"), Reply(text="hi"))
        ...  # point the mesh at up.url
        assert up.requests[0].headers["x-api-key"] == "k"

`assert_replays(recording, config)` replays a recording made by the `recorder` observability
sink (a production incident, say) and fails the test at the first decision or event that
differs, naming the line:

    def test_incident_4711():
        assert_replays("tests/incidents/4711.jsonl", "modelmesh.yaml")
"""
from typing import Any

from modelmesh._testing import (
    STYLES,
    CutStream,
    Drop,
    Error,
    FakeClock,
    FakeUpstream,
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
    fake_embedding,
    fake_speech,
    refuse_connections,
    upstreams,
)
from modelmesh.transports.replay import ReplayDiverged, Replayed, replay

__all__ = [
    "FakeClock", "FakeUpstream", "upstreams", "refuse_connections", "STYLES",
    "RecordedRequest", "Headers", "ToolCall", "Step", "StepLike",
    "Reply", "Error", "SlowFirstByte", "CutStream", "StreamErrorEvent", "MalformedJSON",
    "HtmlError", "Refuse", "Drop", "SlowStream", "fake_embedding", "FormFile", "fake_speech",
    "assert_replays", "ReplayDiverged", "Replayed",
]


def assert_replays(recording: Any, config: Any, **kwargs: Any) -> Replayed:
    """Replay `recording` (a path, or its lines) into a fresh core built from `config`; raises
    ReplayDiverged (an AssertionError) at the first difference. `kwargs` go to `replay`
    (`environ`, and the `strategies`/`policies` the recorded client was given)."""
    __tracebackhide__ = True
    return replay(recording, config, **kwargs)
