"""Recording the core's inputs: the recorder sink's proxy, the masks, the JSON of the inputs.

See `modelmesh.transports.replay` for the whole theory of operation (recording and replay).
This half is what a client in production loads when the `recorder` sink is on; it imports
nothing of the builder, which imports it.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

from .._core import _errors as E
from .._core._protocol import (
    Attempt,
    Cancelled,
    ChunkReceived,
    DataReceived,
    Deliver,
    ErrorReceived,
    Failed,
    Read,
    ResponseReceived,
    ResultReceived,
    RoutingOptions,
    StreamEnded,
    StreamOpened,
    Succeeded,
    TransportFailed,
    Wait,
)
from .._core._sharing import Fact
from .._core._types import ErrorInfo, ErrorKind

__all__ = ["Recorder", "RecordingCore", "RecordingCall", "ByteMask", "mask_text", "mask_value", "shape",
           "encode_input", "decode_input", "key_print", "FORMAT"]

FORMAT = 1  # the recording's format version, in its header

# keys whose string values say how a request is routed or answered, not what it says
STRUCTURAL = frozenset({
    "model", "role", "type", "object", "id", "finish_reason", "stop_reason", "event", "code", "param",
    "status", "name", "tool_call_id", "tool_choice", "service_tier", "system_fingerprint", "encoding_format",
    "response_format", "reasoning_effort", "voice", "format", "detail", "modalities", "language", "size",
    "quality", "style", "output_format", "timestamp_granularities", "purpose", "endpoint", "completion_window",
    "method", "url", "custom_id", "finishReason", "modelVersion", "responseId", "blockReason", "role_type",
    "index", "created", "delivery_mode", "preferred_provider", "session_id",
})

# the doors of MeshCore that change (or may change) what it knows, with their argument names
_CORE_DOORS = ("started", "route", "due_probes", "probe_result", "due_listings", "listed", "due_queries", "queried",
               "deactivate_model", "reactivate_model",
               "reactivate_provider", "snapshot", "facts", "absorb", "absorb_spend", "absorb_last_minute",
               "absorb_usage", "last_minute", "usage_period", "spend_periods")


def key_print(key: str) -> str:
    """What the recording says of a key: enough to tell keys apart, nothing to use one."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


# -- masking --------------------------------------------------------------------------------

_WHITE = frozenset(" \t\r\n")
_BY_WIDTH = {1: "x", 2: "é", 3: "€", 4: "😀"}


def mask_text(text: str) -> str:
    """The same length in characters and in UTF-8 bytes; whitespace kept."""
    return "".join(c if c in _WHITE else _BY_WIDTH[len(c.encode("utf-8", "surrogatepass"))] for c in text)


