"""Batches on AsyncMeshClient: `await client.batches.create(input=[...])`, awaited jobs.

    job = await client.batches.create(input=lines, max_concurrency=16, on_progress=print)
    await job.wait()
    job.output_lines()

Theory of operation: everything but the running is `_batch.py`'s, shared with MeshClient:
the job and its results (`_JobView`), `create`'s checks (`_BatchesBase._plan`), a local
batch's bookkeeping (`_LocalBook`) and a provider batch's conversation (`_Conversation`).
Here a local batch is one driver task on the client's event loop: it takes a place under an
`asyncio.Semaphore` of `max_concurrency`, then the next item, and runs that item as a task of
its own through the client's ordinary request path (routing, failover, health, events), which
gives the place back when it ends; `cancel()` stops the driver taking items, and those never
sent end as cancelled. `on_progress` (a function, or a coroutine function) is told each count
as it is reached. A provider batch is the same conversation as MeshClient's, its requests
sent with the client's httpx clients, and `wait()` polls with the client's sleep (a
FakeClock's in tests). Nothing here blocks the loop: a JSONL input file is read in a thread.
"""
from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._batch import (
    DEFAULT_POLL_INTERVAL,
    BatchList,
    BatchProgress,
    _batch_answer,
    _BatchesBase,
    _Conversation,
    _JobView,
    _LocalBook,
    _log,
    _Outputs,
    _Plan,
    _read_lines,
    _Talk,
    _told,
    _unreachable,
    poll_interval,
)
from ._core import _errors as E
from ._core._batch import ItemOutcome

__all__ = ["AsyncBatchJob", "AsyncBatches"]


class AsyncBatchJob(_JobView):
    """BatchJob for AsyncMeshClient: the same fields, results and output lines; `wait()`,
    `refresh()` and `cancel()` are awaited."""

    async def wait(self, timeout: float | None = None, *, poll_interval: float = DEFAULT_POLL_INTERVAL) -> AsyncBatchJob:
        """Until the batch has ended (or `timeout` seconds have passed; then it is returned as
        it stands). A provider batch is polled every `poll_interval` seconds."""
        await self._runner.wait(timeout, poll_interval)
        return self

    async def refresh(self) -> AsyncBatchJob:
        """Ask the provider how its batch stands (a provider batch); a local one is always current."""
        await self._runner.refresh()
        return self

    async def cancel(self) -> AsyncBatchJob:
        """Stop the batch: a local one sends no further item (those in flight finish); a
        provider's is asked to cancel. Cancelling an ended batch changes nothing."""
        await self._runner.cancel()
        return self


async def _tell(on_progress: Callable[[BatchProgress], Any] | None, progress: BatchProgress | None) -> None:
    if on_progress is None or progress is None:
        return
    told = _told(on_progress, progress)
    if inspect.isawaitable(told):
        try:
            await told
        except Exception:  # noqa: BLE001 - an observer's bug must not stop the batch it observes
            _log.exception("modelmesh: batch progress callback %r failed", on_progress)


class _AsyncLocal:
    """Runs a job's items as tasks, `max_concurrency` at a time, through `client`."""

    def __init__(self, job: AsyncBatchJob, client: Any, hints: Mapping[str, Any], max_concurrency: int,
                 on_progress: Callable[[BatchProgress], Any] | None) -> None:
        self.job = job
        self.book = _LocalBook(job, client, hints)
        self.on_progress = on_progress
        self.places = asyncio.Semaphore(max_concurrency)
        self.driver: asyncio.Task[None] | None = None

    def start(self) -> None:
        with self.job._lock:
            self.job._move("validated")
        self.driver = asyncio.get_running_loop().create_task(self._drive(), name=f"modelmesh-{self.job.id}")

    async def _drive(self) -> None:
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                await self.places.acquire()
                with self.job._lock:
                    item = self.book.take()
                if item is None:
                    self.places.release()
                    break
                task = asyncio.get_running_loop().create_task(self._one(item))
                running.add(task)
                task.add_done_callback(running.discard)
            if running:
                await asyncio.gather(*running)
        finally:
            with self.job._lock:
                skipped = self.book.skip_rest()
            await _tell(self.on_progress, skipped)
            with self.job._lock:
                self.job._move("finished")

    async def _one(self, item: Any) -> None:
        book = self.book
        try:
            try:
                outcome: ItemOutcome = book.answered(item, await book.client._request(item.op, book.request(item),
                                                                                      False))
            except Exception as exc:  # noqa: BLE001 - each item ends with its reason (see _LocalBook.failed)
                outcome = book.failed(item, exc)
            with self.job._lock:
                progress = book.record(item, outcome)
        finally:
            self.places.release()
        await _tell(self.on_progress, progress)

    async def wait(self, timeout: float | None, poll_interval_: float) -> None:
        assert self.driver is not None
        await asyncio.wait([self.driver], timeout=timeout)

    async def refresh(self) -> None:
        return None

    async def cancel(self) -> None:
        with self.job._lock:
            self.book.cancel()


