"""The CDK mixins (issue 16): each alone, then together; time on a FakeClock, HTTP on loopback."""
from __future__ import annotations

import json
import os
import pathlib
import random
import re

import pytest

from modelmesh.cdk import (
    CacheMixin,
    CircuitBreakerMixin,
    CircuitOpenError,
    ConfigValidatorMixin,
    FileSerializerMixin,
    HttpClientMixin,
    MetricsMixin,
    RateLimiterMixin,
    RequestTimeoutError,
    RetryMixin,
    RollingWindowMixin,
    SerializationMixin,
    StreamingCheckpointMixin,
    TimeoutMixin,
    iter_sse,
)
from modelmesh.errors import (
    APIConnectionError,
    AuthenticationError,
    ConfigurationError,
    InternalServerError,
    RateLimitError,
)
from modelmesh.testing import Error, FakeClock, FakeUpstream, refuse_connections

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
KEY = "sk-mixins-0123456789abcdef"


# -- RetryMixin --------------------------------------------------------------------------------

class Flaky:
    def __init__(self, failures, exc=None):
        self.failures, self.exc, self.calls = failures, exc or ConnectionError("reset"), 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc
        return "ok"


def test_retry_backs_off_exponentially_with_jitter_on_the_injected_clock():
    clock = FakeClock()
    r = RetryMixin(clock=clock, max_retries=3, backoff_base=1, jitter=0.5, rng=random.Random(7))
    assert r._retry(Flaky(3)) == "ok"
    base = [1.0, 2.0, 4.0]
    assert len(clock.sleeps) == 3
    assert all(b <= s < b + 0.5 for b, s in zip(base, clock.sleeps, strict=True))
    again = FakeClock()
    RetryMixin(clock=again, max_retries=3, backoff_base=1, jitter=0.5, rng=random.Random(7))._retry(Flaky(3))
    assert again.sleeps == clock.sleeps  # the same seed, the same waits


def test_retry_gives_up_and_raises_the_last_error_and_respects_the_predicate():
    clock = FakeClock()
    r = RetryMixin(clock=clock, max_retries=2, jitter=0)
    flaky = Flaky(5)
    with pytest.raises(ConnectionError):
        r._retry(flaky)
    assert flaky.calls == 3 and clock.sleeps == [0.5, 1.0]
    permanent = Flaky(5, ValueError("bad input"))
    with pytest.raises(ValueError):
        r._retry(permanent)
    assert permanent.calls == 1  # not transient: no retry
    custom = Flaky(1, ValueError("odd"))
    assert r._retry(custom, retry_on=lambda e: isinstance(e, ValueError)) == "ok"


def test_retry_waits_at_least_retry_after_and_stops_at_retry_timeout():
    clock = FakeClock()
    r = RetryMixin(clock=clock, max_retries=5, backoff_base=0.1, jitter=0, retry_timeout="10s")
    assert r._retry(Flaky(1, RateLimitError("slow down", status=429, retry_after=3.0))) == "ok"
    assert clock.sleeps == [3.0]
    with pytest.raises(RateLimitError):
        r._retry(Flaky(9, RateLimitError("slow down", status=429, retry_after=6.0)))
    assert clock.sleeps == [3.0, 6.0]  # a second 6s wait would pass the 10s budget


def test_retry_settings_are_checked():
    with pytest.raises(ValueError, match="max_retries"):
        RetryMixin(max_retries=-1)
    with pytest.raises(ValueError, match="backoff_base"):
        RetryMixin(backoff_base="soon")
    with pytest.raises(TypeError, match="retry_on"):
        RetryMixin(retry_on=3)


# -- CacheMixin ---------------------------------------------------------------------------------