def mask_value(value: Any, keep: bool = False) -> Any:
    """A request body (or routing metadata) with every non-structural string masked."""
    if isinstance(value, str):
        return value if keep else mask_text(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(len(value))
    if isinstance(value, Mapping):
        return {k: mask_value(v, k in STRUCTURAL) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(v, keep) for v in value]
    return value


def shape(value: Any, keep: bool = False) -> Any:
    """What a masked and an unmasked payload have in common: structure, numbers, structural
    strings; other strings are reduced to nothing."""
    if isinstance(value, str):
        return value if keep else ""
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, Mapping):
        return {str(k): shape(v, k in STRUCTURAL) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [shape(v, keep) for v in value]
    return value


_HEX = frozenset(b"0123456789abcdefABCDEF")
_STRUCTURAL_BYTE = re.compile(rb'["{}\[\]]')
_SPECIAL_IN_STRING = re.compile(b'["\\\\\x80-\xff]')  # a quote, a backslash, a byte of a multi-byte character
_ASCII_MASK = bytes(b if b <= 0x20 else 0x78 for b in range(128)) + bytes(range(128, 256))  # controls, space kept
_KEEP_LEADS = frozenset({0xE0, 0xED, 0xF0, 0xF4})  # their next byte has a narrower valid range: kept


class ByteMask:
    """Masks the string values of a JSON (or SSE of JSON) byte stream in place, chunk by
    chunk: the same lengths, the same structure, and whatever was invalid stays invalid."""

    __slots__ = ("stack", "prev", "in_str", "masking", "esc", "hexleft", "key", "collect", "utf_left", "keep_next", "_last_key")

    def __init__(self) -> None:
        self.stack: list[tuple[str, bool]] = []  # ("o" | "a", whether its strings are structural)
        self.prev = 0          # the last significant byte outside strings
        self.in_str = False
        self.masking = False
        self.esc = False
        self.hexleft = 0
        self.key: bytearray | None = None  # the bytes of the object key being read
        self.collect = False
        self.utf_left = 0
        self.keep_next = False
        self._last_key = b""  # the last complete object key

    def __call__(self, data: bytes) -> bytes:
        out = bytearray(data)
        i, n = 0, len(data)
        while i < n:
            if not self.in_str:  # up to the next quote or bracket: only the last significant byte counts
                m = _STRUCTURAL_BYTE.search(data, i)
                j = m.start() if m else n
                tail = data[i:j].rstrip(b" \t\r\n")
                if tail:
                    self.prev = tail[-1]
                if m is None:
                    break
                self._outside(data[j])
                i = j + 1
                continue
            if not (self.esc or self.hexleft):  # a run of plain ASCII inside the string, masked at once
                m = _SPECIAL_IN_STRING.search(data, i)
                j = m.start() if m else n
                if j > i:
                    if self.collect and self.key is not None:
                        self.key += data[i:j]
                    if self.masking:
                        out[i:j] = data[i:j].translate(_ASCII_MASK)
                        self.utf_left = 0
                    i = j
                    continue
            self._inside(data[i], out, i)
            i += 1
        return bytes(out)

    def _outside(self, b: int) -> None:
        if b == 0x22:  # "
            self._open_string()
        elif b in b"{[":
            keep = self._value_keep() if self.stack else False
            self.stack.append(("o" if b == 0x7B else "a", keep))
            self.prev = b
        else:  # } or ]
            if self.stack:
                self.stack.pop()
            self.prev = b

    def _inside(self, b: int, out: bytearray, i: int) -> None:
        if self.collect and self.key is not None:
            self.key.append(b)
        if self.esc:
            self.esc = False
            if b == 0x75:  # \u: four hex digits follow
                self.hexleft = 4
            return
        if self.hexleft:
            self.hexleft -= 1
            if b in _HEX:
                if self.masking:
                    out[i] = b"0078"[3 - self.hexleft]
            else:
                self.hexleft = 0
            return
        if b == 0x5C:  # backslash
            self.esc = True
            self.utf_left = 0
            return
        if b == 0x22:
            self._close_string()
            return
        if self.masking:
            out[i] = self._mask_byte(b)

    def _value_keep(self) -> bool:
        kind, keep = self.stack[-1]
        if kind == "o":
            return self._last_key.decode("utf-8", "replace") in STRUCTURAL
        return keep

    def _open_string(self) -> None:
        self.in_str = True
        self.esc = False
        self.hexleft = 0
        self.utf_left = 0
        self.keep_next = False
        top = self.stack[-1] if self.stack else None
        if top is not None and top[0] == "o" and self.prev in (0x7B, 0x2C):  # a key
            self.masking = False
            self.collect = True
            self.key = bytearray()
        else:
            self.collect = False
            self.masking = top is None or not self._value_keep()

    def _close_string(self) -> None:
        self.in_str = False
        if self.collect and self.key is not None:
            self._last_key = bytes(self.key[:-1])  # without the closing quote
            self.key = None
        self.collect = False
        self.prev = 0x22

    def _mask_byte(self, b: int) -> int:
        if b < 0x80:
            self.utf_left = 0
            return b if b in b" \t\r\n" or b < 0x20 else 0x78
        if 0x80 <= b < 0xC0:  # a continuation byte
            if self.utf_left:
                self.utf_left -= 1
                if self.keep_next:
                    self.keep_next = False
                    return b
                return 0x80
            return b  # a stray one: kept, still invalid
        self.keep_next = False
        if 0xC2 <= b <= 0xDF:
            self.utf_left = 1
            return 0xC2
        if 0xE0 <= b <= 0xEF:
            self.utf_left = 2
            self.keep_next = b in _KEEP_LEADS
            return b if b in _KEEP_LEADS else 0xE2
        if 0xF0 <= b <= 0xF4:
            self.utf_left = 3
            self.keep_next = b in _KEEP_LEADS
            return b if b in _KEEP_LEADS else 0xF1
        self.utf_left = 0
        return b  # C0, C1, F5-FF: never valid, kept


def _textual(headers: Mapping[str, str]) -> bool:
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    return not ctype or "json" in ctype or "event-stream" in ctype


# -- values in JSON -------------------------------------------------------------------------

def _enc(value: Any) -> Any:
    """JSON for the arguments the core's doors take (tagged where JSON has no such type)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Fact):
        return {"$fact": value.to_dict()}
    if isinstance(value, RoutingOptions):
        return {"$options": {f.name: _enc(getattr(value, f.name)) for f in fields(value)}}
    if hasattr(value, "key") and hasattr(value, "target") and hasattr(value, "request"):  # a Probe or a Listing
        return {"$asked": value.key}
    if is_dataclass(value) and not isinstance(value, type):  # e.g. a catalogue entry the shell hands over
        return {"$obj": {f.name: _enc(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value):
            return {k: _enc(v) for k, v in value.items()}
        return {"$map": [[_enc(k), _enc(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"$tuple": [_enc(v) for v in value]} if isinstance(value, tuple) else [_enc(v) for v in value]
    raise TypeError(f"cannot record a {type(value).__name__}")


def _dec(value: Any, probes: Mapping[str, Any]) -> Any:
    if isinstance(value, list):
        return [_dec(v, probes) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (tag, inner), = value.items()
        if tag == "$b":
            return base64.b64decode(inner)
        if tag == "$fact":
            return Fact.from_dict(inner)
        if tag == "$options":
            return RoutingOptions(**{k: _dec(v, probes) for k, v in inner.items()})
        if tag == "$asked":
            if inner not in probes:
                raise ValueError(f"the recording answers {inner!r} (a probe or a listing), which the replayed core "
                                 "never asked for")
            return probes[inner]
        if tag == "$key":  # a key the recording names by its print: the replay's own, or a stand-in
            return probes.get(f"$key:{inner}", f"replay-key-{inner}")
        if tag == "$obj":
            return SimpleNamespace(**{k: _dec(v, probes) for k, v in inner.items()})
        if tag == "$map":
            return {_dec(k, probes): _dec(v, probes) for k, v in inner}
        if tag == "$tuple":
            return tuple(_dec(v, probes) for v in inner)
    return {k: _dec(v, probes) for k, v in value.items()}


def encode_input(ev: Any) -> dict[str, Any]:
    kind = type(ev)
    if kind is ResponseReceived:
        return {"t": "response", "status": ev.status, "headers": dict(ev.headers), "body": _enc(ev.body)}
    if kind is StreamOpened:
        return {"t": "opened", "headers": dict(ev.headers)}
    if kind is DataReceived:
        return {"t": "data", "data": _enc(ev.data)}
    if kind is StreamEnded:
        return {"t": "ended"}
    if kind is Cancelled:
        return {"t": "cancelled"}
    if kind is TransportFailed:
        return {"t": "transport", "kind": ev.kind.value, "message": ev.message, "connect": ev.connect}
    if kind is ResultReceived:  # a connector with its own I/O: what its complete() returned
        return {"t": "result", "response": _enc(ev.response), "headers": dict(ev.headers)}
    if kind is ChunkReceived:
        return {"t": "chunk", "chunk": _enc(ev.chunk)}
    if kind is ErrorReceived:
        info = ev.info
        return {"t": "error", "kind": info.kind.value, "message": info.message, "status": info.status,
                "code": info.code, "retry_after": info.retry_after, "type": info.type, "param": info.param}
    raise TypeError(f"cannot record the input {ev!r}")


def decode_input(d: Mapping[str, Any]) -> Any:
    t = d["t"]
    if t == "response":
        return ResponseReceived(status=d["status"], headers=d["headers"], body=_dec(d["body"], {}))
    if t == "opened":
        return StreamOpened(headers=d["headers"])
    if t == "data":
        return DataReceived(data=_dec(d["data"], {}))
    if t == "ended":
        return StreamEnded()
    if t == "cancelled":
        return Cancelled()
    if t == "result":
        return ResultReceived(response=_dec(d["response"], {}), headers=d["headers"])
    if t == "chunk":
        return ChunkReceived(chunk=_dec(d["chunk"], {}))
    if t == "error":
        return ErrorReceived(info=ErrorInfo(kind=ErrorKind(d["kind"]), message=d["message"], status=d["status"],
                                            code=d["code"], retry_after=d["retry_after"], type=d["type"],
                                            param=d["param"]))
    return TransportFailed(kind=ErrorKind(d["kind"]), message=d["message"], connect=d["connect"])


# -- decisions, as recorded and compared ----------------------------------------------------

class _Norm:
    """Decisions and events as plain data; with `redacted`, payloads by shape only."""

    def __init__(self, redacted: bool, secrets: Iterable[str]) -> None:
        self.redacted = redacted
        self.secrets = tuple(secrets)

    def text(self, s: str) -> str:
        return E.redact(s, self.secrets)

    def payload(self, value: Any) -> Any:
        return shape(value) if self.redacted else json.loads(self.text(json.dumps(value, sort_keys=True, default=str)))

    def action(self, a: Any) -> Any:
        kind = type(a)
        if kind is Attempt:
            r = a.request
            body = r.json if r.json is not None else getattr(r, "content", None)
            return {"attempt": a.number, "pool": a.pool, "ref": a.ref, "op": a.op, "stream": a.stream,
                    "method": r.method, "url": self.text(r.url), "body": self.payload(body),
                    "timeouts": [a.connect_timeout, a.read_timeout, a.first_chunk_timeout, a.idle_timeout,
                                 a.total_timeout], "max_bytes": a.max_bytes}
        if kind is Wait:
            return {"wait": a.seconds}
        if kind is Read:
            return {"read": True}
        if kind is Deliver:
            return {"deliver": self.payload(a.chunk), "provider": a.provider, "model": a.model}
        if kind is Succeeded:
            return {"succeeded": a.request_id, "pool": a.pool, "provider": a.provider, "model": a.model,
                    "latency": a.latency, "tokens": [a.prompt_tokens, a.completion_tokens], "cost": a.cost,
                    "response": self.payload(a.response),
                    "attempts": [[r.provider, r.model, r.pool, r.outcome, r.status] for r in a.attempts]}
        if kind is Failed:
            return {"failed": self.error(a.error)}
        raise TypeError(f"unknown action {a!r}")

    def error(self, err: BaseException) -> Any:
        out: dict[str, Any] = {"class": type(err).__name__, "status": getattr(err, "status_code", None),
                               "code": getattr(err, "code", None)}
        if not self.redacted:
            out["message"] = self.text(str(err))
        return out

    def events(self, events: Iterable[Any]) -> list[Any]:
        out = []
        for ev in events:
            d = ev.to_dict()
            for k, v in d.items():
                if k == "fingerprint":  # of a key: the replay's keys are stand-ins
                    d[k] = ""
                elif isinstance(v, str):
                    d[k] = "" if self.redacted and k in ("message", "error", "detail") else self.text(v)
                elif isinstance(v, tuple):
                    d[k] = list(v)
            out.append(d)
        return out

    def result(self, door: str, value: Any) -> Any:
        """A core door's return value, as far as it is a decision."""
        if door == "route":
            return {"model": value.model_id, "provider": value.provider_id, "pool": value.pool_id,
                    "score": value.score, "fallback": list(value.fallback_chain)}
        if door == "due_probes":
            return [[p.key, p.provider, p.pool, p.ref, p.request.method, self.text(p.request.url)] for p in value]
        if door in ("due_listings", "due_queries"):
            return [[x.key, x.provider, x.request.method, self.text(x.request.url)] for x in value]
        if door in ("snapshot", "facts", "last_minute", "usage_period", "spend_periods"):
            text = json.dumps(_enc_loose(value), sort_keys=True, default=str)
            return hashlib.sha256(text.encode()).hexdigest()[:16]
        return None


def _enc_loose(value: Any) -> Any:
    if isinstance(value, Fact):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): _enc_loose(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_enc_loose(v) for v in value]
    return value


