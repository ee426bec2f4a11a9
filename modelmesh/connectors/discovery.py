"""Health checks as classes (seed 003): `BaseDiscovery` and `HttpHealthDiscovery`.

Theory of operation. The core decides which checks are due (`due_probes`: the health
monitor's checks of each provider, start checks, probes of providers and models on standby)
and takes their verdicts (`probe_result`); it never sends anything. The shell sends each
check, and a discovery class, when one is configured (`discovery.health.connector`), says
how: which request to send (`request`), how to judge the answer (`judge`), or, for a
check that is not an HTTP request, the verdict itself (`probe`).

Every method has a default that is the built-in behaviour, so a subclass overrides one:

- `probe(check) -> bool | None`: None (the default) sends `request(check)` through the
  shell's HTTP and judges the answer; a bool is the verdict. It runs in the shell's worker
  thread (off the event loop under the async client), and may do its own I/O; an exception
  counts as a failed check.
- `request(check) -> WireRequest`: the built-in check's request: the provider's model listing
  (`GET {base_url}/models`) for a provider, a one-token request for a model on standby.
- `judge(check, status, headers, body) -> bool`: healthy on a 2xx status.

`check` is the core's `Probe`: `provider`, `pool` and `ref` (None for a provider check),
`target` (base_url, model; its API key never shows in a repr), `request` and `timeout`.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping

from .._core._health import Probe
from .._core._types import ConnectorCall, WireRequest

__all__ = ["BaseDiscovery", "HttpHealthDiscovery", "HealthCheck"]

HealthCheck = Probe  # the name connector authors meet it under


class BaseDiscovery:
    """A health check: every default is the built-in one; override `probe`, `request` or `judge`."""

    def probe(self, check: HealthCheck) -> bool | None:
        """The verdict of `check` found by your own means, or None to send `request(check)`."""
        return None

    def request(self, check: HealthCheck) -> WireRequest | ConnectorCall:
        """The HTTP request that checks `check.provider` (or, with `check.ref`, a standby model)."""
        return check.request

    def judge(self, check: HealthCheck, status: int, headers: Mapping[str, str], body: bytes) -> bool:
        """Whether the answer to `request(check)` says healthy: a 2xx status."""
        return 200 <= status < 300

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class HttpHealthDiscovery(BaseDiscovery):
    """HTTP health checks by configuration alone.

    `path`: checks of a provider are a GET of `{base_url}{path}` (e.g. "/health") instead of its
    model listing, with the same headers (so the same credentials); `healthy_statuses`: the
    statuses that pass (default: any 2xx). Probes of standby models keep their one-token
    request: they test the model, not the server. (Another method or body: override `request`.)
    """

    def __init__(self, *, path: str | None = None, healthy_statuses: Collection[int] = ()) -> None:
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise ValueError(f'path must start with "/", got {path!r}')
        codes = tuple(healthy_statuses)
        if any(isinstance(c, bool) or not isinstance(c, int) or not 100 <= c <= 599 for c in codes):
            raise ValueError(f"healthy_statuses must be HTTP status integers, got {codes!r}")
        self.path = path
        self.healthy_statuses = frozenset(codes)

    def __repr__(self) -> str:
        return f"HttpHealthDiscovery(path={self.path!r}, healthy_statuses={sorted(self.healthy_statuses)})"

    def request(self, check: HealthCheck) -> WireRequest | ConnectorCall:
        if check.ref is not None or self.path is None:
            return check.request
        return WireRequest(method="GET", url=check.target.base_url + self.path, headers=check.request.headers)

    def judge(self, check: HealthCheck, status: int, headers: Mapping[str, str], body: bytes) -> bool:
        if self.healthy_statuses and check.ref is None:
            return status in self.healthy_statuses
        return super().judge(check, status, headers, body)

