"""The fake upstream's batch APIs: OpenAI's files and batches, Anthropic's message batches.

Theory of operation: OpenAI style serves `POST /v1/batches`, `GET /v1/batches/{id}` and
`POST /v1/batches/{id}/cancel`; Anthropic style serves `POST /v1/messages/batches`,
`GET /v1/messages/batches/{id}`, `GET /v1/messages/batches/{id}/results` and
`POST /v1/messages/batches/{id}/cancel`; the files a batch reads and writes are the
upstream's files API's (`_files.py`, whose endpoints are served here too). Each of these HTTP requests takes a step from the
upstream's script like any other, so a scripted fault (`Error(500)`, `Drop`, ...) hits it;
any other step lets the endpoint answer. A batch is processed when it is created, or after
`upstream.batch_polls` status polls: then each of its lines takes the next step (the
script, else `always`, else the default reply) and is answered as that single request would
be, a callable step seeing the line as a RecordedRequest of its own endpoint. A batch
cancelled before it is processed ends with no line answered (Anthropic: each `canceled`).
The lines answered are not added to `requests` (they are no HTTP requests); `batches`
shows what was submitted.
"""
from __future__ import annotations

import datetime
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from ._exchange import Exchange
from ._files import FILES_PATH, FilesAPI, Refusal
from ._steps import Error, Headers, RecordedRequest, Reply, SlowFirstByte, SlowStream, Step, StreamErrorEvent, resolve_step
from ._wire import Route, digest, json_bytes

if TYPE_CHECKING:
    from ._server import FakeUpstream

__all__ = ["BatchAPI", "FakeBatch"]

_OPENAI = re.compile(r"^/v1/(batches)(?:/([^/]+)(?:/(cancel))?)?$")
_ANTHROPIC = re.compile(r"^/v1/messages/batches(?:/([^/]+)(?:/(results|cancel))?)?$")
_ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")
_FAULTS_PASS = (Reply, SlowStream)  # steps that let a batch endpoint answer normally


@dataclass
class FakeBatch:
    """A batch the fake was given: its lines (custom_id, endpoint path, body) and state."""

    id: str
    lines: list[tuple[str, str, dict[str, Any]]]
    created_at: int
    polls_left: int
    headers: Headers = field(default_factory=Headers)  # the submission's: its lines are sent with them
    status: str = "validating"
    cancelled: bool = False
    answers: list[tuple[str, int, dict[str, Any], str]] = field(default_factory=list)  # custom_id, status, body, req id
    ended_at: int | None = None


