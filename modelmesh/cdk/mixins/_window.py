"""RollingWindowMixin: per-key rolling windows over the core's `RollingWindow`.

Theory of operation: one core `RollingWindow` per key (a model, a provider), made on the
first sample; this mixin adds only what the core leaves to its shells: the clock (the
mixins' injected one) and a lock, since a connector is shared by threads. Rates, means and
scores mean what the core says: success rate 1.0 and score 0.0 for an empty window.
"""
from __future__ import annotations

import threading
from typing import Any

from ..._core._window import RollingWindow
from ._base import Clocked, seconds

__all__ = ["RollingWindowMixin"]


class RollingWindowMixin(Clocked):
    """`_record_sample(key, value, success)`; `_get_rate`, `_get_average`, `_get_score`."""

    _windows: dict[str, RollingWindow]
    _window_lock: threading.Lock
    _window_size: int = 100
    _window_duration: float = 300.0
    _window_alpha: float = 0.3

    def __init__(self, *, window_size: int = 100, window_duration: float | str = 300.0,
                 window_alpha: float = 0.3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_window(window_size, window_duration, alpha=window_alpha)

    def _init_window(self, window_size: int = 100, window_duration_seconds: float | str = 300.0,
                     *, alpha: float = 0.3) -> None:
        """At most `window_size` samples per key, each kept `window_duration_seconds` (or "5m")."""
        duration = seconds("window duration", window_duration_seconds, positive=True)
        RollingWindow(window_size, duration, alpha)  # the core checks the numbers once, here
        self._window_size, self._window_duration, self._window_alpha = window_size, duration, alpha
        self._windows = {}
        self._window_lock = threading.Lock()

    def _window(self, key: str) -> RollingWindow:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = RollingWindow(self._window_size, self._window_duration, self._window_alpha)
        return window

    def _peek(self, key: str) -> RollingWindow:
        # a question moves nothing: an unknown key reads as an empty window, and none is stored
        return self._windows.get(key) or RollingWindow(self._window_size, self._window_duration, self._window_alpha)

    def _record_sample(self, key: str, value: float, success: bool = True) -> None:
        with self._window_lock:
            self._window(key).record(self._now(), value, success)

    def _get_rate(self, key: str) -> float:
        """Success rate over the window, 0.0-1.0 (1.0 with no samples)."""
        with self._window_lock:
            return self._peek(key).success_rate(self._now())

    def _get_error_rate(self, key: str) -> float:
        with self._window_lock:
            return self._peek(key).error_rate(self._now())

    def _get_average(self, key: str) -> float:
        with self._window_lock:
            return self._peek(key).average(self._now())

    def _get_score(self, key: str) -> float:
        """EWMA of the values times the success rate (0.0 with no samples)."""
        with self._window_lock:
            return self._peek(key).score(self._now())

    def _get_count(self, key: str, since: float | str | None = None) -> int:
        """Samples in the window, or in its last `since` seconds."""
        with self._window_lock:
            window = self._peek(key)
            now = self._now()
            return window.count(now) if since is None else window.count_since(now, seconds("since", since))

    def _window_keys(self) -> list[str]:
        with self._window_lock:
            return sorted(self._windows)