def test_cache_expires_by_ttl_evicts_lru_and_counts():
    clock = FakeClock()
    c = CacheMixin(clock=clock, cache_ttl="10s", cache_max_entries=2)
    c._cache_set("a", 1)
    c._cache_set("b", None)  # a cached None is a value
    assert c._cache_get("a") == 1 and c._cache_get("b", "missing") is None
    assert c._cache_get("a") == 1  # "a" is now the most recently used
    c._cache_set("c", 3)  # full: "b" (least recently used) goes
    assert c._cache_get("b", "missing") == "missing"
    clock.advance(10.5)
    assert c._cache_get("a") is None
    stats = c._cache_stats()
    assert (stats.hits, stats.misses, stats.evictions, stats.size) == (3, 2, 1, 0)
    assert stats.hit_rate == 0.6


def test_cache_cached_computes_once_and_clear_is_not_eviction():
    c = CacheMixin(clock=FakeClock())
    calls = []
    assert c._cached("k", lambda: calls.append(1) or "v") == "v"
    assert c._cached("k", lambda: calls.append(1) or "w") == "v"
    assert calls == [1]
    c._cache_invalidate("k")
    assert c._cache_get("k") is None
    c._cache_set("x", 1)
    c._cache_clear()
    assert c._cache_stats().evictions == 0 and c._cache_stats().size == 0
    with pytest.raises(ValueError, match="cache ttl"):
        CacheMixin(cache_ttl="forever")
    with pytest.raises(ValueError, match="max_entries"):
        CacheMixin(cache_max_entries=0)


# -- SerializationMixin / FileSerializerMixin --------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "yaml", "msgpack"])
def test_serialization_round_trips_each_format(fmt):
    s = SerializationMixin()
    data = {"models": ["a", "b"], "n": 3, "ok": True, "none": None}
    assert s._deserialize(s._serialize(data, fmt), fmt) == data


def test_serialization_refuses_what_it_cannot_write_or_name():
    s = SerializationMixin()
    with pytest.raises(ValueError, match="unknown serialization format 'toml'"):
        s._serialize({}, "toml")
    with pytest.raises(TypeError):
        s._serialize({"when": object()}, "json")
    with pytest.raises(ValueError, match="not valid json"):
        s._deserialize(b"{nope", "json")
    with pytest.raises(ValueError, match="state.txt"):
        s._format_for("state.txt")


