"""Batches: many requests as one job, run by the mesh or handed to a provider's batch API.

    job = client.batches.create(input=[{"custom_id": "a", "method": "POST",
                                        "url": "/v1/chat/completions", "body": {...}}, ...])
    job.wait()
    job.output_lines()        # OpenAI's batch output format, in input order

Theory of operation. A *local* batch (the default) runs its items on a bounded pool of
worker threads (`max_concurrency`, default 8), each item through the client's ordinary
request path: routing, failover across the pool, health, budgets and events are the
client's, item by item. Workers take the next item under the job's lock; `cancel()` stops
them taking more (items already sent finish), and those never sent end as cancelled. An
item that fails ends with its reason (error class, status, code, message); the job goes
on. Progress is reported after each item, under the lock, so `on_progress` sees counts
that only grow and end at the total.

A *provider* batch (`delivery_mode="batch"`) is sent whole to one provider whose
configuration says `infrastructure.batch: true` and whose wire format has a batch API
(OpenAI's, Anthropic's). What each request of that conversation is, and what each answer
means, is `_core/codecs/batches.py` (pure); this module only sends them, with the client's
HTTP session. It submits on `create` (the next such provider is tried when one refuses),
and polls when asked: `refresh()` once, `wait()` until the batch ends, sleeping with the
client's `sleep` (a FakeClock's in tests, so no test waits). A provider batch's lines all
name one pool, since the whole batch goes to one provider.

Jobs live in this process, in the client that made them (there is no store of batches):
`client.batches.retrieve(id)` finds a job this client created.

What AsyncMeshClient shares (`_abatch.py` is its runner): the job and result model
(`_JobView`), the checking of `create`'s arguments (`_BatchesBase._plan`), a local batch's
bookkeeping (`_LocalBook`: the next item, each outcome, the items never sent) and a
provider batch's conversation (`_Conversation`: generators that yield each request to send
and take its answer, as `_serving` does for the front doors). Each runner only performs
them its own way: worker threads and blocking HTTP here, tasks and awaited HTTP there.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._core import _errors as E
from ._core._batch import (
    TERMINAL,
    BatchItem,
    Counts,
    ItemError,
    ItemOutcome,
    Status,
    next_status,
    output_line,
    parse_input,
)

__all__ = ["BatchJob", "BatchResult", "BatchProgress", "Batches", "BatchList", "DEFAULT_CONCURRENCY"]

DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 256
DEFAULT_POLL_INTERVAL = 30.0
_log = logging.getLogger("modelmesh")
_HINTS = ("session_id", "preferred_provider", "routing_metadata")
_Outputs = list[dict[str, Any]]
_Lines = list[Any]  # `Batches.list` would shadow the builtin in its class's annotations


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """How far a batch has got: `completed` (answered) + `failed` = `done`, out of `total`."""

    completed: int
    failed: int
    total: int

    @property
    def done(self) -> int:
        return self.completed + self.failed


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One item's end: `response` is the OpenAI-shaped answer (a `chat.completion`, an
    embeddings list), or None with `error` saying why it failed."""

    index: int
    custom_id: str
    response: Mapping[str, Any] | None
    error: ItemError | None
    provider: str | None = None
    model: str | None = None
    request_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def content(self) -> str | None:
        """A chat answer's text (its first choice's), else None."""
        choices = (self.response or {}).get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
            message = choices[0].get("message")
            text = message.get("content") if isinstance(message, Mapping) else None
            return text if isinstance(text, str) else None
        return None


