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

Jobs live in this process, in the client that made them (there is no files API and no
store of batches): `client.batches.retrieve(id)` finds a job this client created.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
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


class BatchJob:
    """A batch and how it stands (seed 004's BatchJob, in OpenAI's batch vocabulary).

    `id`, `status` (validating, in_progress, finalizing, completed, cancelling, cancelled,
    failed, expired), `request_counts` (total, completed, failed), `created_at`,
    `completed_at`, `endpoint`, `model` (what the lines name), `provider` (the provider a
    provider batch went to; None for a local one), `delivery_mode` ("local" or "batch").
    `results` are the ended items in input order; `wait()`, `cancel()`, `refresh()`."""

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
        return (f"BatchJob(id={self.id!r}, status={self.status!r}, delivery_mode={self.delivery_mode!r}, "
                f"completed={c.completed}, failed={c.failed}, total={c.total})")

    # -- acting ---------------------------------------------------------------------------
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


class _Local:
    """Runs a job's items on `max_concurrency` worker threads through `client`."""

    def __init__(self, job: BatchJob, client: Any, hints: Mapping[str, Any], max_concurrency: int,
                 on_progress: Callable[[BatchProgress], Any] | None) -> None:
        self.job, self.client, self.hints = job, client, dict(hints)
        self.on_progress = on_progress
        self.workers = min(max_concurrency, len(job._items))
        self._next = 0
        self._cancelled = False
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
        job = self.job
        while True:
            with job._lock:
                stop = self._cancelled or self._next >= len(job._items)
                if stop:
                    self._running -= 1
                    last = self._running == 0
                    if last:
                        self._skip_rest()
                else:
                    item = job._items[self._next]
                    self._next += 1
            if stop:
                if last:  # the last worker out reports the end, then ends the job
                    self._report()
                    with job._lock:
                        job._move("finished")
                return
            outcome = self._run(item)
            with job._lock:
                job._outcomes[item.index] = outcome
                c = job._counts
                job._counts = Counts(total=c.total, completed=c.completed + outcome.ok, failed=c.failed + (not outcome.ok))
                self._pending.append(job.progress)
            self._report()

    def _run(self, item: BatchItem) -> ItemOutcome:
        kwargs = {**item.body, **self.hints}
        try:
            result = self.client._request(item.op, kwargs, False)
        except E.ModelMeshError as exc:
            return ItemOutcome(custom_id=item.custom_id, error=_item_error(exc), provider=exc.provider,
                               model=exc.model, request_id=exc.request_id)
        except Exception as exc:  # noqa: BLE001 - a bug fails its item, not the batch; said as the boundary says it
            internal = self.client.transport.internal(exc)
            _log.error("modelmesh: batch item %s failed unexpectedly: %s", item.custom_id, internal)
            return ItemOutcome(custom_id=item.custom_id, error=_item_error(internal))
        return ItemOutcome(custom_id=item.custom_id, body=result.response, provider=result.provider,
                           model=result.model, request_id=result.request_id)

    def _report(self) -> None:
        """Tell `on_progress` every count reached so far and not yet told, in order, one
        report at a time: it sees `done` go up one item at a time."""
        if self.on_progress is None:
            return
        with self._progress_lock:
            while self._pending:
                progress = self._pending.popleft()
                try:
                    self.on_progress(progress)
                except Exception:  # an observer's bug must not stop the batch it observes
                    _log.exception("modelmesh: batch progress callback %r failed", self.on_progress)

    def _skip_rest(self) -> None:
        """Under the job's lock: the items never sent (the batch was cancelled) end as cancelled."""
        job = self.job
        for item in job._items[self._next:]:
            job._outcomes[item.index] = ItemOutcome(custom_id=item.custom_id, error=ItemError(
                error_class="APIError", code="batch_cancelled", message="the batch was cancelled before this request ran"))
        skipped = len(job._items) - self._next
        if skipped:
            c = job._counts
            job._counts = Counts(total=c.total, completed=c.completed, failed=c.failed + skipped)
            self._pending.append(job.progress)

    def wait(self, timeout: float | None, poll_interval: float) -> None:
        self.job._ended.wait(timeout)

    def refresh(self) -> None:
        return None

    def cancel(self) -> None:
        with self.job._lock:
            if self.job.ended:
                return
            self._cancelled = True
            if self.job._status is not Status.CANCELLING:
                self.job._move("cancel")