# -- recording --------------------------------------------------------------------------------

try:  # the `fast` extra: orjson writes the lines, when installed
    import orjson as _orjson

    def _line(entry: Mapping[str, Any]) -> str:
        return _orjson.dumps(entry).decode() + "\n"
except ImportError:  # pragma: no cover - depends on the environment
    def _line(entry: Mapping[str, Any]) -> str:
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n"


class Recorder:
    """Writes the recording of every core it wraps to `path` (JSON Lines). A process that
    forks writes its own file: the child's name gains `.<pid>` before the suffix, or
    `{pid}` in `path` is replaced. Thread-safe; `close()` at the client's close."""

    def __init__(self, path: str | os.PathLike[str], *, redact_payloads: bool = True, secrets: Iterable[str] = ()) -> None:
        self.template = str(path)
        self.redacted = bool(redact_payloads)
        self.secrets = tuple(secrets)
        self.lock = threading.RLock()
        self._depth = 0
        self._later: list[Callable[[], None]] = []
        self._fh: TextIO | None = None
        self._pid = os.getpid()
        self._header: dict[str, Any] = {}
        self._norm = _Norm(self.redacted, self.secrets)
        self._cids = 0
        # the path must be writable now (a configuration problem, reported at build), but nothing is
        # rewritten until the core is built: a client refused for another reason leaves the file be
        with open(self._name(first=True), "a", encoding="utf-8"):
            pass

    def __repr__(self) -> str:
        return f"Recorder(path={self.path!r}, redact_payloads={self.redacted})"

    @property
    def path(self) -> str:
        return self._fh.name if self._fh is not None else self.template

    def _name(self, first: bool) -> str:
        name = self.template.replace("{pid}", str(os.getpid()))
        if not first and "{pid}" not in self.template:
            p = Path(self.template)
            name = str(p.with_name(f"{p.stem}.{os.getpid()}{p.suffix}"))
        return name

    def _open(self, first: bool = False) -> None:
        self._fh = open(self._name(first), "w", encoding="utf-8")  # noqa: SIM115 - kept open for the client's life
        self._pid = os.getpid()
        if self._header:
            self._line(self._header)

    def wrap(self, core: Any, *, seed: int) -> Any:
        """`core` behind the recording proxy; writes the header (the seed, the base URLs)."""
        self._header = {"modelmesh_recording": FORMAT, "seed": seed, "redacted": self.redacted,
                        "started": time.time(),
                        "base_urls": {pid: E.redact(p.config.base_url or "", self.secrets)
                                      for pid, p in core.providers.items()},
                "keys": {pid: [key_print(k) for k in p.keys.values()] for pid, p in core.providers.items()}}
        with self.lock:
            self._open(first=True)  # writes the header
        return RecordingCore(core, self)

    def _line(self, entry: Mapping[str, Any]) -> None:
        if self._fh is None:
            return
        self._fh.write(_line(entry))
        self._fh.flush()  # a process that dies keeps every line it wrote

    def write(self, entry: dict[str, Any]) -> None:
        """Under `self.lock`."""
        if os.getpid() != self._pid:  # forked: this process's own file
            self._fh = None
            self._open()
        self._line(entry)

    def enter(self) -> None:
        self.lock.acquire()
        self._depth += 1

    def leave(self) -> None:
        self._depth -= 1
        later: list[Callable[[], None]] = []
        if self._depth == 0 and self._later:
            later, self._later = self._later, []
        self.lock.release()
        for fn in later:  # what arrived from inside a recorded door (a finaliser): now, in order
            fn()

    def busy_here(self) -> bool:
        """Whether this thread is inside a recorded door (the RLock is ours, re-entered)."""
        return self._depth > 0 and self.lock._is_owned()  # type: ignore[attr-defined]

    def defer(self, fn: Callable[[], None]) -> None:
        self._later.append(fn)

    def next_cid(self) -> int:
        self._cids += 1
        return self._cids

    def close(self) -> None:
        with self.lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