class _JobView:
    """What a batch job holds and tells, whoever runs it (BatchJob, AsyncBatchJob)."""

    def __init__(self, *, items: Sequence[BatchItem], endpoint: str, model: str, delivery_mode: str,
                 created_at: float, metadata: Mapping[str, str] | None, clock: Callable[[], float]) -> None:
        self.id = f"batch_mm{uuid.uuid4().hex[:24]}"
        self.endpoint = endpoint
        self.model = model
        self.delivery_mode = delivery_mode
        self.provider: str | None = None
        self.remote_id: str | None = None  # the provider's id of a provider batch
        self.metadata = dict(metadata or {})
        self.created_at = int(created_at)
        self.in_progress_at: int | None = None
        self.cancelling_at: int | None = None
        self.completed_at: int | None = None  # when it ended, whichever way
        self._items = tuple(items)
        self._outcomes: list[ItemOutcome | None] = [None] * len(self._items)
        self._status = Status.VALIDATING
        self._counts = Counts(total=len(self._items))
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._clock = clock
        self._runner: Any = None

    # -- reading ------------------------------------------------------------------------
    @property
    def job_id(self) -> str:
        """Seed 004's name for `id`."""
        return self.id

    @property
    def status(self) -> str:
        return self._status.value

    @property
    def request_count(self) -> int:
        return len(self._items)

    @property
    def request_counts(self) -> dict[str, int]:
        return self._counts.to_dict()

    @property
    def progress(self) -> BatchProgress:
        c = self._counts
        return BatchProgress(c.completed, c.failed, c.total)

    @property
    def ended(self) -> bool:
        return self._status in TERMINAL

    @property
    def results(self) -> list[BatchResult]:
        """The items that have ended, in input order (all of them once the batch has ended)."""
        with self._lock:
            outcomes = list(self._outcomes)
        return [BatchResult(index=it.index, custom_id=it.custom_id, response=o.body, error=o.error,
                            provider=o.provider, model=o.model, request_id=o.request_id)
                for it, o in zip(self._items, outcomes, strict=True) if o is not None]

    def output_lines(self) -> list[dict[str, Any]]:
        """The results as lines of OpenAI's batch output file (answers and errors together,
        in input order); only once the batch has ended."""
        if not self.ended:
            raise E.ConflictError(f"batch {self.id} is {self.status}: its results are read once it has ended "
                                  "(wait() for it)")
        with self._lock:
            outcomes = list(self._outcomes)
        return [output_line(o, f"batch_req_{self.id[8:]}_{it.index}")
                for it, o in zip(self._items, outcomes, strict=True) if o is not None]

    def output_jsonl(self) -> str:
        """`output_lines()` as the text of a JSONL file."""
        return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in self.output_lines())

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's Batch object, with the mesh's `model`, `provider` and `delivery_mode`."""
        ended = self.completed_at
        status = self._status
        return {"id": self.id, "object": "batch", "endpoint": self.endpoint, "errors": None, "input_file_id": None,
                "completion_window": "24h", "status": status.value, "output_file_id": None, "error_file_id": None,
                "created_at": self.created_at, "in_progress_at": self.in_progress_at, "expires_at": None,
                "finalizing_at": None, "completed_at": ended if status is Status.COMPLETED else None,
                "failed_at": ended if status is Status.FAILED else None,
                "expired_at": ended if status is Status.EXPIRED else None, "cancelling_at": self.cancelling_at,
                "cancelled_at": ended if status is Status.CANCELLED else None,
                "request_counts": self.request_counts, "metadata": dict(self.metadata), "model": self.model,
                "provider": self.provider, "delivery_mode": self.delivery_mode}

    def model_dump(self) -> dict[str, Any]:
        return self.to_dict()

    def __repr__(self) -> str:
        c = self._counts
        return (f"{type(self).__name__}(id={self.id!r}, status={self.status!r}, delivery_mode={self.delivery_mode!r}, "
                f"completed={c.completed}, failed={c.failed}, total={c.total})")

    # -- the runners' side ---------------------------------------------------------------------
    def _move(self, event: str) -> None:
        """Under the lock: the status `event` leads to, and its time."""
        now = int(self._clock())
        status = next_status(self._status, event)
        if status is Status.IN_PROGRESS and self.in_progress_at is None:
            self.in_progress_at = now
        if status is Status.CANCELLING and self.cancelling_at is None:
            self.cancelling_at = now
        if status in TERMINAL and self.completed_at is None:
            self.completed_at = now
        self._status = status
        if status in TERMINAL:
            self._ended.set()


class BatchJob(_JobView):
    """A batch and how it stands (seed 004's BatchJob, in OpenAI's batch vocabulary).

    `id`, `status` (validating, in_progress, finalizing, completed, cancelling, cancelled,
    failed, expired), `request_counts` (total, completed, failed), `created_at`,
    `completed_at`, `endpoint`, `model` (what the lines name), `provider` (the provider a
    provider batch went to; None for a local one), `delivery_mode` ("local" or "batch").
    `results` are the ended items in input order; `wait()`, `cancel()`, `refresh()`."""

    def wait(self, timeout: float | None = None, *, poll_interval: float = DEFAULT_POLL_INTERVAL) -> BatchJob:
        """Block until the batch has ended (or `timeout` seconds have passed; then it is
        returned as it stands). A provider batch is polled every `poll_interval` seconds."""
        self._runner.wait(timeout, poll_interval)
        return self

    def refresh(self) -> BatchJob:
        """Ask the provider how its batch stands (a provider batch); a local one is always current."""
        self._runner.refresh()
        return self

    def cancel(self) -> BatchJob:
        """Stop the batch: a local one sends no further item (those in flight finish); a
        provider's is asked to cancel. Cancelling an ended batch changes nothing."""
        self._runner.cancel()
        return self


