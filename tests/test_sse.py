"""The incremental SSE parser: framing, field rules, and arbitrary byte boundaries."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmesh._core._sse import SSEEvent, SSEParser


def parse(data: bytes, pieces: list[int] | None = None) -> list[SSEEvent]:
    """Feed `data` cut at the given offsets, then close."""
    parser = SSEParser()
    events: list[SSEEvent] = []
    cuts = [0, *(pieces or []), len(data)]
    for start, end in itertools.pairwise(cuts):
        events += parser.feed(data[start:end])
    return events + parser.close()


TRANSCRIPT = (
    "\ufeff: keep-alive comment\r\n"
    "event: greeting\r\n"
    "id: 7\r\n"
    "data: héllo wörld 🌍\r\n"
    "data:second line\r\n"
    "\r\n"
    "data: {\"x\": \"日本語\"}\r"
    "\r"
    "event: bye\n"
    "data\n"
    "\n"
).encode("utf-8")

EXPECTED = [
    SSEEvent(event="greeting", data="héllo wörld 🌍\nsecond line", id="7"),
    SSEEvent(event=None, data='{"x": "日本語"}', id="7"),
    SSEEvent(event="bye", data="", id="7"),
]


def test_transcript_in_one_piece():
    assert parse(TRANSCRIPT) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(TRANSCRIPT)))
def test_transcript_split_at_every_byte_boundary(cut):
    # includes cuts inside the BOM, inside multibyte characters and between CR and LF
    assert parse(TRANSCRIPT, [cut]) == EXPECTED


def test_transcript_one_byte_at_a_time():
    assert parse(TRANSCRIPT, list(range(1, len(TRANSCRIPT)))) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(TRANSCRIPT)), max_size=12))
def test_any_chunking_gives_the_same_events(offsets):
    assert parse(TRANSCRIPT, sorted(offsets)) == EXPECTED


def test_events_dispatch_only_on_blank_line():
    parser = SSEParser()
    assert parser.feed(b"data: a\n") == []
    assert parser.feed(b"\n") == [SSEEvent(event=None, data="a", id=None)]


def test_cr_at_end_of_read_then_lf_is_one_line_end():
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n") == []          # the LF completes the CRLF, it is not a blank line
    assert parser.feed(b"\r\n") == [SSEEvent(event=None, data="a", id=None)]


def test_only_one_leading_space_is_stripped_and_colon_in_value_kept():
    assert parse(b"data:  two spaces: yes\n\n") == [SSEEvent(event=None, data=" two spaces: yes")]


def test_comments_retry_and_unknown_fields_are_ignored():
    assert parse(b": hi\nretry: 10\nfoo: bar\ndata: x\n\n") == [SSEEvent(event=None, data="x")]


def test_event_without_data_is_not_dispatched_and_name_resets():
    assert parse(b"event: ping\n\ndata: y\n\n") == [SSEEvent(event=None, data="y")]


def test_id_persists_and_id_with_nul_is_ignored():
    events = parse(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\x003\ndata: c\n\n")
    assert [e.id for e in events] == ["1", "1", "1"]


def test_close_flushes_an_unterminated_event():
    parser = SSEParser()
    assert parser.feed(b"data: [DONE]") == []
    assert parser.close() == [SSEEvent(event=None, data="[DONE]")]
    assert parser.close() == []


def test_invalid_utf8_is_replaced_not_fatal():
    assert parse(b"data: \xff\xfe\n\n") == [SSEEvent(event=None, data="\ufffd\ufffd")]


def test_bom_only_stripped_at_stream_start():
    assert parse("data: \ufeffx\n\n".encode()) == [SSEEvent(event=None, data="\ufeffx")]


def test_feed_rejects_text_and_use_after_close():
    parser = SSEParser()
    with pytest.raises(TypeError, match="bytes"):
        parser.feed("data: x\n\n")  # type: ignore[arg-type]
    parser.close()
    with pytest.raises(ValueError, match="after close"):
        parser.feed(b"data: x\n\n")


def test_a_line_that_never_ends_is_refused_past_the_cap():
    from modelmesh._core._sse import MAX_LINE, SSELineTooLong

    parser = SSEParser()
    piece = b"y" * (1024 * 1024)
    with pytest.raises(SSELineTooLong):
        for _ in range(MAX_LINE // len(piece) + 2):
            parser.feed(piece)


def test_a_decoder_turns_an_endless_line_into_one_malformed_stream_error():
    from modelmesh._core._sse import MAX_LINE
    from modelmesh._core._types import ErrorKind
    from modelmesh._core.codecs import StreamError, Target, get_codec

    decoder = get_codec("openai").stream_decoder(Target(provider="p", model="m", base_url="http://x"), "chat")
    items = []
    for _ in range(MAX_LINE // (1024 * 1024) + 2):
        items += decoder.feed(b"y" * (1024 * 1024))
    assert len(items) == 1 and isinstance(items[0], StreamError) and items[0].info.kind is ErrorKind.MALFORMED
    assert decoder.feed(b"more") == []