class BatchAPI:
    """One upstream's batch endpoints and what they hold."""

    def __init__(self, upstream: FakeUpstream) -> None:
        self.up = upstream
        self.files = FilesAPI(upstream)
        self.batches: dict[str, FakeBatch] = {}
        self.lock = threading.RLock()  # one batch request at a time (a batch line asks it again, for ft: models)

    def serves(self, req: RecordedRequest) -> bool:
        style = self.up.style
        if style == "openai":
            return bool(_OPENAI.match(req.path) or FILES_PATH.match(req.path))
        return style == "anthropic" and bool(_ANTHROPIC.match(req.path))

    # -- the HTTP side ---------------------------------------------------------------------
    def serve(self, handler: BaseHTTPRequestHandler, req: RecordedRequest, step: Step, salt: str) -> None:
        exchange = Exchange(handler, self.up, req, Route(kind="batch"), salt)
        if isinstance(step, SlowFirstByte):
            if not exchange._sleep(step.seconds):
                return None
            step = step.then
        if not isinstance(step, _FAULTS_PASS):
            return exchange.run(step)  # the scripted fault, as any endpoint sends it
        refused = self._refused(req)
        if refused is not None:
            return exchange._send_error(refused)
        try:
            with self.lock:
                if FILES_PATH.match(req.path) and self.up.style == "openai":
                    status, body = self.files.answer(req, salt)
                else:
                    status, body = (self._openai if self.up.style == "openai" else self._anthropic)(req, salt)
        except Refusal as r:
            return exchange._send_error(r.error)
        if isinstance(body, bytes):
            return exchange._send(status, "application/binary", body, {})
        return exchange._send(status, "application/json", json_bytes(body),
                              self.up._dialect.request_id_headers(salt))

    def _refused(self, req: RecordedRequest) -> Error | None:
        up = self.up
        if up._api_key is not None:
            refused = up._dialect.check_key(req, Route(kind="batch"), up._api_key)
            if refused is not None:
                return refused
        if up.style == "anthropic" and up.strict and "anthropic-version" not in req.headers:
            return Error(400, code="invalid_request_error", message="anthropic-version: header is required")
        return None

    def _openai(self, req: RecordedRequest, salt: str) -> tuple[int, Any]:
        m = _OPENAI.match(req.path)
        assert m is not None
        kind, ident, action = m.groups()
        if kind == "batches" and ident is None and req.method == "POST":
            return 200, self._openai_create(req, salt)
        batch = self.batches.get(ident or "")
        if kind != "batches" or batch is None:
            raise _Refusal(Error(404, code="", message=f"Invalid URL ({req.method} {req.path})"))
        if action == "cancel" and req.method == "POST":
            if batch.status in ("completed", "failed", "expired", "cancelled"):
                raise _Refusal(Error(400, code="", message=f"Cannot cancel a batch with status '{batch.status}'."))
            batch.cancelled, batch.status = True, "cancelling"
            return 200, self._openai_batch(batch)
        if action is None and req.method == "GET":
            self._poll(batch)
            return 200, self._openai_batch(batch)
        raise _Refusal(Error(404, code="", message=f"Invalid URL ({req.method} {req.path})"))

    def _openai_create(self, req: RecordedRequest, salt: str) -> dict[str, Any]:
        body = req.json if isinstance(req.json, dict) else {}
        file_id, endpoint = body.get("input_file_id"), body.get("endpoint")
        content = self.files.content_of(str(file_id))
        if content is None:
            raise _Refusal(Error(400, code="", message=f"Invalid 'input_file_id': '{file_id}'. File not found."))
        if endpoint not in _ENDPOINTS or body.get("completion_window") != "24h":
            raise _Refusal(Error(400, code="", message="endpoint must be /v1/chat/completions or /v1/embeddings "
                                                       "and completion_window 24h"))
        lines: list[tuple[str, str, dict[str, Any]]] = []
        for number, text in enumerate(content.splitlines(), 1):
            line = json.loads(text) if text.strip() else None
            if not isinstance(line, dict) or line.get("url") != endpoint or not isinstance(line.get("body"), dict):
                raise _Refusal(Error(400, code="", message=f"line {number}: each line needs custom_id, method, url "
                                                           f"{endpoint!r} and a body"))
            lines.append((str(line.get("custom_id")), endpoint, line["body"]))
        return self._openai_batch(self._new(f"batch_{digest(salt, 'batch')[:24]}", lines, req))

    def _openai_batch(self, b: FakeBatch) -> dict[str, Any]:
        ok = [a for a in b.answers if a[1] < 400]
        failed = [a for a in b.answers if a[1] >= 400]
        ended = b.status in ("completed", "cancelled")
        out_id, err_id = f"file-out-{b.id[6:]}", f"file-err-{b.id[6:]}"
        if ended:
            self.files.put(out_id, _jsonl(self._openai_line(b, a) for a in ok), "batch_output", "batch_output.jsonl")
            self.files.put(err_id, _jsonl(self._openai_line(b, a) for a in failed), "batch_output",
                           "batch_errors.jsonl")
        return {"id": b.id, "object": "batch", "endpoint": b.lines[0][1] if b.lines else None, "errors": None,
                "input_file_id": None, "completion_window": "24h", "status": b.status,
                "output_file_id": out_id if ended and ok else None, "error_file_id": err_id if ended and failed else None,
                "created_at": b.created_at, "in_progress_at": None, "expires_at": b.created_at + 86400,
                "finalizing_at": None, "completed_at": b.ended_at if b.status == "completed" else None,
                "failed_at": None, "expired_at": None, "cancelling_at": None,
                "cancelled_at": b.ended_at if b.status == "cancelled" else None,
                "request_counts": {"total": len(b.lines), "completed": len(ok), "failed": len(failed)},
                "metadata": None}

    @staticmethod
    def _openai_line(b: FakeBatch, answer: tuple[str, int, dict[str, Any], str]) -> dict[str, Any]:
        custom_id, status, body, request_id = answer
        return {"id": f"batch_req_{digest(b.id, custom_id)[:24]}", "custom_id": custom_id,
                "response": {"status_code": status, "request_id": request_id, "body": body}, "error": None}

    def _anthropic(self, req: RecordedRequest, salt: str) -> tuple[int, Any]:
        m = _ANTHROPIC.match(req.path)
        assert m is not None
        ident, action = m.groups()
        if ident is None and req.method == "POST":
            body = req.json if isinstance(req.json, dict) else {}
            requests = body.get("requests")
            if not isinstance(requests, list) or not requests:
                raise _Refusal(Error(400, code="invalid_request_error", message="requests: Field required"))
            lines = []
            for i, r in enumerate(requests):
                if not isinstance(r, dict) or not isinstance(r.get("params"), dict) \
                        or not re.match(r"^[a-zA-Z0-9_-]{1,64}$", str(r.get("custom_id"))):
                    raise _Refusal(Error(400, code="invalid_request_error",
                                         message=f"requests.{i}: needs a custom_id and params"))
                lines.append((str(r["custom_id"]), "/v1/messages", r["params"]))
            return 200, self._anthropic_batch(self._new(f"msgbatch_{digest(salt, 'batch')[:24]}", lines, req))
        batch = self.batches.get(ident or "")
        if batch is None:
            raise _Refusal(Error(404, code="not_found_error", message=f"No batch with id {ident}"))
        if action == "cancel" and req.method == "POST":
            if batch.status not in ("completed", "cancelled"):
                batch.cancelled, batch.status = True, "canceling"
            return 200, self._anthropic_batch(batch)
        if action == "results" and req.method == "GET":
            if batch.status not in ("completed", "cancelled"):
                raise _Refusal(Error(400, code="invalid_request_error", message="batch is still in progress"))
            return 200, self._anthropic_results(batch)
        if action is None and req.method == "GET":
            self._poll(batch)
            return 200, self._anthropic_batch(batch)
        raise _Refusal(Error(404, code="not_found_error", message=f"Invalid URL ({req.method} {req.path})"))

    def _anthropic_batch(self, b: FakeBatch) -> dict[str, Any]:
        status = {"validating": "in_progress", "in_progress": "in_progress", "canceling": "canceling",
                  "cancelling": "canceling"}.get(b.status, "ended")
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if status == "ended" and b.cancelled and not b.answers:
            counts["canceled"] = len(b.lines)
        elif status == "ended":
            counts["succeeded"] = sum(a[1] < 400 for a in b.answers)
            counts["errored"] = len(b.answers) - counts["succeeded"]
        else:
            counts["processing"] = len(b.lines)
        return {"id": b.id, "type": "message_batch", "processing_status": status, "request_counts": counts,
                "ended_at": _iso(b.ended_at), "created_at": _iso(b.created_at), "expires_at": _iso(b.created_at + 86400),
                "archived_at": None, "cancel_initiated_at": _iso(b.created_at) if b.cancelled else None,
                "results_url": f"{self.up.url}/messages/batches/{b.id}/results" if status == "ended" else None}

    @staticmethod
    def _anthropic_results(b: FakeBatch) -> bytes:
        if b.cancelled and not b.answers:
            return _jsonl({"custom_id": c, "result": {"type": "canceled"}} for c, _, _ in b.lines)
        out = []
        for custom_id, status, body, _ in b.answers:
            result = {"type": "succeeded", "message": body} if status < 400 else {"type": "errored", "error": body}
            out.append({"custom_id": custom_id, "result": result})
        return _jsonl(out)

    # -- processing --------------------------------------------------------------------------
    def _new(self, batch_id: str, lines: list[tuple[str, str, dict[str, Any]]], req: RecordedRequest) -> FakeBatch:
        headers = Headers({k: v for k, v in req.headers.items() if k not in ("content-type", "content-length")})
        batch = FakeBatch(id=batch_id, lines=lines, created_at=self._now(), polls_left=self.up.batch_polls,
                          headers=headers)
        self.batches[batch_id] = batch
        if batch.polls_left <= 0:
            self._process(batch)
        return batch

    def _poll(self, batch: FakeBatch) -> None:
        if batch.status in ("cancelling", "canceling"):
            batch.status, batch.ended_at = "cancelled", self._now()
            return
        if batch.status not in ("validating", "in_progress"):
            return
        batch.polls_left -= 1
        batch.status = "in_progress"
        if batch.polls_left <= 0:
            self._process(batch)

    def _process(self, batch: FakeBatch) -> None:
        """Answer every line as the single request would be answered."""
        up = self.up
        for custom_id, path, body in batch.lines:
            headers = Headers({**batch.headers, "content-type": "application/json"})
            req = RecordedRequest(method="POST", path=path, query={}, headers=headers, json=body, body=json_bytes(body))
            with up._cond:
                up._seq += 1
                salt = digest(up.name, up.port, up._seq)
                chosen = up._take_step()
            step = Reply() if chosen is None else resolve_step(chosen, req)
            status, answer = self._answer(req, step, salt)
            request_id = next(iter(up._dialect.request_id_headers(salt).values()), salt[:24])
            batch.answers.append((custom_id, status, answer, request_id))
        batch.status, batch.ended_at = "completed", self._now()

    def _answer(self, req: RecordedRequest, step: Step, salt: str) -> tuple[int, dict[str, Any]]:
        dialect = self.up._dialect
        route = dialect.route(req)
        ex = Exchange(None, self.up, req, route, salt)  # type: ignore[arg-type]  # nothing is sent through it
        if isinstance(step, SlowFirstByte):
            step = step.then
        if isinstance(step, StreamErrorEvent):
            step = ex._as_error(step)
        if isinstance(step, Error):
            return step.status, dialect.error_body(step, ex.model, salt)
        if not isinstance(step, _FAULTS_PASS):  # a broken answer: the vendor's batch records a server error
            return 500, dialect.error_body(Error(500), ex.model, salt)
        problem = ex._problem() if route.kind != "unknown" else None
        if problem is not None:
            return problem.status, dialect.error_body(problem, ex.model, salt)
        if route.kind == "chat":
            return 200, dialect.completion_body(ex._completion(step))
        return 200, dialect.embeddings_body(req, route)

    def _now(self) -> int:
        return int(self.up._clock())


_Refusal = Refusal


def _jsonl(lines: Any) -> bytes:
    return b"".join(json_bytes(line) + b"\n" for line in lines)


def _iso(t: int | None) -> str | None:
    if t is None:
        return None
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