class _LocalBook:
    """A local batch's bookkeeping, the same for worker threads and asyncio tasks; each
    method that reads or moves the job is called under the job's lock. Items are taken in
    input order; an outcome is recorded as its item ends; when the batch stops, the items
    never sent (it was cancelled) end as cancelled."""

    def __init__(self, job: _JobView, client: Any, hints: Mapping[str, Any]) -> None:
        self.job, self.client, self.hints = job, client, dict(hints)
        self.next = 0
        self.cancelled = False

    def take(self) -> BatchItem | None:
        """The next item to send, or None when there is none (all taken, or cancelled)."""
        if self.cancelled or self.next >= len(self.job._items):
            return None
        item = self.job._items[self.next]
        self.next += 1
        return item

    def request(self, item: BatchItem) -> dict[str, Any]:
        """The item's arguments for the client's `_request`."""
        return {**item.body, **self.hints}

    def answered(self, item: BatchItem, result: Any) -> ItemOutcome:
        return ItemOutcome(custom_id=item.custom_id, body=result.response, provider=result.provider,
                           model=result.model, request_id=result.request_id)

    def failed(self, item: BatchItem, exc: Exception) -> ItemOutcome:
        """How an item that raised ends: a mesh error with its reason; anything else (a bug)
        fails its item, not the batch, said as the boundary says it."""
        if isinstance(exc, E.ModelMeshError):
            return ItemOutcome(custom_id=item.custom_id, error=_item_error(exc), provider=exc.provider,
                               model=exc.model, request_id=exc.request_id)
        internal = self.client.transport.internal(exc)
        _log.error("modelmesh: batch item %s failed unexpectedly: %s", item.custom_id, internal)
        return ItemOutcome(custom_id=item.custom_id, error=_item_error(internal))

    def record(self, item: BatchItem, outcome: ItemOutcome) -> BatchProgress:
        job = self.job
        job._outcomes[item.index] = outcome
        c = job._counts
        job._counts = Counts(total=c.total, completed=c.completed + outcome.ok, failed=c.failed + (not outcome.ok))
        return job.progress

    def skip_rest(self) -> BatchProgress | None:
        """Every item without an outcome (never sent: the batch was cancelled) ends as cancelled;
        the progress that makes, or None when there were none."""
        job = self.job
        skipped = 0
        for item in job._items:
            if job._outcomes[item.index] is None:
                job._outcomes[item.index] = ItemOutcome(custom_id=item.custom_id, error=ItemError(
                    error_class="APIError", code="batch_cancelled",
                    message="the batch was cancelled before this request ran"))
                skipped += 1
        if not skipped:
            return None
        c = job._counts
        job._counts = Counts(total=c.total, completed=c.completed, failed=c.failed + skipped)
        return job.progress

    def cancel(self) -> None:
        if self.job.ended:
            return
        self.cancelled = True
        if self.job._status is not Status.CANCELLING:
            self.job._move("cancel")


def _told(on_progress: Callable[[BatchProgress], Any], progress: BatchProgress) -> Any:
    """`on_progress(progress)`; an observer's bug must not stop the batch it observes.
    Returns what it returned (an awaitable, for an async callback)."""
    try:
        return on_progress(progress)
    except Exception:  # noqa: BLE001
        _log.exception("modelmesh: batch progress callback %r failed", on_progress)
        return None


