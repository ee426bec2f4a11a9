"""The webhook sink: records POSTed as JSON arrays, in batches, from a background thread.

Theory of operation. `_write` only appends to a bounded queue (`queue_size`, default 10000)
without waiting: a request never blocks on, or fails because of, the webhook. When the queue
is full the record is dropped and counted (`overflow` in `client.status()["observability"]`),
with a warning logged at the first drop and then once per `queue_size` drops.

One daemon thread takes up to `batch_size` records (waiting at most `batch_interval` for a
batch to fill) and POSTs them. A batch that is not accepted (a connection error, a 5xx, a
429, a timeout) is retried with exponential backoff (`retry_initial` doubling up to
`retry_max`) by tenacity until it is: a receiver that is down loses nothing sent to it while
the queue has room. A 4xx other than 408/429 means the receiver refuses this batch for good:
it is dropped and counted as `rejected`. `close()` stops taking records, and sends what is
queued within `close_timeout` seconds; what remains then is counted as `dropped`.

tenacity is imported when the first webhook sink is made (the `webhook` extra), not by
`import modelmesh`. `sleep` may be injected (a FakeClock's) so the backoff runs in tests
without waiting.
"""
from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._core._config_schema import ObservabilityConfig
from .._core._errors import redact
from ._base import BaseObservability

__all__ = ["WebhookObservability"]

_log = logging.getLogger("modelmesh.observability")
_KEYS = {"url", "headers", "batch_size", "batch_interval", "queue_size", "timeout", "retry_initial", "retry_max",
         "close_timeout"}


_WAKE: dict[str, Any] = {}  # put by close(): ends the sender's wait for a fuller batch


class _NotAccepted(Exception):
    """A batch the receiver did not take and may take later."""


def _number(config: Mapping[str, Any], key: str, default: float, *, whole: bool = False) -> Any:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (whole and value != int(value)):
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"config.{key}: expected {kind} > 0, got {value!r}")
    return int(value) if whole else float(value)


class WebhookObservability(BaseObservability):
    name = "webhook"

    def __init__(self, config: Mapping[str, Any] | None = None, *, settings: ObservabilityConfig | None = None,
                 secrets: Iterable[str] = (), sleep: Callable[[float], None] | None = None,
                 http: Any = None) -> None:
        super().__init__(config, settings=settings, secrets=secrets)
        c = self.config
        unknown = sorted(set(c) - _KEYS)
        if unknown:
            raise ValueError(f"config.{unknown[0]}: unknown key for the 'webhook' connector "
                             f"(it takes {', '.join(sorted(_KEYS))})")
        url = c.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("config.url: expected an http:// or https:// URL")
        headers = c.get("headers") or {}
        if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
            raise ValueError("config.headers: expected a mapping of header name to text")
        self.batch_size = _number(c, "batch_size", 100, whole=True)
        self.batch_interval = _number(c, "batch_interval", 1.0)
        self.timeout = _number(c, "timeout", 10.0)
        self.close_timeout = _number(c, "close_timeout", 5.0)
        initial, most = _number(c, "retry_initial", 0.5), _number(c, "retry_max", 30.0)
        import tenacity  # the webhook extra; loaded here so `import modelmesh` stays lean
        import urllib3

        self._url = url
        self._headers = {"Content-Type": "application/json", **{str(k): v for k, v in headers.items()}}
        self._secrets = (*self._secrets, *headers.values())  # a header's token never reaches a log line
        self._http = http if http is not None else urllib3.PoolManager(retries=False)
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=_number(c, "queue_size", 10000, whole=True))
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._counts = {"sent": 0, "batches": 0, "retries": 0, "overflow": 0, "rejected": 0, "dropped": 0}
        self._retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_NotAccepted),
            wait=tenacity.wait_exponential(multiplier=initial, max=most),
            stop=self._give_up, sleep=sleep or self._pause, before_sleep=self._note_retry, reraise=True)
        self._thread = threading.Thread(target=self._run, name="modelmesh-webhook", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"WebhookObservability(url={redact(self._url, self._secrets)!r})"

    # -- the request side: never waits ---------------------------------------------------------
    def _put(self, record: dict[str, Any]) -> None:
        if self._closing.is_set():
            self._count("dropped")
            return
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            n = self._count("overflow")
            if n == 1 or n % self._queue.maxsize == 0:
                _log.warning("modelmesh webhook sink: queue full (%d records), %d records dropped so far; the "
                             "receiver is slow or down", self._queue.maxsize, n)

    def _count(self, what: str, n: int = 1) -> int:
        with self._lock:
            self._counts[what] += n
            return self._counts[what]

    def status(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self._counts)
        return {"connector": self.name, "queued": self._queue.qsize(), **counts}

    # -- the sending thread --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch:
                self._deliver(batch)
            elif self._closing.is_set():
                return

    def _take(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.batch_interval
        while len(batch) < self.batch_size:
            wait = deadline - time.monotonic()
            if self._closing.is_set():
                wait = 0.0
            try:
                record = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if record is _WAKE:  # close() wants the rest sent now
                continue
            batch.append(record)
        return batch

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        body = ("[" + ",".join(self._dumps(r) for r in batch) + "]").encode()
        try:
            self._retrying(self._post, body)
        except _NotAccepted:  # given up: only when closing and out of time
            self._count("dropped", len(batch))
            return
        except _Refused as exc:
            self._count("rejected", len(batch))
            _log.warning("modelmesh webhook sink: the receiver refused a batch of %d records (HTTP %d); dropped",
                         len(batch), exc.status)
            return
        self._count("sent", len(batch))
        self._count("batches")

    def _post(self, body: bytes) -> None:
        try:
            r = self._http.request("POST", self._url, body=body, headers=self._headers, timeout=self.timeout,
                                   redirect=False)
        except Exception as exc:  # urllib3's errors and anything a custom pool raises: try again later
            raise _NotAccepted(type(exc).__name__) from None
        if 200 <= r.status < 300:
            return
        if r.status in (408, 429) or r.status >= 500:
            raise _NotAccepted(f"HTTP {r.status}")
        raise _Refused(r.status)

    def _give_up(self, state: Any) -> bool:
        if not self._closing.is_set():
            return False  # keep trying: the receiver may come back
        return time.monotonic() >= self._close_deadline

    def _pause(self, seconds: float) -> None:
        # while open, a real wait that close() cuts short; closing, no waiting past the deadline
        self._closing.wait(seconds)

    def _note_retry(self, state: Any) -> None:
        n = self._count("retries")
        if n == 1 or n % 100 == 0:
            _log.warning("modelmesh webhook sink: %s not accepted (%s); retrying with backoff", self._where(),
                         state.outcome.exception() if state.outcome else "?")

    def _where(self) -> str:
        return redact(self._url.split("?")[0], self._secrets)

    # -- closing ----------------------------------------------------------------------------------
    _close_deadline = float("inf")

    def close(self) -> None:
        """Send what is queued (within close_timeout), then stop."""
        if self._closing.is_set():
            return
        self._close_deadline = time.monotonic() + self.close_timeout
        self._closing.set()
        with contextlib.suppress(queue.Full):  # a full queue wakes the sender by itself
            self._queue.put_nowait(_WAKE)
        self._thread.join(self.close_timeout + self.timeout + 1.0)
        left = sum(1 for r in list(self._queue.queue) if r is not _WAKE)
        if left:
            self._count("dropped", left)
        counts = self.status()
        if counts["dropped"]:
            _log.warning("modelmesh webhook sink: %d records could not be delivered to %s before closing",
                         counts["dropped"], self._where())


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
