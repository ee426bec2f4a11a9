"""Models that serve once their fine-tuning job has succeeded: `models: [{id: "ft:...", from_job: "ftjob-..."}]`.

Theory of operation. When the client is made, each such model is taken out of every pool it is
in through the core's own door (`deactivate_model`, by hand, no deadline): routing skips it
and the pool's other models serve. The client's background round (the probe thread's, or the
asyncio client's task), or `client.check_jobs()`, asks the provider how each job it still waits
for stands, through the fine-tuning API (`_files.py`), at most once every `CHECK_EVERY`
seconds of the client's clock (a check is an API call; jobs take minutes to hours). A job that
has succeeded puts its model back through the core's `reactivate_model` door, so it serves in
its pools without a restart; one that failed or was cancelled leaves it out, and `status()`
says why under `from_job`. A check that gets no answer is said there too and tried again at
the next due round. Each process follows its own jobs: a proxy's workers each find out.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from ._core import _errors as E

__all__ = ["JobWatch", "CHECK_EVERY"]

CHECK_EVERY = 60.0


@dataclass
class _Followed:
    ref: str                  # provider/model-id
    provider: str
    job: str                  # the provider's job id
    state: str = "waiting"    # waiting -> serving | left_out
    job_status: str | None = None
    reason: str = ""

    def view(self) -> dict[str, Any]:
        return {"job": self.job, "provider": self.provider, "state": self.state, "job_status": self.job_status,
                "reason": self.reason}


class JobWatch:
    """The client's models waiting for their fine-tuning jobs (see the module's docstring)."""

    def __init__(self, client: Any, followed: list[_Followed]) -> None:
        self.client = client
        self.followed = followed
        self._lock = threading.Lock()
        self._due = float("-inf")  # the first round checks at once

    @classmethod
    def for_client(cls, client: Any) -> JobWatch | None:
        """The watch of `client`'s `from_job` models, each taken out of its pools; None when it has none."""
        followed = [_Followed(ref=f"{pid}/{m.id}", provider=pid, job=m.from_job.partition("~")[0])
                    for pid, p in client.config.providers.items() for m in p.models if m.from_job]
        if not followed:
            return None
        for f in followed:
            f.reason = f"waiting for fine-tuning job {f.job} to succeed (not checked yet)"
            for event in client.core.deactivate_model(f.ref, now=client._clock()):
                client._dispatch(event)
        return cls(client, followed)

    def view(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {f.ref: f.view() for f in self.followed}

    def _take(self, force: bool) -> list[_Followed]:
        """The jobs to ask about now (none before the next check is due, unless `force`)."""
        now = self.client._clock()
        with self._lock:
            if not force and now < self._due:
                return []
            self._due = now + CHECK_EVERY
            return [f for f in self.followed if f.state == "waiting"]

    def _ask(self, f: _Followed) -> Any:
        from ._files import _Ops

        return _Ops(self.client).job("retrieve", f.job, f.provider)

    def _absorb(self, f: _Followed, job: Any, failure: E.ModelMeshError | None) -> None:
        """Take in what a check found: the job as it stands, or why it could not be asked."""
        events: list[Any] = []
        with self._lock:
            if failure is not None:
                f.reason = f"waiting for fine-tuning job {f.job}; the last check failed: {failure.message}"
            else:
                data = job.to_dict()
                status = data.get("status")
                f.job_status = status
                made = data.get("fine_tuned_model")
                if status == "succeeded" and made != f.ref.partition("/")[2]:
                    f.state, f.reason = "left_out", (f"fine-tuning job {f.job} succeeded, but made {made!r}, not the "
                                                     "model configured with it; the model is not served")
                elif status == "succeeded":
                    f.state, f.reason = "serving", f"fine-tuning job {f.job} succeeded"
                elif status in ("failed", "cancelled"):
                    error = data.get("error") if isinstance(data.get("error"), dict) else {}
                    said = f": {error['message']}" if isinstance(error.get("message"), str) else ""
                    f.state, f.reason = "left_out", f"fine-tuning job {f.job} {status}{said}; the model is not served"
                else:
                    f.reason = f"fine-tuning job {f.job} is {status}; the model serves once it has succeeded"
        if f.state == "serving":
            events = self.client.core.reactivate_model(f.ref, now=self.client._clock())
        for event in events:
            self.client._dispatch(event)

    def check(self, force: bool = False) -> int:
        """Ask about each job still waited for, when due (or `force`); returns how many were asked."""
        from ._files import _JOBS_API, _run

        taken = self._take(force)
        for f in taken:
            try:
                job, failure = _run(self.client, self._ask(f), _JOBS_API), None
            except E.ModelMeshError as exc:
                job, failure = None, exc
            self._absorb(f, job, failure)
        return len(taken)

    async def acheck(self, force: bool = False) -> int:
        """`check` for AsyncMeshClient."""
        from ._files import _JOBS_API, _arun

        taken = self._take(force)
        for f in taken:
            try:
                job, failure = await _arun(self.client, self._ask(f), _JOBS_API), None
            except E.ModelMeshError as exc:
                job, failure = None, exc
            self._absorb(f, job, failure)
        return len(taken)