class _AsyncRemote:
    """A provider batch over the client's httpx clients: submitted on creation, polled when asked."""

    def __init__(self, job: AsyncBatchJob, client: Any, op: str, candidates: Sequence[tuple[Any, Any]],
                 on_progress: Callable[[BatchProgress], Any] | None) -> None:
        self.job, self.client = job, client
        self.talk = _Conversation(job, op, candidates)
        self.on_progress = on_progress
        self._poll = asyncio.Lock()  # one conversation with the provider at a time

    async def _run(self, talk: _Talk) -> None:
        result: Any = None  # a generator is started with None
        error: E.ModelMeshError | None = None
        while True:
            try:
                runtime, wire = talk.send(result) if error is None else talk.throw(error)
            except StopIteration as end:
                await _tell(self.on_progress, end.value)
                return
            result, error = None, None
            try:
                result = await self._send(runtime, wire)
            except E.ModelMeshError as exc:
                error = exc

    async def _send(self, runtime: Any, wire: Any) -> bytes:
        return await asend_wire(self.client, runtime, wire)

    async def start(self) -> None:
        async with self._poll:
            await self._run(self.talk.submit())

    async def refresh(self) -> None:
        async with self._poll:
            await self._run(self.talk.refresh())

    async def wait(self, timeout: float | None, poll_interval_: float) -> None:
        every = poll_interval(poll_interval_)
        clock, sleep = self.client._clock, self.client.transport.sleep
        deadline = None if timeout is None else clock() + timeout
        while True:
            await self.refresh()
            if self.job.ended:
                return
            if deadline is not None and clock() + every > deadline:
                return
            slept = sleep(every)  # a FakeClock's sleep is plain; asyncio's is awaited
            if inspect.isawaitable(slept):
                await slept

    async def cancel(self) -> None:
        async with self._poll:
            await self._run(self.talk.cancel())


async def asend_wire(client: Any, runtime: Any, wire: Any, api: str = "batch API") -> bytes:
    """`_batch.send_wire` for AsyncMeshClient: the request sent with the client's httpx clients."""
    import httpx

    from .transports._http import body_of
    from .transports.asyncio import _translate

    cfg = runtime.config
    try:
        shard = await client.transport.http.acquire(wire.url)
        try:
            request = shard.client.build_request(
                wire.method, wire.url, headers=dict(wire.headers), content=body_of(wire),
                timeout=httpx.Timeout(connect=cfg.connect_timeout, read=cfg.timeout, write=cfg.timeout,
                                      pool=cfg.connect_timeout))
            r = await shard.client.send(request)
        finally:
            shard.busy -= 1
    except Exception as exc:  # noqa: BLE001 - httpx's errors, translated at the boundary
        raise _unreachable(runtime, wire, _translate(exc), api) from None
    return _batch_answer(client, runtime, wire, r.status_code, r.headers, r.content, api)


class AsyncBatches(_BatchesBase):
    """`client.batches` on AsyncMeshClient: MeshClient's `batches`, awaited. `create` returns
    an AsyncBatchJob at once (a provider batch once the provider has taken it); a local
    batch runs as tasks of the client's event loop."""

    async def create(self, *, input: Any = None, endpoint: str = "/v1/chat/completions",
                     completion_window: str = "24h", metadata: Mapping[str, str] | None = None,
                     input_file_id: str | None = None, delivery_mode: str | None = None,
                     max_concurrency: int | None = None, on_progress: Callable[[BatchProgress], Any] | None = None,
                     **hints: Any) -> AsyncBatchJob:
        """As MeshClient's `batches.create`; `on_progress` may be a coroutine function."""
        where = "batches.create"
        self._arguments(where, input_file_id, completion_window, hints)
        if isinstance(input, (str, os.PathLike)):  # a JSONL file, read off the loop
            lines = await asyncio.to_thread(_read_lines, where, input)
        else:
            lines = _read_lines(where, input)
        plan = self._plan(where, lines, endpoint, metadata, delivery_mode, max_concurrency, on_progress, hints)
        return await self._start(plan)

    async def _start(self, plan: _Plan) -> AsyncBatchJob:
        job: AsyncBatchJob = self._new(AsyncBatchJob, plan)
        if plan.mode == "local":
            local = _AsyncLocal(job, self._client, plan.hints, plan.concurrency, plan.on_progress)
            job._runner = local
            local.start()
        else:
            remote = _AsyncRemote(job, self._client, plan.op, plan.candidates, plan.on_progress)
            job._runner = remote
            await remote.start()
        self._keep(job)
        return job

    async def retrieve(self, batch_id: str) -> AsyncBatchJob:
        """The job `batch_id`; a provider batch is asked how it stands first."""
        job: AsyncBatchJob = self._job("batches.retrieve", batch_id)
        return await job.refresh()

    async def cancel(self, batch_id: str) -> AsyncBatchJob:
        job: AsyncBatchJob = self._job("batches.cancel", batch_id)
        return await job.cancel()

    async def list(self, *, limit: int = 20, after: str | None = None) -> BatchList:
        """This client's batches, newest first, `limit` of them after the one named `after`."""
        return self._listing(limit, after)

    async def results(self, batch_id: str) -> _Outputs:
        """The ended batch's results as OpenAI's batch output lines, in input order."""
        return list(self._job("batches.results", batch_id).output_lines())