class _Local:
    """Runs a job's items on `max_concurrency` worker threads through `client`."""

    def __init__(self, job: BatchJob, client: Any, hints: Mapping[str, Any], max_concurrency: int,
                 on_progress: Callable[[BatchProgress], Any] | None) -> None:
        self.job = job
        self.book = _LocalBook(job, client, hints)
        self.on_progress = on_progress
        self.workers = min(max_concurrency, len(job._items))
        self._running = self.workers
        # each count the job passes through, queued under the job's lock as it is reached and
        # reported in that order under a lock of its own (a callback may cancel the job)
        self._pending: collections.deque[BatchProgress] = collections.deque()
        self._progress_lock = threading.Lock()

    def start(self) -> None:
        with self.job._lock:
            self.job._move("validated")
        for i in range(self.workers):
            threading.Thread(target=self._work, name=f"modelmesh-batch-{i}", daemon=True).start()

    def _work(self) -> None:
        job, book = self.job, self.book
        while True:
            with job._lock:
                item = book.take()
                if item is None:
                    self._running -= 1
                    last = self._running == 0
                    if last:
                        self._queue(book.skip_rest())
            if item is None:
                if last:  # the last worker out reports the end, then ends the job
                    self._report()
                    with job._lock:
                        job._move("finished")
                return
            try:
                outcome = book.answered(item, book.client._request(item.op, book.request(item), False))
            except Exception as exc:  # noqa: BLE001 - each item ends with its reason (see _LocalBook.failed)
                outcome = book.failed(item, exc)
            with job._lock:
                self._queue(book.record(item, outcome))
            self._report()

    def _queue(self, progress: BatchProgress | None) -> None:
        if progress is not None and self.on_progress is not None:
            self._pending.append(progress)

    def _report(self) -> None:
        """Tell `on_progress` every count reached so far and not yet told, in order, one
        report at a time: it sees `done` go up one item at a time."""
        if self.on_progress is None:
            return
        with self._progress_lock:
            while self._pending:
                _told(self.on_progress, self._pending.popleft())

    def wait(self, timeout: float | None, poll_interval: float) -> None:
        self.job._ended.wait(timeout)

    def refresh(self) -> None:
        return None

    def cancel(self) -> None:
        with self.job._lock:
            self.book.cancel()


# a request of a provider batch's conversation: (the provider's runtime, the BatchWire to send)
_Ask = tuple[Any, Any]
_Talk = Generator[_Ask, bytes, Any]


class _Conversation:
    """A provider batch's conversation with its provider, written once for both runners as
    generators: each yields the requests to send, `(runtime, wire)`, and is sent back the
    answer's body (a ModelMeshError is thrown into it instead). What each request is and what
    each answer means is the pure codec's (`_core/codecs/batches.py`); the job's state is
    moved here, under its lock. `submit` returns nothing; `refresh` and `cancel` return the
    progress to report (or None)."""

    def __init__(self, job: _JobView, op: str, candidates: Sequence[tuple[Any, Any]]) -> None:
        self.job, self.op = job, op
        self.candidates = candidates  # (ProviderRuntime, Target), in routing order
        self.runtime: Any = None
        self.target: Any = None
        self.codec: Any = None

    def submit(self) -> _Talk:
        """Hand the batch to the first candidate that takes it."""
        from ._core.codecs.batches import RemoteBatch, batch_codec

        failures: list[str] = []
        last: E.ModelMeshError | None = None
        for runtime, target in self.candidates:
            codec = batch_codec(runtime.codec)
            assert codec is not None  # the candidates were chosen for it
            try:
                step = codec.submit(target, self.op, self.job._items)
                answer = codec.after_submit(target, self.op, (yield runtime, step))
                while not isinstance(answer, RemoteBatch):  # OpenAI: the file first, then the batch
                    answer = codec.after_submit(target, self.op, (yield runtime, answer))
            except E.InvalidArgumentError:
                raise  # the input's fault: no other provider would take it either
            except E.ModelMeshError as exc:
                failures.append(f"{runtime.id}: {exc.message}")
                last = exc
                continue
            self.runtime, self.target, self.codec = runtime, target, codec
            with self.job._lock:
                self.job.provider, self.job.remote_id = runtime.id, answer.id
                self.job._move("validated")
            return (yield from self._absorb(answer))
        assert last is not None
        raise type(last)(f"no provider took the batch: {'; '.join(failures)}", status=last.status,
                         provider=last.provider, code=last.code)

    def refresh(self) -> _Talk:
        if self.job.ended:
            return None
        wire = self.codec.retrieve(self.target, self.job.remote_id)
        return (yield from self._absorb(self.codec.parse_batch(self.target, (yield self.runtime, wire))))

    def cancel(self) -> _Talk:
        if self.job.ended:
            return None
        wire = self.codec.cancel(self.target, self.job.remote_id)
        remote = self.codec.parse_batch(self.target, (yield self.runtime, wire))
        with self.job._lock:
            if not self.job.ended and self.job._status is not Status.CANCELLING:
                self.job._move("cancel")
        return (yield from self._absorb(remote))

    def _absorb(self, remote: Any) -> _Talk:
        """Take in the provider's view of the batch; once it has ended, fetch its results."""
        outcomes: dict[str, ItemOutcome] | None = None
        if remote.status in TERMINAL:
            bodies = []
            for wire in self.codec.results(self.target, remote):
                bodies.append((yield self.runtime, wire))
            outcomes = self.codec.parse_results(self.target, self.op, bodies)
        job = self.job
        with job._lock:
            if outcomes is not None:
                why = "cancelled" if remote.status is Status.CANCELLED else "expired" \
                    if remote.status is Status.EXPIRED else "ended"
                for item in job._items:
                    job._outcomes[item.index] = outcomes.get(item.custom_id) or _missing(item, why, self.runtime.id)
                done = [o for o in job._outcomes if o is not None]
                ok = sum(o.ok for o in done)
                job._counts = Counts(total=len(job._items), completed=ok, failed=len(done) - ok)
            else:
                job._counts = Counts(total=remote.counts.total or len(job._items), completed=remote.counts.completed,
                                     failed=remote.counts.failed)
            self._follow(remote.status)
            return job.progress

    def _follow(self, status: Status) -> None:
        """Under the job's lock: move the job to the provider's status."""
        job = self.job
        if job._status is status:
            return
        event = {Status.FINALIZING: "finalizing", Status.COMPLETED: "finished", Status.FAILED: "failed",
                 Status.EXPIRED: "expired", Status.CANCELLING: "cancel", Status.CANCELLED: "finished"}.get(status)
        if status is Status.CANCELLED and job._status is not Status.CANCELLING:
            job._move("cancel")
        if event is not None:
            job._move(event)


