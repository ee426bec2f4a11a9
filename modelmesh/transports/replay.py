"""The replay shell: record every input the core is fed in production, replay it offline.

Theory of operation. The core decides from its inputs alone: the configuration, a seeded
`random.Random`, the times it is told, and what each shell feeds it (a request's start,
each `next_action(now)`, each transport outcome, probe verdicts, other processes' facts,
by-hand standbys). `Recorder.wrap(core)` puts a thin proxy in front of a `MeshCore` and
of every `Call` it starts: each of those doors is entered under one recorder lock (so the
order the file shows is the order the core saw, across threads and tasks), and one JSON
line is written per door: its input, the decision it gave back (normalised) and the
events it caused. The first line is a header with the seed and the base URL each provider
resolved to.

`replay(log, config)` builds a fresh core from the same configuration and seed (no
storage, no sinks, no network), feeds it the recorded inputs and nothing else, and checks
each decision and event against the recorded one: the first difference raises
`ReplayDiverged`, naming the line, what was recorded and what came out.

Redaction (on by default, `redact_payloads: false` turns it off). What the caller and the
models said is masked where it is written, keeping every byte that routing can depend on:
- request bodies: every string whose key is not structural (`role`, `type`, `model`,
  `tool_choice`, ...) becomes a mask of the same length in characters and in UTF-8 bytes
  (`x`, `é`, `€`, `😀`; whitespace kept); bytes become zeros;
- successful JSON and SSE answers: the same masking inside the string values of the JSON,
  done on the raw bytes by a small scanner that keeps each chunk's length and boundaries,
  keeps escapes and keeps invalid UTF-8 invalid, so a malformed answer stays malformed;
  other successful answers (audio, text) are masked whole, keeping their length;
- error answers (status >= 400) are kept, since the vendor's error type and message are
  what classifies them; secret values are masked everywhere (`***`).
With redaction the recorded decisions compare payload strings by shape only (a
stream's text is checked through its length), and error messages not at all.

Session ids are kept (sticky routing depends on them). What this does not record: the
user's own code (custom strategies and policies are passed to `replay` again) and
clock-free reads (`snapshot` is recorded with its time, since a read may end a cooldown).
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._core import _errors as E
from ._record import (
    _CORE_DOORS,
    _EVENT_DOORS,
    FORMAT,
    ByteMask,
    Recorder,
    _dec,
    _Norm,
    decode_input,
    encode_input,
    key_print,
    mask_text,
    mask_value,
    shape,
)

__all__ = ["Recorder", "ReplayDiverged", "Replayed", "replay", "encode_input", "decode_input", "ByteMask", "mask_text",
           "mask_value", "shape", "key_print", "FORMAT"]


class ReplayDiverged(AssertionError):
    """A replayed decision or event differs from the recorded one."""

    def __init__(self, line: int, what: str, recorded: Any, replayed: Any) -> None:
        self.line, self.what, self.recorded, self.replayed = line, what, recorded, replayed
        super().__init__(f"replay diverged at line {line} ({what}):\n  recorded: {_show(recorded)}\n"
                         f"  replayed: {_show(replayed)}")


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 2000 else text[:2000] + "..."


# -- replaying -------------------------------------------------------------------------------

@dataclass
class Replayed:
    """What a replay went through: the header, and how many of each door it fed."""

    header: dict[str, Any]
    lines: int = 0
    calls: int = 0
    decisions: int = 0
    events: int = 0
    doors: dict[str, int] = field(default_factory=dict)


def _lines(log: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    if isinstance(log, (str, os.PathLike)):
        with open(log, encoding="utf-8") as fh:
            yield from _lines(list(fh))
        return
    for n, raw in enumerate(log, 1):
        if isinstance(raw, Mapping):
            yield n, dict(raw)
            continue
        text = raw.strip()
        if not text:
            continue
        try:
            entry = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"recording line {n}: not JSON ({exc})") from None
        if not isinstance(entry, dict):
            raise ValueError(f"recording line {n}: expected an object, got {type(entry).__name__}")
        yield n, entry


def replay(log: Any, config: Any, *, environ: Mapping[str, str] | None = None,
           strategies: Mapping[str, Callable[..., Any]] | None = None, policies: Mapping[str, Any] | None = None
           ) -> Replayed:
    """Feed a recording (a path, or its lines) into a fresh core built from `config` with the
    recorded seed; raises ReplayDiverged at the first decision or event that differs, and
    ValueError for a file that is not a recording (naming the line). API keys are not
    needed: the core never sends, so the builder stands a dummy in for a key the environment lacks."""
    from .._build import build

    entries = _lines(log)
    first = next(entries, None)
    if first is None or first[1].get("modelmesh_recording") is None:
        raise ValueError("not a modelmesh recording: its first line must be the recorder's header")
    header = first[1]
    if header["modelmesh_recording"] != FORMAT:
        raise ValueError(f"recording format {header['modelmesh_recording']!r}; this version reads format {FORMAT}")
    built = build(config, environ=environ, strategies=strategies, policies=policies, seed=header["seed"],
                  replaying=True)
    core = built.core
    core.listening = True
    for pid, url in header.get("base_urls", {}).items():
        mine = core.providers.get(pid)
        here = E.redact(mine.config.base_url or "", core.secret_values) if mine is not None else None
        if here != url:
            raise ValueError(f"provider {pid!r}: the recording's base URL is {url!r}, this configuration gives "
                             f"{here!r}; replay with the configuration (and base URL variables) it was recorded with")
    norm = _Norm(bool(header.get("redacted", True)), core.secret_values)
    done = Replayed(header=header, lines=1)
    calls: dict[int, Any] = {}
    probes: dict[str, Any] = {}  # what the replayed core asked for (probes, listings) by key; keys by print
    for pid, prints in header.get("keys", {}).items():
        keys: tuple[str, ...] = core.providers[pid].keys.values() if pid in core.providers else ()
        for p, key in zip(prints, keys, strict=False):  # the recorded process's key i is this core's key i
            probes[f"$key:{p}"] = key
    for n, entry in entries:
        done.lines += 1
        door = str(entry.get("door"))
        done.doors[door] = done.doors.get(door, 0) + 1
        try:
            if door == "start":
                _replay_start(n, entry, core, norm, calls)
                done.calls += 1
            elif door in ("next", "feed"):
                call = calls.get(entry["call"])
                if call is None:
                    raise ValueError(f"recording line {n}: call {entry['call']} was never started")
                _replay_step(n, door, entry, call, norm)
                done.decisions += door == "next"
            elif door in _CORE_DOORS or door == "set_api_keys":
                _replay_door(n, door, entry, core, norm, probes)
            else:
                raise ValueError(f"recording line {n}: unknown door {door!r}")
        except KeyError as exc:
            raise ValueError(f"recording line {n}: missing {exc}") from None
        done.events += len(entry.get("events", ()))
    return done


def _check(n: int, what: str, recorded: Any, replayed: Any) -> None:
    if recorded != replayed:
        raise ReplayDiverged(n, what, recorded, replayed)


def _raised(n: int, what: str, entry: Mapping[str, Any], norm: _Norm, fn: Callable[[], Any]) -> tuple[bool, Any]:
    """Run `fn`; an exception must be the recorded one. (raised, result)"""
    try:
        out = fn()
    except (ReplayDiverged, ValueError) as exc:
        if isinstance(exc, ReplayDiverged) or "raised" not in entry:
            raise
        _check(n, f"{what}: the error raised", entry["raised"], norm.error(exc))
        return True, None
    except Exception as exc:
        _check(n, f"{what}: the error raised", entry.get("raised"), norm.error(exc))
        return True, None
    if "raised" in entry:
        _check(n, f"{what}: the error raised", entry["raised"], None)
    return False, out


def _replay_start(n: int, entry: Mapping[str, Any], core: Any, norm: _Norm, calls: dict[int, Any]) -> None:
    a = entry["args"]
    core.request_prefix = a.get("prefix", core.request_prefix)
    body = _dec(a["body"], {})
    options = _dec(a["options"], {})
    raised, call = _raised(n, "start", entry, norm, lambda: core.start(
        a["op"], body, model=a["model"], stream=a["stream"], options=options, now=entry["now"]))
    if not raised:
        _check(n, "the request id", entry.get("out"), call.request_id)
        calls[entry["call"]] = call


def _replay_step(n: int, door: str, entry: Mapping[str, Any], call: Any, norm: _Norm) -> None:
    seen = len(call.events)
    if door == "next":
        raised, action = _raised(n, "next_action", entry, norm, lambda: call.next_action(entry["now"]))
        if not raised:
            _check(n, "the decision", entry.get("out"), norm.action(action))
    else:
        event = decode_input(entry["in"])
        _raised(n, f"feed {entry['in']['t']}", entry, norm, lambda: call.feed(event, entry["now"]))
    _check(n, "the events", entry.get("events", []), norm.events(call.drain_events()[seen:]))


def _replay_door(n: int, door: str, entry: Mapping[str, Any], core: Any, norm: _Norm, probes: dict[str, Any]) -> None:
    args = _dec(entry.get("args", []), probes)
    kwargs = _dec(entry.get("kwargs", {}), probes)
    raised, out = _raised(n, door, entry, norm, lambda: getattr(core, door)(*args, **kwargs))
    if raised:
        return
    if door in ("due_probes", "due_listings", "due_queries"):
        for p in out:
            probes[p.key] = p
    if door in _EVENT_DOORS:
        _check(n, f"the events of {door}", entry.get("events", []), norm.events(out or ()))
    else:
        _check(n, f"what {door} gave", entry.get("out"), norm.result(door, out))