class _Remote:
    """A provider batch: submitted on creation, polled when asked."""

    def __init__(self, job: BatchJob, client: Any, op: str, candidates: Sequence[tuple[Any, Any]],
                 on_progress: Callable[[BatchProgress], Any] | None) -> None:
        self.job, self.client, self.op = job, client, op
        self.candidates = candidates  # (ProviderRuntime, Target), in routing order
        self.on_progress = on_progress
        self.runtime: Any = None
        self.target: Any = None
        self.codec: Any = None
        self._poll = threading.Lock()  # one conversation with the provider at a time

    def start(self) -> None:
        from ._core.codecs.batches import RemoteBatch, batch_codec

        failures: list[str] = []
        last: E.ModelMeshError | None = None
        for runtime, target in self.candidates:
            codec = batch_codec(runtime.codec)
            assert codec is not None  # the candidates were chosen for it
            try:
                step = codec.submit(target, self.op, self.job._items)
                answer = codec.after_submit(target, self.op, self._send(runtime, target, step))
                while not isinstance(answer, RemoteBatch):  # OpenAI: the file first, then the batch
                    answer = codec.after_submit(target, self.op, self._send(runtime, target, answer))
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
            self._absorb(answer)
            return
        assert last is not None
        raise type(last)(f"no provider took the batch: {'; '.join(failures)}", status=last.status,
                         provider=last.provider, code=last.code)

    def _send(self, runtime: Any, target: Any, wire: Any) -> bytes:
        from .transports.sync import _translate

        cfg = runtime.config
        payload = wire.content if wire.content is not None else wire.json
        try:
            r = self.client.transport.http.send(wire.method, wire.url, wire.headers, payload,
                                                connect_timeout=cfg.connect_timeout, read_timeout=cfg.timeout)
            try:
                body = _read_all(r)
            finally:
                r.release_conn()
        except Exception as exc:  # noqa: BLE001 - urllib3's and requests' errors, translated at the boundary
            failed = _translate(exc)
            cls = E.APITimeoutError if failed.kind.value == "timeout" else E.APIConnectionError
            raise cls(f"provider {runtime.id!r} batch API ({wire.method} {_path(wire.url)}): {failed.message}",
                      provider=runtime.id) from None
        if r.status >= 400:
            info = runtime.codec.classify_error(r.status, r.headers, body, now=self.client._clock(),
                                                secrets=self.client.core.secret_values)
            raise E.status_class(r.status)(f"provider {runtime.id!r} batch API ({wire.method} {_path(wire.url)}): "
                                           f"{info.message}", status=r.status, provider=runtime.id,
                                           code=info.code, type=info.type)
        return body

    def _absorb(self, remote: Any) -> None:
        """Take in the provider's view of the batch; once it has ended, fetch its results."""
        outcomes: dict[str, ItemOutcome] | None = None
        if remote.status in TERMINAL:
            bodies = [self._send(self.runtime, self.target, w) for w in self.codec.results(self.target, remote)]
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
            progress = job.progress
        if self.on_progress is not None:
            try:
                self.on_progress(progress)
            except Exception:
                _log.exception("modelmesh: batch progress callback %r failed", self.on_progress)

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

    def refresh(self) -> None:
        with self._poll:
            if self.job.ended:
                return
            wire = self.codec.retrieve(self.target, self.job.remote_id)
            self._absorb(self.codec.parse_batch(self.target, self._send(self.runtime, self.target, wire)))

    def wait(self, timeout: float | None, poll_interval: float) -> None:
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or poll_interval <= 0:
            raise E.InvalidArgumentError(f"wait: 'poll_interval' must be a positive number of seconds, got {poll_interval!r}")
        clock, sleep = self.client._clock, self.client.transport.sleep
        deadline = None if timeout is None else clock() + timeout
        while True:
            self.refresh()
            if self.job.ended:
                return
            if deadline is not None and clock() + poll_interval > deadline:
                return
            sleep(poll_interval)

    def cancel(self) -> None:
        with self._poll:
            if self.job.ended:
                return
            wire = self.codec.cancel(self.target, self.job.remote_id)
            remote = self.codec.parse_batch(self.target, self._send(self.runtime, self.target, wire))
            with self.job._lock:
                if not self.job.ended and self.job._status is not Status.CANCELLING:
                    self.job._move("cancel")
        self._absorb(remote)


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