def _batch_answer(client: Any, runtime: Any, wire: Any, status: int, headers: Any, body: bytes,
                  api: str = "batch API") -> bytes:
    """The body of a provider API's answer, or the mesh error its status says (the vendor's
    words, classified by the provider's codec, raised as the OpenAI SDK's class for it)."""
    if status < 400:
        return body
    info = runtime.codec.classify_error(status, headers, body, now=client._clock(), secrets=client.core.secret_values)
    raise E.status_class(status)(f"provider {runtime.id!r} {api} ({wire.method} {_path(wire.url)}): "
                                 f"{info.message}", status=status, provider=runtime.id, code=info.code, type=info.type)


def _unreachable(runtime: Any, wire: Any, failed: Any, api: str = "batch API") -> E.ModelMeshError:
    """The mesh error for a provider API request that got no answer (`failed`: the shell's TransportFailed)."""
    cls = E.APITimeoutError if failed.kind.value == "timeout" else E.APIConnectionError
    return cls(f"provider {runtime.id!r} {api} ({wire.method} {_path(wire.url)}): {failed.message}",
               provider=runtime.id)


def send_wire(client: Any, runtime: Any, wire: Any, api: str = "batch API") -> bytes:
    """Send one provider API request (an ApiWire: batches, files, fine-tuning) with MeshClient's
    blocking HTTP; its answer's body, or the mesh error for its status or its failure."""
    from .transports.sync import _translate

    cfg = runtime.config
    payload = wire.content if wire.content is not None else wire.json
    try:
        r = client.transport.http.send(wire.method, wire.url, wire.headers, payload,
                                       connect_timeout=cfg.connect_timeout, read_timeout=cfg.timeout)
        try:
            body = _read_all(r)
        finally:
            r.release_conn()
    except Exception as exc:  # noqa: BLE001 - urllib3's and requests' errors, translated at the boundary
        raise _unreachable(runtime, wire, _translate(exc), api) from None
    return _batch_answer(client, runtime, wire, r.status, r.headers, body, api)