@pytest.mark.parametrize("name", ["state.json", "state.yaml", "state.yml", "state.msgpack"])
def test_file_serializer_writes_by_suffix(tmp_path, name):
    f = FileSerializerMixin()
    f._write_data(tmp_path / name, {"k": [1, 2]})
    assert f._read_data(tmp_path / name) == {"k": [1, 2]}
    assert os.listdir(tmp_path) == [name]  # no temporary file left behind


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_a_crash_mid_write_leaves_the_old_file(tmp_path, monkeypatch, where):
    f = FileSerializerMixin()
    path = tmp_path / "state.json"
    f._write_data(path, {"version": 1})

    def crash(*args, **kwargs):
        raise OSError("disk pulled out")

    if where == "write":  # the new bytes are half written when it fails
        real_fdopen = os.fdopen

        class HalfFile:
            def __init__(self, fh):
                self.fh = fh

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.fh.close()

            def write(self, data):
                self.fh.write(data[: len(data) // 2])
                self.fh.flush()
                crash()

        monkeypatch.setattr(os, "fdopen", lambda fd, mode: HalfFile(real_fdopen(fd, mode)))
    else:
        monkeypatch.setattr(os, where, crash)
    with pytest.raises(OSError, match="disk pulled out"):
        f._write_data(path, {"version": 2, "padding": "x" * 1000})
    monkeypatch.undo()
    assert f._read_data(path) == {"version": 1}
    assert os.listdir(tmp_path) == ["state.json"]


# -- RollingWindowMixin -------------------------------------------------------------------------

def test_rolling_window_mixin_reads_the_core_window_on_the_injected_clock():
    clock = FakeClock()
    w = RollingWindowMixin(clock=clock, window_size=10, window_duration="60s")
    assert w._get_rate("m") == 1.0 and w._get_score("m") == 0.0 and w._window_keys() == []  # reads store nothing
    w._record_sample("m", 0.2, True)
    w._record_sample("m", 0.4, False)
    assert w._get_rate("m") == 0.5 and w._get_error_rate("m") == 0.5
    assert w._get_average("m") == pytest.approx(0.3)
    assert w._get_score("m") == pytest.approx((0.3 * 0.4 + 0.7 * 0.2) * 0.5)
    clock.advance(30)
    w._record_sample("m", 1.0)
    assert w._get_count("m") == 3 and w._get_count("m", since="10s") == 1
    clock.advance(31)
    assert w._get_count("m") == 1 and w._get_rate("m") == 1.0
    with pytest.raises(ValueError, match="window size"):
        RollingWindowMixin(window_size=0)
    with pytest.raises(ValueError, match="window duration"):
        RollingWindowMixin(window_duration="a while")


# -- ConfigValidatorMixin -----------------------------------------------------------------------

class Validated(ConfigValidatorMixin):
    config_schema = {
        "base_url": {"type": str, "required": True, "url": True},
        "api_key": {"type": str, "required": True, "secret": True, "choices": ["only-this"]},
        "timeout": {"type": (int, float, str), "duration": True},
        "retries": {"type": int},
        "mode": {"type": str, "choices": ["fast", "safe"]},
    }


def test_config_validator_reports_every_problem_naming_the_key():
    v = Validated()
    config = {"base_url": "ftp://x", "api_key": "sk-very-secret", "timeout": "soonish", "retries": True,
              "mode": "wild"}
    problems = v._validate_config(config)
    assert problems == [
        "base_url: expected an http(s) URL, got 'ftp://x'",
        "api_key: expected one of 'only-this'",
        "timeout: expected a duration like \"30s\", got 'soonish'",
        "retries: expected int, got bool",
        "mode: expected one of 'fast', 'safe', got 'wild'",
    ]
    with pytest.raises(ConfigurationError) as info:
        v._check_config({"timeout": 5})
    assert info.value.problems == ("base_url: required, but missing", "api_key: required, but missing")
    assert "Validated" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        v._check_config(config)
    assert "sk-very-secret" not in str(info.value) and "sk-very-secret" not in repr(info.value)
    v._check_config({"base_url": "https://api.example.com/v1", "api_key": "only-this", "timeout": "30s"})
    assert v._validate_config(["not", "a", "dict"]) == ["config: expected a mapping of settings, got list"]


def test_config_validator_helpers():
    v = ConfigValidatorMixin()
    assert v._require_field({"n": 3}, "n", int) == 3
    with pytest.raises(KeyError, match="'n'"):
        v._require_field({}, "n", int)
    with pytest.raises(TypeError, match="'n': expected int, got str"):
        v._require_field({"n": "3"}, "n", int)
    assert v._validate_url("https://x.example/v1") and not v._validate_url("x.example") \
        and not v._validate_url("http://h:port")
    assert v._validate_duration("5m") == 300.0
    with pytest.raises(ValueError, match="duration"):
        v._validate_duration("5 minutes")
    with pytest.raises(TypeError, match="unknown descriptor keys"):
        v._validate_config({}, {"x": {"typ": str}})


# -- CircuitBreakerMixin ------------------------------------------------------------------------

def test_circuit_breaker_opens_fails_fast_and_recovers_by_a_trial():
    clock = FakeClock()
    b = CircuitBreakerMixin(clock=clock, failure_threshold=2, reset_timeout="30s")

    def boom():
        raise ConnectionError("down")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            b._call_with_circuit(boom)
    assert b.circuit_breaker_stats()["state"] == "open"
    with pytest.raises(CircuitOpenError) as info:
        b._call_with_circuit(lambda: "never called")
    assert info.value.retry_after == 30.0
    clock.advance(30)
    assert b._call_with_circuit(lambda: "trial") == "trial"
    assert b.circuit_breaker_stats()["state"] == "closed"


def test_circuit_breaker_half_open_takes_one_trial_and_caller_errors_do_not_count():
    clock = FakeClock()
    b = CircuitBreakerMixin(clock=clock, failure_threshold=1, reset_timeout=10)
    b.check_circuit()
    b.record_failure()
    clock.advance(10)
    b.check_circuit()  # the one trial slot
    with pytest.raises(CircuitOpenError, match="half-open"):
        b.check_circuit()
    b.release_circuit()
    with pytest.raises(KeyError):
        b._call_with_circuit(lambda: {}["x"], counts=lambda e: not isinstance(e, KeyError))
    assert b.circuit_breaker_stats()["state"] == "half_open"
    b.reset_circuit()
    assert b.circuit_breaker_stats()["state"] == "closed"
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreakerMixin(failure_threshold=0)
    with pytest.raises(ValueError, match="reset_timeout"):
        CircuitBreakerMixin(reset_timeout="later")


# -- TimeoutMixin -------------------------------------------------------------------------------

def test_deadlines_shrink_and_expire_on_the_injected_clock():
    clock = FakeClock()
    t = TimeoutMixin(clock=clock, timeout_default="10s", timeout_connect="2s")
    deadline = t._deadline()
    assert t._http_timeouts(deadline) == (2.0, 10.0)
    clock.advance(9)
    assert deadline.remaining() == 1.0 and t._http_timeouts(deadline) == (1.0, 1.0)
    clock.advance(1)
    with pytest.raises(RequestTimeoutError, match="request ran past its 10s timeout"):
        deadline.check()
    assert t.timeout_settings() == {"default": 10.0, "streaming": 60.0, "streaming_total": 300.0, "connect": 2.0}
    with pytest.raises(ValueError, match="default timeout"):
        t.configure_timeout(default="0s")


def test_stream_timeouts_check_the_first_chunk_and_the_total():
    clock = FakeClock()
    t = TimeoutMixin(clock=clock, timeout_streaming="5s", timeout_streaming_total="20s")

    def chunks(first_delay, every):
        clock.advance(first_delay)
        for i in range(5):
            yield i
            clock.advance(every)

    assert list(t._with_stream_timeout(chunks(1, 1))) == [0, 1, 2, 3, 4]
    with pytest.raises(RequestTimeoutError, match="first chunk"):
        list(t._with_stream_timeout(chunks(6, 1)))
    got = []
    with pytest.raises(RequestTimeoutError, match="total"):
        for chunk in t._with_stream_timeout(chunks(1, 8)):
            got.append(chunk)
    assert got == [0, 1, 2]


# -- StreamingCheckpointMixin --------------------------------------------------------------------

def test_checkpoint_keeps_what_was_delivered_and_a_restarted_stream_skips_it():
    clock = FakeClock()
    s = StreamingCheckpointMixin(clock=clock)
    delivered = []

    def broken():
        yield "Hello, "
        clock.advance(2)
        yield "wor"
        raise ConnectionError("cut")

    with pytest.raises(ConnectionError):
        for piece in s._checkpointed("r1", broken(), model_id="m"):
            delivered.append(piece)
    cp = s.get_checkpoint("r1")
    assert (cp.offset, cp.content_buffer, cp.chunks, cp.is_complete, cp.duration) == (10, "Hello, wor", 2, False, 2.0)
    assert s.resume_messages("r1", [{"role": "user", "content": "hi"}]) == [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello, wor"}]
    delivered += list(s.continue_stream("r1", ["Hel", "lo, w", "orld!"]))
    assert "".join(delivered) == "Hello, world!"
    assert s.get_checkpoint("r1").is_complete and s.active_checkpoints() == []
    assert s.checkpoint_stats() == {"total": 1, "active": 0, "complete": 1, "tokens_received": 3}


def test_checkpoint_limits():
    s = StreamingCheckpointMixin(clock=FakeClock(), max_buffer_chars=5, max_checkpoints=2)
    s.create_checkpoint("a")
    s.checkpoint_chunk("a", "123456")
    assert not s.get_checkpoint("a").resumable and s.get_checkpoint("a").offset == 6
    with pytest.raises(ValueError, match="max_buffer_chars"):
        s.resume_messages("a", [])
    s.create_checkpoint("b")
    s.complete_checkpoint("b")
    s.create_checkpoint("c")  # full: the finished "b" goes before the live "a"
    assert s.get_checkpoint("b") is None and s.get_checkpoint("a") is not None
    with pytest.raises(KeyError, match="'zz'"):
        s.checkpoint_chunk("zz", "x")
    with pytest.raises(ValueError, match="max_checkpoints"):
        StreamingCheckpointMixin(max_checkpoints=0)


# -- RateLimiterMixin ----------------------------------------------------------------------------

def test_token_bucket_allows_a_burst_then_paces_on_the_injected_clock():
    clock = FakeClock()
    r = RateLimiterMixin(clock=clock, rate=2, per="1s", burst=2)
    assert r._try_acquire() and r._try_acquire() and not r._try_acquire()
    assert r._acquire() == 0.5
    assert clock.sleeps == [0.5]
    clock.advance(10)
    assert r.rate_limit_stats()["tokens"] == 2.0  # refilled to the burst, not beyond
    assert r._acquire(2) == 0.0
    with pytest.raises(RateLimitError) as info:
        r._acquire(timeout="0.1s")
    assert info.value.retry_after == 0.5
    with pytest.raises(ValueError, match="burst of 2"):
        r._acquire(3)


def test_rate_limiter_obeys_the_providers_headers():
    clock = FakeClock()
    r = RateLimiterMixin(clock=clock, rate=100, per="1m")
    r._observe_rate_limit({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6s"})
    assert not r._try_acquire()
    assert r._acquire() == 6.0
    unlimited = RateLimiterMixin(clock=clock)
    assert unlimited._try_acquire()
    unlimited._observe_rate_limit({"Retry-After": "2"})
    assert not unlimited._try_acquire() and unlimited._acquire() == 2.0
    with pytest.raises(ValueError, match="rate must be"):
        RateLimiterMixin(rate=0)


# -- MetricsMixin --------------------------------------------------------------------------------

def test_metrics_count_latency_errors_and_throughput():
    clock = FakeClock()
    m = MetricsMixin(clock=clock, metrics_window="5m", throughput_period="10s")
    with m._measure("chat"):
        clock.advance(0.2)
    with pytest.raises(RuntimeError), m._measure("chat"):
        clock.advance(0.4)
        raise RuntimeError("provider said no")
    m._metrics_record("embed", 0.05)
    snap = m.metrics_snapshot()
    chat = snap["chat"]
    assert (chat.requests, chat.errors, chat.error_rate) == (2, 1, 0.5)
    assert chat.latency_min == pytest.approx(0.2) and chat.latency_max == pytest.approx(0.4)
    assert chat.latency_avg == pytest.approx(0.3) and chat.recent_error_rate == 0.5
    assert chat.throughput == pytest.approx(0.2)  # 2 requests in the last 10s
    clock.advance(11)
    later = m.metrics_snapshot()["chat"]
    assert later.throughput == 0.0 and later.requests == 2
    assert snap["embed"].requests == 1
    with pytest.raises(ValueError, match="latency|value"):
        m._metrics_record("chat", float("nan"))
    with pytest.raises(ValueError, match="throughput_period"):
        MetricsMixin(metrics_window="1s", throughput_period="1m")


# -- HttpClientMixin on loopback ----------------------------------------------------------------

class Client(HttpClientMixin):
    pass


def test_http_client_sends_the_auth_header_and_retries_a_503():
    clock = FakeClock()
    with FakeUpstream("openai", api_key=KEY, models=["m1", "m2"]) as up:
        up.script(Error(503), Error(503))
        c = Client(base_url=up.url, auth_token=KEY, clock=clock, jitter=0, headers={"X-Team": "cdk"})
        models = c._http_get("/models")
        assert [m["id"] for m in models["data"]] == ["m1", "m2"]
        assert len(up.requests) == 3 and clock.sleeps == [0.5, 1.0]
        assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in up.requests)
        assert up.requests[-1].headers["X-Team"] == "cdk"
        answer = c._http_post("/chat/completions", json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]})
        assert answer["choices"][0]["message"]["content"].startswith("Hello")
        c._close_http_client()


def test_http_client_maps_errors_and_never_shows_the_token():
    clock = FakeClock()
    with FakeUpstream("openai", api_key=KEY) as up:
        up.always(Error(503, retry_after=4))
        c = Client(base_url=up.url + "?key=" + KEY, auth_token=KEY, clock=clock, max_retries=1, jitter=0)
        with pytest.raises(InternalServerError) as info:
            c._http_get("")
        assert info.value.status == 503 and info.value.retry_after == 4.0 and clock.sleeps == [4.0]
        up.always(None)
        wrong = Client(base_url=up.url, auth_token="sk-wrong-key-0000000000", clock=clock)
        with pytest.raises(AuthenticationError) as denied:
            wrong._http_get("/models")
        assert len(up.requests) == 3  # a 401 is not retried
    for err in (info.value, denied.value):
        for text in (str(err), repr(err)):
            assert KEY not in text and "sk-wrong" not in text
    assert KEY not in repr(c) and KEY not in str(vars(c).get("_http_client"))
    dead = Client(base_url=refuse_connections(), clock=clock, max_retries=2, jitter=0)
    with pytest.raises(APIConnectionError):
        dead._http_get("/models")
    assert clock.sleeps[-2:] == [0.5, 1.0]


def test_http_client_reads_sse_lines():
    with FakeUpstream("openai", api_key=KEY, text="one two three") as up:
        c = Client(base_url=up.url, auth_token=KEY, clock=FakeClock())
        lines = list(c._http_stream("/chat/completions", json={
            "model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "hi"}]}))
        assert lines[-1] == "[DONE]"
        text = "".join(json.loads(x)["choices"][0]["delta"].get("content") or "" for x in lines[:-1])
        assert text == "one two three"
        assert up.requests[0].headers["Accept"] == "text/event-stream"


def test_iter_sse_reads_any_file_like_body():
    import io

    body = io.BytesIO(b"data: a\n\n: comment\nevent: x\ndata: b\ndata: c\n\ndata: [DONE]")
    assert list(iter_sse(body)) == ["a", "b\nc", "[DONE]"]
    with pytest.raises(TypeError, match="read1"):
        list(iter_sse(object()))


def test_http_client_refuses_bad_setup_without_echoing_secrets():
    with pytest.raises(ValueError, match="base_url must be an http"):
        Client(base_url="api.example.com")
    with pytest.raises(ValueError, match="base_url") as info:
        Client(base_url="ftp://user:sk-secret@host/")
    assert "sk-secret" not in str(info.value)
    with pytest.raises(ValueError, match="without base_url"):
        Client(auth_token=KEY)
    with pytest.raises(RuntimeError, match="_init_http_client"):
        Client()._http_get("/models")
    with pytest.raises(ValueError, match="one-line") as bad:
        Client(base_url="http://127.0.0.1:9", auth_token="sk-abc\nX-Evil: 1")
    assert "sk-abc" not in str(bad.value)


# -- the mixins together ------------------------------------------------------------------------

class Kitchen(HttpClientMixin, CacheMixin, CircuitBreakerMixin, RateLimiterMixin, MetricsMixin,
              RollingWindowMixin, TimeoutMixin, StreamingCheckpointMixin, FileSerializerMixin, ConfigValidatorMixin):
    def __init__(self, base_url, api_key, **kwargs):
        super().__init__(base_url=base_url, auth_token=api_key, cache_ttl="5m", failure_threshold=2, rate=5,
                         window_size=20, timeout_default="20s", max_checkpoints=3, **kwargs)


def test_a_class_of_many_mixins_initialises_them_all_on_one_clock():
    clock = FakeClock()
    with FakeUpstream("openai", api_key=KEY) as up:
        k = Kitchen(up.url, KEY, clock=clock)
        assert k._http_base_url == up.url and k._cache_stats().max_entries == 1024
        assert k.circuit_breaker_stats()["failure_threshold"] == 2
        assert k.rate_limit_stats()["burst"] == 5.0 and k._window_size == 20
        assert k.timeout_settings()["default"] == 20.0 and k._checkpoint_max == 3
        assert k._clock is clock and k._sleep == clock.sleep

        def list_models():
            k._acquire()
            with k._measure("models"):
                return k._call_with_circuit(k._http_get, "/models")

        assert k._cached("models", list_models)["data"][0]["id"] == "fake-model"
        assert k._cached("models", list_models)["data"][0]["id"] == "fake-model"
        assert len(up.requests) == 1 and k.metrics_snapshot()["models"].requests == 1
    names = [c.__name__ for c in Kitchen.__mro__]
    assert names.index("Clocked") > names.index("StreamingCheckpointMixin")  # one shared base, after them all
    with pytest.raises(TypeError, match="unexpected keyword argument.*'cache_tll'"):
        Kitchen("http://127.0.0.1:9", KEY, cache_tll="5m")  # a misspelt setting is not swallowed


# -- the seed's "Using Multiple Mixins Together", sync ------------------------------------------

def _python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_seeds_multiple_mixins_example_runs_sync():
    from modelmesh import cdk

    with FakeUpstream("openai", api_key=KEY, text="hi there") as up:
        scope = {"HttpClientMixin": cdk.HttpClientMixin, "CacheMixin": cdk.CacheMixin}
        exec(SEED_EXAMPLE, scope)  # noqa: S102 - our own test code
        provider = scope["CachedHttpProvider"](base_url=up.url, api_key=KEY)
        assert provider.list_models()[0]["id"] == "fake-model"
        assert provider.list_models()[0]["id"] == "fake-model"
        assert len(up.requests) == 1  # the second listing came from the cache
        request = {"model": "fake-model", "messages": [{"role": "user", "content": "hello"}]}
        assert provider.complete(dict(request))["choices"][0]["message"]["content"] == "hi there"
        chunks = list(provider.stream(dict(request)))
        assert chunks[-1] == "[DONE]"
        provider.close()
        assert provider._cache_stats().size == 0


SEED_EXAMPLE = '''
from typing import Iterator


class CachedHttpProvider(HttpClientMixin, CacheMixin):
    """Seed 000's example, sync: each mixin set up by its own _init method."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self._http_auth_token = api_key
        self._init_http_client(base_url=base_url, timeout=30.0, max_retries=3)
        self._init_cache(ttl="5m", max_entries=256)   # the seed's ttl_ms=300_000

    def list_models(self) -> list[dict]:
        cached = self._cache_get("models")
        if cached is not None:
            return cached
        models = self._http_get("/models")["data"]
        self._cache_set("models", models)
        return models

    def complete(self, request: dict) -> dict:
        return self._http_post("/chat/completions", json=request)

    def stream(self, request: dict) -> Iterator[str]:
        request["stream"] = True
        yield from self._http_stream("/chat/completions", json=request)

    def close(self) -> None:
        self._close_http_client()
        self._cache_clear()
'''


# -- docs/cdk.md: the Mixins section's examples run ----------------------------------------------

def test_the_mixins_examples_in_the_cdk_guide_run(tmp_path, monkeypatch):
    text = (DOCS / "cdk.md").read_text()
    section = text[text.index("## Mixins"):]
    blocks = _python_blocks(section)
    assert len(blocks) >= 8
    monkeypatch.chdir(tmp_path)
    with FakeUpstream("openai", api_key=KEY, models=["m1"]) as up:
        for i, block in enumerate(blocks):
            scope = {"__name__": f"cdk_doc_{i}", "BASE_URL": up.url, "API_KEY": KEY}
            exec(compile(block, f"docs/cdk.md (mixins block {i})", "exec"), scope)  # noqa: S102 - our docs


def test_import_modelmesh_does_not_import_the_mixins():
    import subprocess
    import sys

    code = "import modelmesh, sys; print(any(m.startswith('modelmesh.cdk') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_http_client_through_a_users_requests_session():
    import requests

    with FakeUpstream("openai", api_key=KEY) as up, requests.Session() as session:
        c = Client(base_url=up.url, auth_token=KEY, session=session, clock=FakeClock())
        assert c._http_get("/models")["data"][0]["id"] == "fake-model"
        assert up.requests[0].headers["Authorization"] == f"Bearer {KEY}"