class BatchList(list[BatchJob]):
    """The page `batches.list()` gives: a list of BatchJob, read like the SDK's page too."""

    @property
    def data(self) -> list[BatchJob]:
        return list(self)

    def has_next_page(self) -> bool:
        return False


class Batches:
    """`client.batches`: OpenAI's batches resource over the mesh.

    Unlike OpenAI's, `create` takes the request lines themselves (`input=`: a list of
    `{"custom_id", "method", "url", "body"}` dicts, or the path of a JSONL file of them), not
    an `input_file_id`: the mesh has no files API. Results are read from the job
    (`results(batch_id)` gives OpenAI's output lines) rather than from an output file."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._jobs: dict[str, BatchJob] = getattr(client, "_batch_jobs", None) or {}
        client._batch_jobs = self._jobs  # shared by the client's copies (with_options)
        self._lock = threading.Lock()

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
        if input_file_id is not None:
            raise E.InvalidArgumentError(f"{where}: 'input_file_id' names an uploaded file, and the mesh has no files "
                                         "API; pass the request lines themselves as input=[...] or a JSONL file's "
                                         "path as input='requests.jsonl'", param="input_file_id")
        if completion_window != "24h":
            raise E.InvalidArgumentError(f"{where}: 'completion_window' must be \"24h\", got {completion_window!r}",
                                         param="completion_window")
        unknown = sorted(set(hints) - set(_HINTS))
        if unknown:
            raise E.InvalidArgumentError(f"{where}: unexpected argument(s) {', '.join(unknown)}")
        lines = _read_lines(where, input)
        items = parse_input(lines, endpoint=endpoint, where=where)
        return self._start(items, endpoint, metadata, delivery_mode, max_concurrency, on_progress,
                           {k: v for k, v in hints.items() if v is not None}, where)

    def _start(self, items: Sequence[BatchItem], endpoint: str, metadata: Mapping[str, str] | None,
               delivery_mode: str | None, max_concurrency: int | None,
               on_progress: Callable[[BatchProgress], Any] | None, hints: Mapping[str, Any], where: str) -> BatchJob:
        if delivery_mode not in (None, "local", "batch"):
            raise E.InvalidArgumentError(f"{where}: delivery_mode must be 'local' (the mesh runs the lines) or "
                                         f"'batch' (a provider's batch API), got {delivery_mode!r}", param="delivery_mode")
        if on_progress is not None and not callable(on_progress):
            raise E.InvalidArgumentError(f"{where}: 'on_progress' must be callable, got {on_progress!r}")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise E.InvalidArgumentError(f"{where}: 'metadata' must be a mapping of strings")
        client = self._client
        models = sorted({str(it.body["model"]) for it in items})
        mode = "batch" if delivery_mode == "batch" else "local"
        job = BatchJob(items=items, endpoint=endpoint, model=models[0] if len(models) == 1 else "mixed",
                       delivery_mode=mode, created_at=client._clock(), metadata=metadata, clock=client._clock)
        runner: _Local | _Remote
        if mode == "local":
            runner = _Local(job, client, hints, _concurrency(where, max_concurrency), on_progress)
        else:
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
            runner = _Remote(job, client, op, _batch_candidates(client, models[0], op, where), on_progress)
        job._runner = runner
        runner.start()
        with self._lock:
            self._jobs[job.id] = job
        return job

    def retrieve(self, batch_id: str) -> BatchJob:
        """The job `batch_id`; a provider batch is asked how it stands first."""
        job = self._job("batches.retrieve", batch_id)
        return job.refresh()

    def cancel(self, batch_id: str) -> BatchJob:
        return self._job("batches.cancel", batch_id).cancel()

    def list(self, *, limit: int = 20, after: str | None = None) -> BatchList:
        """This client's batches, newest first, `limit` of them after the one named `after`."""
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

    def results(self, batch_id: str) -> _Outputs:
        """The ended batch's results as OpenAI's batch output lines, in input order."""
        return self._job("batches.results", batch_id).output_lines()

    def _job(self, where: str, batch_id: Any) -> BatchJob:
        with self._lock:
            job = self._jobs.get(batch_id) if isinstance(batch_id, str) else None
        if job is None:
            raise E.NotFoundError(f"{where}: no batch {batch_id!r} was created by this client (batches live in the "
                                  "client that made them)", param="batch_id")
        return job


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