def poll_interval(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise E.InvalidArgumentError(f"wait: 'poll_interval' must be a positive number of seconds, got {value!r}")
    return float(value)


class _Remote:
    """A provider batch, over the client's blocking HTTP: submitted on creation, polled when asked."""

    def __init__(self, job: BatchJob, client: Any, op: str, candidates: Sequence[tuple[Any, Any]],
                 on_progress: Callable[[BatchProgress], Any] | None) -> None:
        self.job, self.client = job, client
        self.talk = _Conversation(job, op, candidates)
        self.on_progress = on_progress
        self._poll = threading.Lock()  # one conversation with the provider at a time

    def _run(self, talk: _Talk) -> None:
        result: Any = None  # a generator is started with None
        error: E.ModelMeshError | None = None
        while True:
            try:
                runtime, wire = talk.send(result) if error is None else talk.throw(error)
            except StopIteration as end:
                if end.value is not None and self.on_progress is not None:
                    _told(self.on_progress, end.value)
                return
            result, error = None, None
            try:
                result = self._send(runtime, wire)
            except E.ModelMeshError as exc:
                error = exc

    def _send(self, runtime: Any, wire: Any) -> bytes:
        return send_wire(self.client, runtime, wire)

    def start(self) -> None:
        with self._poll:
            self._run(self.talk.submit())

    def refresh(self) -> None:
        with self._poll:
            self._run(self.talk.refresh())

    def wait(self, timeout: float | None, poll_interval_: float) -> None:
        every = poll_interval(poll_interval_)
        clock, sleep = self.client._clock, self.client.transport.sleep
        deadline = None if timeout is None else clock() + timeout
        while True:
            self.refresh()
            if self.job.ended:
                return
            if deadline is not None and clock() + every > deadline:
                return
            sleep(every)

    def cancel(self) -> None:
        with self._poll:
            self._run(self.talk.cancel())


def _read_all(r: Any) -> bytes:
    parts: list[bytes] = []
    while True:
        piece = r.read1(1 << 20, decode_content=True)
        if not piece:
            return b"".join(parts)
        parts.append(piece)


def _path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path


def _missing(item: BatchItem, why: str, provider: str) -> ItemOutcome:
    from ._core.codecs.batches import not_run

    if why in ("cancelled", "expired"):
        return not_run(item.custom_id, why, provider)
    return ItemOutcome(custom_id=item.custom_id, provider=provider, error=ItemError(
        error_class="APIError", code="batch_no_result", message="the provider's batch results have no line for this request"))


def _item_error(exc: E.ModelMeshError) -> ItemError:
    status = getattr(exc, "status_code", None)
    return ItemError(error_class=type(exc).__name__, message=exc.message,
                     status=status if isinstance(status, int) else exc.status, code=exc.code, type=exc.type)


# -- the client's door ----------------------------------------------------------------------------

class BatchList(list[Any]):
    """The page `batches.list()` gives: a list of jobs (BatchJob, or AsyncBatchJob), read like
    the SDK's page too."""

    @property
    def data(self) -> list[Any]:
        return list(self)

    def has_next_page(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class _Plan:
    """A batch `create` was asked for, checked: what its runner needs."""

    items: Sequence[BatchItem]
    endpoint: str
    metadata: Mapping[str, str] | None
    mode: str  # "local" or "batch"
    model: str
    concurrency: int
    hints: Mapping[str, Any]
    on_progress: Callable[[BatchProgress], Any] | None
    op: str
    candidates: Sequence[tuple[Any, Any]]


class _BatchesBase:
    """What `client.batches` is on either client: the arguments checked, the client's jobs."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._jobs: dict[str, Any] = getattr(client, "_batch_jobs", None) or {}
        client._batch_jobs = self._jobs  # shared by the client's copies (with_options)
        self._lock = threading.Lock()

    @staticmethod
    def _arguments(where: str, input_file_id: str | None, completion_window: str, hints: Mapping[str, Any]) -> None:
        if input_file_id is not None:
            raise E.InvalidArgumentError(f"{where}: 'input_file_id' names a file uploaded to one provider, and a "
                                         "batch's lines are routed by the mesh; pass the request lines themselves "
                                         "as input=[...] or a JSONL file's path as input='requests.jsonl'",
                                         param="input_file_id")
        if completion_window != "24h":
            raise E.InvalidArgumentError(f"{where}: 'completion_window' must be \"24h\", got {completion_window!r}",
                                         param="completion_window")
        unknown = sorted(set(hints) - set(_HINTS))
        if unknown:
            raise E.InvalidArgumentError(f"{where}: unexpected argument(s) {', '.join(unknown)}")

    def _plan(self, where: str, lines: _Lines, endpoint: str, metadata: Mapping[str, str] | None,
              delivery_mode: str | None, max_concurrency: int | None,
              on_progress: Callable[[BatchProgress], Any] | None, hints: Mapping[str, Any]) -> _Plan:
        items = parse_input(lines, endpoint=endpoint, where=where)
        hints = {k: v for k, v in hints.items() if v is not None}
        if delivery_mode not in (None, "local", "batch"):
            raise E.InvalidArgumentError(f"{where}: delivery_mode must be 'local' (the mesh runs the lines) or "
                                         f"'batch' (a provider's batch API), got {delivery_mode!r}", param="delivery_mode")
        if on_progress is not None and not callable(on_progress):
            raise E.InvalidArgumentError(f"{where}: 'on_progress' must be callable, got {on_progress!r}")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise E.InvalidArgumentError(f"{where}: 'metadata' must be a mapping of strings")
        models = sorted({str(it.body["model"]) for it in items})
        model = models[0] if len(models) == 1 else "mixed"
        if delivery_mode != "batch":
            return _Plan(items, endpoint, metadata, "local", model, _concurrency(where, max_concurrency), hints,
                         on_progress, items[0].op, ())
        if max_concurrency is not None:
            raise E.InvalidArgumentError(f"{where}: 'max_concurrency' applies to local batches; a provider runs "
                                         "its batch at its own pace")
        if len(models) != 1:
            raise E.InvalidArgumentError(f"{where}: a provider batch goes to one provider, so every line's "
                                         f"body.model must name the same pool; the lines name {', '.join(models)}",
                                         param="input")
        if hints:
            raise E.InvalidArgumentError(f"{where}: {', '.join(sorted(hints))} route single requests; a provider "
                                         "batch goes where infrastructure.batch says")
        op = items[0].op
        return _Plan(items, endpoint, metadata, "batch", model, 0, hints, on_progress, op,
                     _batch_candidates(self._client, model, op, where))

    def _new(self, cls: type[Any], plan: _Plan) -> Any:
        client = self._client
        return cls(items=plan.items, endpoint=plan.endpoint, model=plan.model, delivery_mode=plan.mode,
                   created_at=client._clock(), metadata=plan.metadata, clock=client._clock)

    def _keep(self, job: Any) -> None:
        with self._lock:
            self._jobs[job.id] = job

    def _listing(self, limit: Any, after: str | None) -> BatchList:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise E.InvalidArgumentError(f"batches.list: 'limit' must be 1..100, got {limit!r}", param="limit")
        with self._lock:
            jobs = list(reversed(self._jobs.values()))
        if after is not None:
            ids = [j.id for j in jobs]
            if after not in ids:
                raise E.NotFoundError(f"batches.list: no batch {after!r} in this client", param="after")
            jobs = jobs[ids.index(after) + 1:]
        return BatchList(jobs[:limit])

    def _job(self, where: str, batch_id: Any) -> Any:
        with self._lock:
            job = self._jobs.get(batch_id) if isinstance(batch_id, str) else None
        if job is None:
            raise E.NotFoundError(f"{where}: no batch {batch_id!r} was created by this client (batches live in the "
                                  "client that made them)", param="batch_id")
        return job


class Batches(_BatchesBase):
    """`client.batches`: OpenAI's batches resource over the mesh.

    Unlike OpenAI's, `create` takes the request lines themselves (`input=`: a list of
    `{"custom_id", "method", "url", "body"}` dicts, or the path of a JSONL file of them), not
    an `input_file_id`: a file lives at one provider, a batch's lines are routed. Results are read from the job
    (`results(batch_id)` gives OpenAI's output lines) rather than from an output file."""

    def create(self, *, input: Any = None, endpoint: str = "/v1/chat/completions", completion_window: str = "24h",
               metadata: Mapping[str, str] | None = None, input_file_id: str | None = None,
               delivery_mode: str | None = None, max_concurrency: int | None = None,
               on_progress: Callable[[BatchProgress], Any] | None = None, **hints: Any) -> BatchJob:
        """Start a batch of `input` lines and return its job at once. `delivery_mode` None
        (or "local") runs the lines through the mesh, `max_concurrency` at a time, each with
        failover; "batch" hands them to a provider's batch API (every line naming one pool).
        `on_progress(BatchProgress)` is called as items end. `session_id`,
        `preferred_provider` and `routing_metadata` apply to every line."""
        where = "batches.create"
        self._arguments(where, input_file_id, completion_window, hints)
        plan = self._plan(where, _read_lines(where, input), endpoint, metadata, delivery_mode, max_concurrency,
                          on_progress, hints)
        return self._start(plan)

    def _start(self, plan: _Plan) -> BatchJob:
        job: BatchJob = self._new(BatchJob, plan)
        runner: _Local | _Remote
        if plan.mode == "local":
            runner = _Local(job, self._client, plan.hints, plan.concurrency, plan.on_progress)
        else:
            runner = _Remote(job, self._client, plan.op, plan.candidates, plan.on_progress)
        job._runner = runner
        runner.start()
        self._keep(job)
        return job

    def retrieve(self, batch_id: str) -> BatchJob:
        """The job `batch_id`; a provider batch is asked how it stands first."""
        job: BatchJob = self._job("batches.retrieve", batch_id)
        return job.refresh()

    def cancel(self, batch_id: str) -> BatchJob:
        job: BatchJob = self._job("batches.cancel", batch_id)
        return job.cancel()

    def list(self, *, limit: int = 20, after: str | None = None) -> BatchList:
        """This client's batches, newest first, `limit` of them after the one named `after`."""
        return self._listing(limit, after)

    def results(self, batch_id: str) -> _Outputs:
        """The ended batch's results as OpenAI's batch output lines, in input order."""
        return list(self._job("batches.results", batch_id).output_lines())


def _concurrency(where: str, value: Any) -> int:
    if value is None:
        return DEFAULT_CONCURRENCY
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise E.InvalidArgumentError(f"{where}: 'max_concurrency' must be a whole number 1..{MAX_CONCURRENCY}, "
                                     f"got {value!r}", param="max_concurrency")
    return value


def _read_lines(where: str, source: Any) -> _Lines:
    """The input lines: given as a list, or read from a JSONL file (each bad line named)."""
    if source is None:
        raise E.InvalidArgumentError(f"{where}: 'input' is required: a list of request lines or a JSONL file's path",
                                     param="input")
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise E.InvalidArgumentError(f"{where}: cannot read {path!r}: {exc.strerror or exc}", param="input") from None
        except UnicodeDecodeError:
            raise E.InvalidArgumentError(f"{where}: {path!r} is not UTF-8 text", param="input") from None
        lines: _Lines = []
        for number, raw in enumerate(text.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError as exc:
                raise E.InvalidArgumentError(f"{where}: {path}, line {number} is not JSON ({exc.msg})",
                                             param="input") from None
        return lines
    if isinstance(source, (list, tuple)):
        return list(source)
    raise E.InvalidArgumentError(f"{where}: 'input' must be a list of request lines or a JSONL file's path, got "
                                 f"{type(source).__name__}", param="input")


def _batch_candidates(client: Any, model: str, op: str, where: str) -> list[tuple[Any, Any]]:
    """The pool's members whose provider takes batches, in the order routing ranks them;
    a clear error naming the pool and each provider's reason when there is none."""
    from ._core._batch import BATCH_CODECS
    from ._core.codecs.batches import batch_codec

    core = client.core
    now = client._clock()
    with core.lock:
        pool = core.resolve(model, op, now=now)
    order: list[str] = []
    try:
        decision = core.route(model, now=now)
        order = [f"{decision.provider_id}/{decision.model_id}", *decision.fallback_chain]
    except E.ModelMeshError:  # nothing available now: the configured order, so the batch still goes somewhere
        pass
    members = sorted(pool.members, key=lambda m: order.index(m.ref) if m.ref in order else len(order))
    found: list[tuple[Any, Any]] = []
    reasons: dict[str, str] = {}
    for m in members:
        runtime = core.providers[m.provider]
        if not runtime.config.infrastructure.get("batch"):
            reasons[m.provider] = "infrastructure.batch is not true in its configuration"
        elif batch_codec(runtime.codec) is None:
            reasons[m.provider] = (f"its wire format ({runtime.codec.name}) has no batch API the mesh drives "
                                   f"({', '.join(sorted(BATCH_CODECS))} have)")
        elif op == "embeddings" and runtime.codec.name == "anthropic":
            reasons[m.provider] = "Anthropic batches take chat completions only"
        else:
            found.append((runtime, runtime.target(m)))
    if not found:
        why = "; ".join(f"{p}: {r}" for p, r in reasons.items()) or "it has no members"
        raise E.BadRequestError(f"{where}: delivery_mode 'batch' needs a provider with a batch API, and pool "
                                f"'{pool.name}' has none ({why})", param="delivery_mode")
    return found
