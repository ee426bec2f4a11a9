"""CDK mixins: cross-cutting pieces a connector composes (seeds 000 and 003).

Each mixin is small, takes its own keyword arguments and passes the rest along the MRO
(`super().__init__(**kwargs)`), so any set of them combines in one class:

    class MyProvider(HttpClientMixin, CacheMixin, MetricsMixin, CircuitBreakerMixin):
        def __init__(self, base_url, api_key):
            super().__init__(base_url=base_url, auth_token=api_key, cache_ttl="5m", failure_threshold=3)

The timed ones share one clock and sleep (`clock=`, `sleep=`; see `_base.Clocked`). They
reuse the core's pieces, never a copy: the rolling window, the circuit breaker, the
duration parser, the SSE parser, the rate-limit header parser, and the storage layer's
serializer; the HTTP goes through the mesh's own HTTP layer.

The seed's `_init_*` methods (`_init_http_client`, `_init_cache`, `_init_window`) remain,
for a class that sets a mixin up after construction.
"""
from ._base import Clocked
from ._breaker import CircuitBreakerMixin, CircuitOpenError
from ._cache import CacheMixin, CacheStats
from ._checkpoint import StreamCheckpoint, StreamingCheckpointMixin
from ._config import ConfigValidatorMixin
from ._http import HttpClientMixin, iter_sse
from ._metrics import MetricsMixin, OperationMetrics
from ._ratelimit import RateLimiterMixin
from ._retry import RetryMixin, is_transient
from ._serial import FileSerializerMixin, SerializationFormat, SerializationMixin
from ._timeout import Deadline, RequestTimeoutError, TimeoutMixin
from ._window import RollingWindowMixin

__all__ = [
    "Clocked", "HttpClientMixin", "iter_sse", "RetryMixin", "is_transient", "CacheMixin", "CacheStats",
    "SerializationMixin", "FileSerializerMixin", "SerializationFormat", "RollingWindowMixin",
    "ConfigValidatorMixin", "CircuitBreakerMixin", "CircuitOpenError", "TimeoutMixin", "Deadline",
    "RequestTimeoutError", "StreamingCheckpointMixin", "StreamCheckpoint", "RateLimiterMixin",
    "MetricsMixin", "OperationMetrics",
]