class RecordingCall:
    """A `Call` whose inputs and decisions are recorded; everything else passes through."""

    __slots__ = ("_call", "_rec", "_cid", "_mask")

    def __init__(self, call: Any, rec: Recorder, cid: int) -> None:
        object.__setattr__(self, "_call", call)
        object.__setattr__(self, "_rec", rec)
        object.__setattr__(self, "_cid", cid)
        object.__setattr__(self, "_mask", None)  # the open stream's ByteMask

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._call, name, value)

    def __repr__(self) -> str:
        return repr(self._call)

    def next_action(self, now: float) -> Any:
        rec, call = self._rec, self._call
        rec.enter()
        try:
            seen = len(call.events)
            entry: dict[str, Any] = {"door": "next", "call": self._cid, "now": now}
            try:
                action = call.next_action(now)
            except Exception as exc:
                entry["raised"] = rec._norm.error(exc)
                entry["events"] = rec._norm.events(call.events[seen:])
                rec.write(entry)
                raise
            entry["out"] = rec._norm.action(action)
            entry["events"] = rec._norm.events(call.events[seen:])
            rec.write(entry)
            return action
        finally:
            rec.leave()

    def feed(self, event: Any, now: float) -> None:
        rec = self._rec
        if type(event) is Cancelled and rec.busy_here():  # from a finaliser inside a recorded door
            rec.defer(lambda: self.feed(event, now))
            return
        rec.enter()
        try:
            call = self._call
            seen = len(call.events)
            entry: dict[str, Any] = {"door": "feed", "call": self._cid, "now": now, "in": self._recorded(event)}
            try:
                call.feed(event, now)
            except Exception as exc:
                entry["raised"] = rec._norm.error(exc)
                entry["events"] = rec._norm.events(call.events[seen:])
                rec.write(entry)
                raise
            entry["events"] = rec._norm.events(call.events[seen:])
            rec.write(entry)
        finally:
            rec.leave()

    def _recorded(self, event: Any) -> dict[str, Any]:
        rec = self._rec
        d = encode_input(event)
        kind = type(event)
        if "headers" in d:
            d["headers"] = {k: E.redact(v, rec.secrets) for k, v in d["headers"].items()}
        if kind is ResponseReceived:
            if event.status >= 400 or not rec.redacted:  # an error's text is how it is classified
                d["body"] = _enc(_secretless(event.body, rec.secrets))
            else:
                d["body"] = _enc(ByteMask()(event.body) if _textual(event.headers) else bytes(len(event.body)))
        elif kind is StreamOpened:
            object.__setattr__(self, "_mask", ByteMask() if _textual(event.headers) else None)
        elif kind is ResultReceived or kind is ChunkReceived:  # what a connector with its own I/O answered
            field = "response" if kind is ResultReceived else "chunk"
            value = event.response if kind is ResultReceived else event.chunk
            d[field] = _enc(mask_value(value) if rec.redacted else json.loads(
                E.redact(json.dumps(_enc(value), ensure_ascii=False), rec.secrets)))
        elif kind is ErrorReceived:
            d["message"] = E.redact(d["message"], rec.secrets)
        elif kind is DataReceived:
            if not rec.redacted:
                d["data"] = _enc(_secretless(event.data, rec.secrets))
            else:
                mask = self._mask
                d["data"] = _enc(mask(event.data) if mask is not None else bytes(len(event.data)))
        return d


