"""Every (phase, input) pair of the call's table, in both modes: legal pairs end in a phase the
table names for them; every other pair is a CallProtocolError and changes nothing."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modelmesh._core._call import TRANSITIONS, CallProtocolError
from modelmesh._core._protocol import (
    Cancelled,
    DataReceived,
    Phase,
    ResponseReceived,
    StreamEnded,
    StreamOpened,
    TransportFailed,
)
from modelmesh._core._types import ErrorKind

from core_helpers import T0, err_body, make_mesh, ok_body, provider, sse_chunks

INPUTS = {
    ResponseReceived: [ResponseReceived(status=200, body=ok_body()), ResponseReceived(status=500, body=err_body()),
                       ResponseReceived(status=400, body=err_body(type_="invalid_request_error"))],
    StreamOpened: [StreamOpened(headers={})],
    DataReceived: [DataReceived(data=sse_chunks(["hi"])[1]), DataReceived(data=b"data: {not json}\n\n")],
    StreamEnded: [StreamEnded()],
    TransportFailed: [TransportFailed(kind=ErrorKind.TIMEOUT, message="slow"),
                      TransportFailed(kind=ErrorKind.CONNECTION, message="refused", connect=True)],
    Cancelled: [Cancelled()],
}


def _call_in(phase: Phase, stream: bool):
    """A fresh call brought to `phase` through the public protocol."""
    mesh = make_mesh({"a": provider(["m1"]), "b": provider(["m2"])},
                     {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority",
                               "retry": {"same_model_retries": 1}}})
    call = mesh.start("chat", {"messages": [{"role": "user", "content": "x"}]}, model="chat", stream=stream, now=T0)
    if phase is Phase.READY:
        return call
    call.next_action(T0)
    if phase is Phase.SENDING:
        return call
    if phase is Phase.STREAMING:
        call.feed(StreamOpened(headers={}), T0)
    elif phase is Phase.WAITING:
        call.feed(ResponseReceived(status=500, body=err_body()), T0)  # same-model retry: a backoff
    elif phase is Phase.DONE:
        call.feed(ResponseReceived(status=400, body=err_body(type_="invalid_request_error")), T0)
    assert call.phase is phase
    return call


@settings(max_examples=300, deadline=None)
@given(phase=st.sampled_from([p for p in Phase if p is not Phase.STREAMING]) | st.just(Phase.STREAMING),
       stream=st.booleans(), kind=st.sampled_from(sorted(INPUTS, key=lambda t: t.__name__)), pick=st.integers(0, 2))
def test_every_phase_input_pair(phase, stream, kind, pick):
    if phase is Phase.STREAMING and not stream:
        return  # a non-streaming call never streams
    call = _call_in(phase, stream)
    event = INPUTS[kind][pick % len(INPUTS[kind])]
    entry = TRANSITIONS[stream].get((phase, kind))
    if entry is None:
        try:
            call.feed(event, T0)
        except CallProtocolError:
            assert call.phase is phase
            return
        raise AssertionError(f"{kind.__name__} in {phase} (stream={stream}) was accepted")
    try:
        call.feed(event, T0)
    except CallProtocolError as exc:  # the one guard beyond the table: a stream's 2xx is not a body
        assert stream and kind is ResponseReceived and event.status == 200, exc
        return
    assert call.phase in entry[1]


def test_the_table_knows_no_stream_input_for_non_streaming_calls():
    assert not {k for (_, k) in TRANSITIONS[False]} & {StreamOpened, DataReceived, StreamEnded}