def _secretless(data: bytes, secrets: tuple[str, ...]) -> bytes:
    """`data` with each secret value replaced by asterisks of its length."""
    for s in secrets:
        if len(s) >= 4:
            raw = s.encode("utf-8")
            data = data.replace(raw, b"*" * len(raw))
    return data


class RecordingCore:
    """A `MeshCore` whose doors are recorded; attributes and reads pass through."""

    def __init__(self, core: Any, rec: Recorder) -> None:
        object.__setattr__(self, "_core", core)
        object.__setattr__(self, "_rec", rec)
        for door in _CORE_DOORS:
            object.__setattr__(self, door, self._door(door, getattr(core, door)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._core, name, value)

    def __repr__(self) -> str:
        return repr(self._core)

    @property
    def recorder(self) -> Recorder:
        return self._rec

    def start(self, op: str, body: Mapping[str, Any], *, model: str, stream: bool = False,
              options: RoutingOptions | None = None, now: float) -> RecordingCall:
        rec = self._rec
        rec.enter()
        try:
            cid = rec.next_cid()
            args = {"op": op, "body": _enc(mask_value(body) if rec.redacted else body), "model": model,
                    "stream": stream, "options": _enc(self._options(options)), "prefix": self._core.request_prefix}
            entry: dict[str, Any] = {"door": "start", "call": cid, "now": now, "args": args}
            try:
                call = self._core.start(op, body, model=model, stream=stream, options=options, now=now)
            except Exception as exc:
                entry["raised"] = rec._norm.error(exc)
                rec.write(entry)
                raise
            entry["out"] = call.request_id
            rec.write(entry)
            return RecordingCall(call, rec, cid)
        finally:
            rec.leave()

    def set_api_keys(self, provider: str, keys: Any, *, now: float) -> Any:
        """Recorded with each key's print, never the key."""
        rec = self._rec
        rec.enter()
        try:
            entry: dict[str, Any] = {"door": "set_api_keys", "args": [provider, [{"$key": key_print(k)} for k in keys]],
                                     "kwargs": {"now": now}}
            try:
                out = self._core.set_api_keys(provider, keys, now=now)
            except Exception as exc:
                entry["raised"] = rec._norm.error(exc)
                rec.write(entry)
                raise
            entry["events"] = rec._norm.events(out or ())
            rec.write(entry)
            return out
        finally:
            rec.leave()

    def _options(self, options: RoutingOptions | None) -> RoutingOptions | None:
        if options is None or not self._rec.redacted:
            return options
        from dataclasses import replace

        return replace(options, metadata=mask_value(dict(options.metadata)),
                       extra_headers={k: mask_text(v) for k, v in options.extra_headers.items()},
                       extra_query={k: mask_text(v) for k, v in options.extra_query.items()})

    def _door(self, door: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        rec = self._rec

        def recorded(*args: Any, **kwargs: Any) -> Any:
            rec.enter()
            try:
                entry: dict[str, Any] = {"door": door, "args": _enc(list(args)), "kwargs": _enc(kwargs)}
                try:
                    out = fn(*args, **kwargs)
                except Exception as exc:
                    entry["raised"] = rec._norm.error(exc)
                    rec.write(entry)
                    raise
                if door in _EVENT_DOORS:
                    entry["events"] = rec._norm.events(out or ())
                else:
                    entry["out"] = rec._norm.result(door, out)
                rec.write(entry)
                return out
            finally:
                rec.leave()

        recorded.__name__ = door
        return recorded


# the doors that return the events they caused
_EVENT_DOORS = frozenset({"set_api_keys", "probe_result", "deactivate_model", "reactivate_model", "reactivate_provider", "absorb",
                          "absorb_usage", "listed", "queried"})


