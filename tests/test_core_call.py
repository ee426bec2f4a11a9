"""The per-request state machine, fed events with a fake clock: failover, retries, standby."""
from __future__ import annotations

import pytest

from modelmesh import errors as E
from modelmesh._core._call import (
    Attempt,
    CallProtocolError,
    Cancelled,
    Deliver,
    Failed,
    ResponseReceived,
    StreamEnded,
    StreamOpened,
    Succeeded,
    TransportFailed,
    Wait,
)
from modelmesh._core._types import ErrorKind

from core_helpers import (
    T0,
    Clock,
    Stream,
    drive,
    err_body,
    health_of,
    make_mesh,
    member,
    ok_body,
    provider,
    provider_up,
    sse_chunks,
)


def three(**pool):
    providers = {"a": provider(["m1"]), "b": provider(["m2"]), "c": provider(["m3"])}
    base = {"capability": "chat-completion", "strategy": "priority",
            "rotation": {"selection": {"model_priority": ["a/m1", "b/m2", "c/m3"]}}}
    for k, v in pool.items():
        if k == "rotation":
            base["rotation"].update(v)
        else:
            base[k] = v
    return make_mesh(providers, {"chat": base})


def start(mesh, stream=False, model="chat", now=T0, **body):
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return mesh.start("chat", body, model=model, stream=stream, now=now)


def test_first_model_serves_and_usage_and_cost_are_counted():
    mesh = make_mesh({"a": provider([{"id": "m1", "capabilities": ["chat-completion"],
                                      "pricing": {"input_per_1m": 1.0, "output_per_1m": 2.0}}])})
    final, seen = drive(start(mesh, model="chat-completion"), {"a/m1": [200]})
    assert isinstance(final, Succeeded)
    assert (final.provider, final.model, final.prompt_tokens, final.completion_tokens) == ("a", "m1", 3, 2)
    assert final.cost == pytest.approx((3 * 1.0 + 2 * 2.0) / 1e6)
    attempt = seen[0]
    assert attempt.request.json["model"] == "m1" and attempt.request.url == "http://openai-compatible.test/v1/chat/completions"
    assert "sk-test-secret" not in repr(attempt)


def test_rate_limit_with_retry_after_fails_over_and_cools_down_exactly_that_long():
    mesh = three()
    clock = Clock()
    first = start(mesh)
    final, _ = drive(first, {"a/m1": [(429, err_body(type_="rate_limit_exceeded"), {"retry-after": "30"})], "b/m2": [200]}, clock)
    assert final.provider == "b" and [a.outcome for a in final.attempts] == ["rate_limited", "ok"]
    row = member(mesh, "a/m1", clock.t + 1)
    assert row["status"] == "standby" and row["until"] == pytest.approx(T0 + 0.1 + 30)
    # before the deadline a is skipped without being called; after it, a gets its trial request
    final, seen = drive(start(mesh, now=clock.t), {"a/m1": [200], "b/m2": [200]}, Clock(clock.t + 5))
    assert final.provider == "b"
    last = start(mesh, now=clock.t + 31)
    final, seen = drive(last, {"a/m1": [200], "b/m2": [200]}, Clock(clock.t + 31))
    assert final.provider == "a"
    assert "model_deactivated" in [e.type for e in first.drain_events()]
    assert "model_recovered" in [e.type for e in last.drain_events()]


def test_retry_limit_puts_a_model_on_standby_and_redeactivation_never_shortens():
    mesh = three(rotation={"deactivation": {"retry_limit": 2}, "recovery": {"cooldown": "60s", "initial_cooldown": "60s"}})
    clock = Clock()
    for _ in range(2):
        final, _ = drive(start(mesh, now=clock.t), {"a/m1": [500], "b/m2": [200]}, clock)
        assert final.provider == "b"
    state = health_of(mesh, "a/m1")
    assert state.reason.value == "retry_limit"
    until = state.breaker.open_until
    assert until == pytest.approx(clock.t + 60, abs=1)
    mesh.deactivate_model("a/m1", now=clock.t, until=clock.t + 5)  # shorter: must not shorten
    assert state.breaker.open_until >= until


def test_auth_failure_puts_every_model_of_the_provider_on_standby_in_every_pool():
    providers = {"a": provider(["m1", "e1"]), "b": provider(["m2"])}
    pools = {
        "chat": {"models": ["a/m1", "b/m2"], "strategy": "priority",
                 "rotation": {"selection": {"model_priority": ["a/m1"]}}},
        "other": {"models": ["a/e1", "b/m2"], "strategy": "priority",
                  "rotation": {"selection": {"model_priority": ["a/e1"]}}},
    }
    mesh = make_mesh(providers, pools)
    final, _ = drive(start(mesh), {"a/m1": [(401, err_body(type_="invalid_request_error", code="invalid_api_key"))],
                                   "b/m2": [200]})
    assert final.provider == "b"
    final, seen = drive(start(mesh, model="other"), {"a/e1": [200], "b/m2": [200]})
    assert final.provider == "b" and len(final.attempts) == 1  # a/e1 was never tried
    assert not provider_up(mesh, "a", T0 + 10_000)  # until a probe or a hand brings it back
    mesh.reactivate_provider("a", now=T0 + 1)
    final, _ = drive(start(mesh, model="other", now=T0 + 1), {"a/e1": [200], "b/m2": [200]}, Clock(T0 + 1))
    assert final.provider == "a"


def test_quota_exhausted_is_provider_standby_until_the_quota_resets():
    mesh = make_mesh({"a": provider(["m1"], quota={"reset_schedule": "daily"}), "b": provider(["m2"])},
                     {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority"}})
    body = err_body("You exceeded your current quota", type_="insufficient_quota", code="insufficient_quota")
    final, _ = drive(start(mesh), {"a/m1": [(429, body)], "b/m2": [200]})
    assert final.provider == "b"
    midnight = (T0 // 86400 + 1) * 86400
    assert mesh.snapshot(T0)["providers"]["a"]["until"] == pytest.approx(midnight)
    assert not provider_up(mesh, "a", midnight - 1) and provider_up(mesh, "a", midnight)


def test_bad_request_fails_fast_without_penalising_the_model():
    mesh = three()
    final, seen = drive(start(mesh), {"a/m1": [(400, err_body("bad 'temperature'", type_="invalid_request_error"))]})
    assert isinstance(final, Failed) and isinstance(final.error, E.BadRequestError)
    assert len(final.error.attempts) == 1
    state = health_of(mesh, "a/m1")
    assert state.consecutive_failures == 0 and state.breaker.state.value == "closed"


def test_context_length_goes_to_a_model_with_a_larger_window():
    providers = {"a": provider([{"id": "small", "context_window": 8000}]),
                 "b": provider([{"id": "mid", "context_window": 8000}]),
                 "c": provider([{"id": "big", "context_window": 200000}])}
    mesh = make_mesh(providers, {"chat": {"models": ["a/small", "b/mid", "c/big"], "strategy": "priority"}})
    body = err_body("maximum context length is 8000 tokens", type_="invalid_request_error", code="context_length_exceeded")
    final, seen = drive(start(mesh), {"a/small": [(400, body)], "b/mid": [200], "c/big": [200]})
    assert final.provider == "c"  # b/mid has the same window and is skipped
    assert health_of(mesh, "a/small").consecutive_failures == 0


def test_content_filter_fails_with_the_providers_reason_without_trying_others():
    mesh = three()
    body = err_body("flagged", type_="invalid_request_error", code="content_policy_violation")
    final, _ = drive(start(mesh), {"a/m1": [(400, body)], "b/m2": [200], "c/m3": [200]})
    assert isinstance(final.error, E.ContentFilteredError) and len(final.error.attempts) == 1
    assert "flagged" in str(final.error) and final.error.status == 400
    assert health_of(mesh, "a/m1").consecutive_failures == 0  # the prompt's fault, not the model's


def test_content_filter_failover_tries_another_model_and_reports_when_all_refuse():
    mesh = three(content_filter_failover=True)
    body = err_body("flagged", type_="invalid_request_error", code="content_policy_violation")
    final, _ = drive(start(mesh), {"a/m1": [(400, body)], "b/m2": [(400, body)], "c/m3": [(400, body)]})
    assert isinstance(final.error, E.ContentFilteredError) and len(final.error.attempts) == 3


def test_every_model_on_standby_for_errors_gets_a_last_resort_trial_of_the_soonest():
    mesh = three(rotation={"deactivation": {"retry_limit": 1}, "recovery": {"cooldown": "60s", "initial_cooldown": "60s"}})
    final, _ = drive(start(mesh), {"a/m1": [500], "b/m2": [500], "c/m3": [500]}, latency=0)
    assert isinstance(final, Failed)
    call = start(mesh, now=T0 + 10)
    final, _ = drive(call, {"a/m1": [200], "b/m2": [200], "c/m3": [200]}, Clock(T0 + 10))
    assert isinstance(final, Succeeded) and final.provider == "a"  # a went aside first: it recovers soonest
    assert [(e.model, e.how) for e in call.drain_events() if e.type == "model_recovered"] == [("a/m1", "last_resort")]


def test_every_model_barred_fails_fast_naming_each_reason_and_the_earliest_recovery():
    mesh = three()
    for ref, until in (("a/m1", T0 + 60), ("b/m2", T0 + 90), ("c/m3", None)):
        mesh.deactivate_model(ref, now=T0, until=until)
    final, _ = drive(start(mesh, now=T0 + 10), {}, Clock(T0 + 10))
    err = final.error
    assert isinstance(err, E.NoModelAvailableError)
    assert err.recovery_at == pytest.approx(T0 + 60) and err.retry_after == pytest.approx(50)
    assert "50.0s" in str(err) and "a/m1: manual until +50s" in str(err) and "c/m3: manual" in str(err)


def test_when_every_attempt_failed_the_error_names_the_telling_cause_not_the_last():
    limited = err_body("slow down", type_="rate_limit_exceeded")
    quota = err_body("You exceeded your current quota", type_="insufficient_quota", code="insufficient_quota")
    final, _ = drive(start(three()), {"a/m1": [(429, limited)], "b/m2": [(429, limited)], "c/m3": [(429, limited)]})
    assert type(final.error) is E.RateLimitError
    final, _ = drive(start(three()), {"a/m1": [500], "b/m2": [(429, limited)], "c/m3": [(429, quota)]})
    assert type(final.error) is E.InternalServerError and final.error.status_code == 503  # not a RateLimitError
    assert len(final.error.attempts) == 3


def test_every_model_on_standby_waits_when_configured():
    mesh = three(rotation={"deactivation": {"retry_limit": 1}, "recovery": {"cooldown": "20s", "initial_cooldown": "20s"}},
                 on_exhausted="wait", max_wait="30s", retry={"max_attempts": 3})
    drive(start(mesh), {"a/m1": [500], "b/m2": [500], "c/m3": [500]}, latency=0)
    clock = Clock(T0 + 5)
    final, seen = drive(start(mesh, now=clock.t), {"a/m1": [200], "b/m2": [200], "c/m3": [200]}, clock)
    waits = [a for a in seen if isinstance(a, Wait)]
    assert waits and waits[0].seconds == pytest.approx(15)
    assert isinstance(final, Succeeded) and final.provider == "a"


def test_rounds_of_retries_back_off_and_honour_retry_after():
    mesh = make_mesh({"a": provider(["m1"]), "b": provider(["m2"])},
                     {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority",
                               "rotation": {"deactivation": {"retry_limit": 10}},
                               "retry": {"max_attempts": 4, "backoff": "fixed", "base_delay": "1s", "jitter": False}}})
    final, seen = drive(start(mesh), {"a/m1": [500, 200], "b/m2": [500]})
    assert isinstance(final, Succeeded) and final.provider == "a" and len(final.attempts) == 3
    waits = [a.seconds for a in seen if isinstance(a, Wait)]
    assert waits == [1.0]


def test_max_attempts_bounds_the_request():
    mesh = three(rotation={"deactivation": {"retry_limit": 10}}, retry={"max_attempts": 2})
    final, seen = drive(start(mesh), {"a/m1": [503], "b/m2": [503], "c/m3": [200]})
    assert isinstance(final.error, E.InternalServerError) and len(final.error.attempts) == 2
    assert "a/m1" in str(final.error) or "a -> " in str(final.error) or "m1" in str(final.error)


def test_deadline_ends_the_request():
    mesh = three(rotation={"deactivation": {"retry_limit": 10}}, retry={"deadline": "1s", "max_attempts": 10})
    final, _ = drive(start(mesh), {"a/m1": [TransportFailed(kind=ErrorKind.TIMEOUT, message="read timeout")],
                                    "b/m2": [200], "c/m3": [200]}, latency=2.0)
    assert isinstance(final.error, E.APITimeoutError)


def test_connection_refused_is_a_provider_outage():
    mesh = three()
    refused = TransportFailed(kind=ErrorKind.CONNECTION, message="connection refused", connect=True)
    final, _ = drive(start(mesh), {"a/m1": [refused], "b/m2": [200]})
    assert final.provider == "b"
    assert not provider_up(mesh, "a", T0 + 1) and provider_up(mesh, "a", T0 + 61)


def test_provider_daily_budget_rotates_away_then_raises_budget_exceeded():
    priced = {"id": "m1", "capabilities": ["chat-completion"], "pricing": {"input_per_1m": 1e6, "output_per_1m": 0}}
    mesh = make_mesh({"a": provider([priced], budget={"daily_limit": 2.0})},
                     {"chat": {"models": ["a/m1"]}})
    for _ in range(1):
        final, _ = drive(start(mesh), {"a/m1": [200]})  # costs 3 USD (3 prompt tokens at 1 USD each)
        assert isinstance(final, Succeeded)
    final, _ = drive(start(mesh), {"a/m1": [200]})
    assert isinstance(final.error, E.BudgetExceededError)


def test_rate_limit_headers_rotate_before_the_limit_is_hit():
    mesh = three()
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-limit-requests": "100",
               "x-ratelimit-reset-requests": "20s"}
    final, _ = drive(start(mesh), {"a/m1": [(200, ok_body(), headers)]})
    assert final.provider == "a"
    final, seen = drive(start(mesh, now=T0 + 1), {"a/m1": [200], "b/m2": [200]}, Clock(T0 + 1))
    assert final.provider == "b" and len(final.attempts) == 1
    final, _ = drive(start(mesh, now=T0 + 25), {"a/m1": [200], "b/m2": [200]}, Clock(T0 + 25))
    assert final.provider == "a"


def test_stream_failure_before_content_fails_over_invisibly():
    mesh = three()
    cut = TransportFailed(kind=ErrorKind.CONNECTION, message="reset")
    final, seen = drive(start(mesh, stream=True), {
        "a/m1": [Stream(sse_chunks(["x"], done=False)[:1], end=cut)],  # only the role chunk, then cut
        "b/m2": [Stream(sse_chunks(["Hel", "lo"]))],
    })
    assert isinstance(final, Succeeded) and final.provider == "b"
    delivered = [a for a in seen if isinstance(a, Deliver)]
    assert {d.provider for d in delivered} == {"b"}
    text = "".join((d.chunk["choices"][0]["delta"].get("content") or "") for d in delivered if d.chunk["choices"])
    assert text == "Hello"
    roles = [d for d in delivered if d.chunk["choices"] and d.chunk["choices"][0]["delta"].get("role")]
    assert len(roles) == 1


def test_stream_failure_after_content_raises_with_the_partial_text():
    mesh = three()
    final, seen = drive(start(mesh, stream=True), {"a/m1": [Stream(sse_chunks(["Hel", "lo"], done=False))],
                                                   "b/m2": [Stream(sse_chunks(["never"]))]})
    assert isinstance(final, Failed) and isinstance(final.error, E.StreamInterruptedError)
    assert final.error.partial_text == "Hello"
    delivered = "".join(d.chunk["choices"][0]["delta"].get("content") or "" for d in seen if isinstance(d, Deliver))
    assert delivered == "Hello"  # everything the model sent reached the caller, nothing from b


def _delivered(seen):
    return "".join(d.chunk["choices"][0]["delta"].get("content") or "" for d in seen if isinstance(d, Deliver))


def test_a_broken_stream_restarts_on_another_model_and_only_the_rest_is_delivered():
    mesh = three()
    final, seen = drive(start(mesh, stream=True), {"a/m1": [Stream(sse_chunks(["Hel"], done=False))],
                                                   "b/m2": [Stream(sse_chunks(["He", "llo", " there"]))]})
    assert isinstance(final, Succeeded) and final.provider == "b"
    assert _delivered(seen) == "Hello there"  # "Hel" once, then what followed it
    second = [a for a in seen if isinstance(a, Attempt)][1]
    assert second.request.json["messages"] == [{"role": "user", "content": "hi"}]  # a clean restart


def test_a_restart_that_does_not_repeat_the_delivered_text_stops_with_it():
    mesh = three()
    final, seen = drive(start(mesh, stream=True), {"a/m1": [Stream(sse_chunks(["Hel"], done=False))],
                                                   "b/m2": [Stream(sse_chunks(["Howdy"]))]})
    assert isinstance(final.error, E.StreamInterruptedError) and final.error.partial_text == "Hel"
    assert _delivered(seen) == "Hel" and "did not repeat" in final.error.reason
    assert health_of(mesh, "b/m2", "chat").consecutive_failures == 0  # answers vary: no fault of b's


def test_a_prefill_model_continues_the_answer_from_what_was_delivered():
    providers = {"a": provider(["m1"]), "b": provider([{"id": "m2", "capabilities": ["chat-completion"], "prefill": True}])}
    mesh = make_mesh(providers, {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority"}})
    final, seen = drive(start(mesh, stream=True), {"a/m1": [Stream(sse_chunks(["Hello "], done=False))],
                                                   "b/m2": [Stream(sse_chunks([" world"]))]})
    assert isinstance(final, Succeeded) and _delivered(seen) == "Hello world"  # the space is not doubled
    second = [a for a in seen if isinstance(a, Attempt)][1]
    assert second.request.json["messages"][-1] == {"role": "assistant", "content": "Hello"}


def test_usage_chunk_reaches_the_caller_only_when_asked_for():
    mesh = three()
    usage = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
             b'"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}\n\n')
    chunks = sse_chunks(["a"])
    chunks.insert(-1, usage)
    final, seen = drive(start(mesh, stream=True), {"a/m1": [Stream(list(chunks))]})
    assert final.prompt_tokens == 4 and not any(isinstance(a, Deliver) and not a.chunk["choices"] for a in seen)
    final, seen = drive(start(mesh, stream=True, stream_options={"include_usage": True}), {"a/m1": [Stream(list(chunks))]})
    assert any(isinstance(a, Deliver) and a.chunk.get("usage") for a in seen)


def test_illegal_inputs_raise_protocol_errors():
    mesh = three()
    call = start(mesh)
    with pytest.raises(CallProtocolError):
        call.feed(StreamEnded(), T0)
    action = call.next_action(T0)
    assert isinstance(action, Attempt)
    with pytest.raises(CallProtocolError):
        call.next_action(T0)
    call.feed(Cancelled(), T0)
    assert isinstance(call.next_action(T0), Failed)
    assert health_of(mesh, "a/m1").consecutive_failures == 0


def test_unknown_model_names_get_a_suggestion():
    mesh = three()
    with pytest.raises(E.NotFoundError, match="did you mean 'chat'"):
        start(mesh, model="chta")


def test_requests_route_by_pool_capability_reference_or_bare_model_id():
    providers = {"a": provider(["gpt-4.1"]), "b": provider(["gpt-4.1", "meta-llama/llama-3.1-8b"])}
    mesh = make_mesh(providers)
    assert {m.ref for m in mesh.resolve("chat-completion", now=T0).members} == \
        {"a/gpt-4.1", "b/gpt-4.1", "b/meta-llama/llama-3.1-8b"}
    assert [m.ref for m in mesh.resolve("b/meta-llama/llama-3.1-8b", now=T0).members] == ["b/meta-llama/llama-3.1-8b"]
    assert {m.ref for m in mesh.resolve("gpt-4.1", now=T0).members} == {"a/gpt-4.1", "b/gpt-4.1"}
    final, seen = drive(start(mesh, model="b/meta-llama/llama-3.1-8b"), {"b/meta-llama/llama-3.1-8b": [200]})
    assert seen[0].request.json["model"] == "meta-llama/llama-3.1-8b"


def test_route_returns_a_decision_with_its_fallback_chain():
    mesh = three()
    d = mesh.route("chat", now=T0)
    assert (d.provider_id, d.model_id, d.pool_id) == ("a", "m1", "chat")
    assert d.fallback_chain == ("b/m2", "c/m3")


def test_same_model_retries_back_off_on_the_same_model_first():
    mesh = three(retry={"same_model_retries": 1, "backoff": "fixed", "base_delay": "2s", "jitter": False},
                 rotation={"deactivation": {"retry_limit": 10}})
    final, seen = drive(start(mesh), {"a/m1": [503, 200], "b/m2": [200]})
    assert final.provider == "a" and len(final.attempts) == 2
    assert [a.seconds for a in seen if isinstance(a, Wait)] == [2.0]


@pytest.mark.parametrize("scope,expected", [("same-model", ["a/m1", "a/m1"]), ("same-provider", ["a/m1", "a/m9", "a/m1"])])
def test_retry_scope_restricts_where_retries_go(scope, expected):
    mesh = make_mesh({"a": provider(["m1", "m9"]), "b": provider(["m2"])},
                     {"chat": {"models": ["a/m1", "a/m9", "b/m2"], "strategy": "priority",
                               "rotation": {"deactivation": {"retry_limit": 10}},
                               "retry": {"scope": scope, "max_attempts": len(expected), "backoff": "fixed",
                                         "base_delay": "1s", "jitter": False}}})
    final, seen = drive(start(mesh), {"a/m1": [500], "a/m9": [500], "b/m2": [200]})
    assert isinstance(final, Failed)
    assert [a.ref for a in seen if isinstance(a, Attempt)] == expected


def test_retry_after_longer_than_allowed_ends_the_request_instead_of_sleeping():
    mesh = make_mesh({"a": provider(["m1"])}, {"chat": {"models": ["a/m1"], "retry": {"max_retry_after": "10s"},
                                                       "rotation": {"deactivation": {"retry_limit": 10}}}})
    final, seen = drive(start(mesh), {"a/m1": [(503, err_body(), {"retry-after": "120"})]})
    assert isinstance(final.error, E.InternalServerError) and not any(isinstance(a, Wait) for a in seen)


def test_a_vendor_that_cannot_express_the_request_is_skipped_without_penalty():
    providers = {"a": provider(["claude"], connector="anthropic"), "b": provider(["m2"])}
    mesh = make_mesh(providers, {"chat": {"models": ["a/claude", "b/m2"], "strategy": "priority"}})
    final, seen = drive(start(mesh, n=2), {"b/m2": [200]})
    assert final.provider == "b" and final.attempts[0].outcome == "bad_request"
    assert health_of(mesh, "a/claude").consecutive_failures == 0


def test_model_not_found_takes_only_that_model_out():
    mesh = three()
    final, _ = drive(start(mesh), {"a/m1": [(404, err_body("no such model", type_="invalid_request_error",
                                                           code="model_not_found"))],
                                    "b/m2": [200]})
    assert final.provider == "b"
    state = health_of(mesh, "a/m1")
    assert state.reason.value == "model_not_found" and provider_up(mesh, "a", T0 + 1)


def test_a_failed_trial_sends_the_model_back_to_standby_for_another_cooldown():
    mesh = three(rotation={"deactivation": {"retry_limit": 1}, "recovery": {"cooldown": "10s"}})
    drive(start(mesh), {"a/m1": [500], "b/m2": [200]})
    clock = Clock(T0 + 11)
    final, _ = drive(start(mesh, now=clock.t), {"a/m1": [500], "b/m2": [200]}, clock)
    assert final.provider == "b" and [a.outcome for a in final.attempts] == ["server_error", "ok"]
    assert health_of(mesh, "a/m1").breaker.open_until == pytest.approx(clock.t - 0.1 + 10, abs=0.2)


def test_a_stream_input_to_a_non_streaming_call_is_a_protocol_error():
    mesh = three()
    call = start(mesh)
    call.next_action(T0)
    with pytest.raises(CallProtocolError, match="non-streaming"):
        call.feed(StreamOpened(headers={}), T0)
    call.feed(ResponseReceived(status=200, body=ok_body()), T0)
    assert isinstance(call.next_action(T0), Succeeded)
    stream = start(mesh, stream=True)
    stream.next_action(T0)
    with pytest.raises(CallProtocolError, match="fed as StreamOpened"):
        stream.feed(ResponseReceived(status=200, body=ok_body()), T0)


def test_cancelling_a_stream_frees_the_trial_slot_without_a_verdict():
    mesh = three(rotation={"deactivation": {"retry_limit": 1}, "recovery": {"cooldown": "10s"}})
    drive(start(mesh), {"a/m1": [500], "b/m2": [200]})
    call = start(mesh, stream=True, now=T0 + 11)
    assert call.next_action(T0 + 11).ref == "a/m1"  # the half-open trial
    assert mesh.route("chat", now=T0 + 11).provider_id == "b"  # its only trial slot is taken
    call.feed(Cancelled(), T0 + 11)
    assert mesh.route("chat", now=T0 + 11).provider_id == "a"


def test_manual_deactivation_and_status_snapshot():
    mesh = three()
    mesh.deactivate_model("a/m1", now=T0)
    snap = mesh.snapshot(T0)
    row = {r["model"]: r for r in snap["pools"]["chat"]}["a/m1"]
    assert row["status"] == "standby" and row["reason"] == "manual" and row["until"] is None
    mesh.reactivate_model("a/m1", now=T0)
    assert mesh.route("chat", now=T0).provider_id == "a"
    with pytest.raises(E.NotFoundError):
        mesh.deactivate_model("zz/none", now=T0)
    with pytest.raises(E.NotFoundError):
        mesh.reactivate_provider("zz", now=T0)


def test_a_request_timeout_caps_the_pool_deadline():
    from modelmesh._core._mesh import RoutingOptions

    mesh = three(rotation={"deactivation": {"retry_limit": 10}}, retry={"deadline": "60s", "max_attempts": 10})
    call = mesh.start("chat", {"messages": [{"role": "user", "content": "hi"}]}, model="chat", now=T0,
                      options=RoutingOptions(timeout=1.0))
    slow = TransportFailed(kind=ErrorKind.TIMEOUT, message="read timeout")
    final, _ = drive(call, {"a/m1": [slow], "b/m2": [200], "c/m3": [200]}, latency=2.0)
    assert isinstance(final.error, E.APITimeoutError)


def test_a_resume_that_finds_no_model_still_raises_with_the_partial_text():
    mesh = three(stream_resume=True, retry={"max_attempts": 2})
    final, _ = drive(start(mesh, stream=True), {"a/m1": [Stream(sse_chunks(["Hel"], done=False))], "b/m2": [500]})
    assert isinstance(final.error, E.StreamInterruptedError) and final.error.partial_text == "Hel"


def test_waiting_for_a_recovery_tries_the_recovered_model_without_another_backoff():
    mesh = three(rotation={"deactivation": {"retry_limit": 1}, "recovery": {"cooldown": "20s", "initial_cooldown": "20s"}},
                 on_exhausted="wait", max_wait="30s", retry={"max_attempts": 4})
    final, seen = drive(start(mesh), {"a/m1": [500, 200], "b/m2": [500], "c/m3": [500]}, latency=0)
    assert isinstance(final, Succeeded) and final.provider == "a"
    assert [a.seconds for a in seen if isinstance(a, Wait)] == [pytest.approx(20)]


def test_malformed_success_bodies_count_toward_the_retry_limit():
    mesh = three(rotation={"deactivation": {"retry_limit": 2}})
    for _ in range(2):
        drive(start(mesh), {"a/m1": [(200, b"{not json")], "b/m2": [200]})
    assert health_of(mesh, "a/m1").reason.value == "retry_limit"


def test_anthropic_version_comes_from_the_provider_api_version():
    mesh = make_mesh({"a": provider(["claude"], connector="anthropic", api_version="2099-01-01")},
                     {"chat": {"models": ["a/claude"]}})
    attempt = start(mesh).next_action(T0)
    assert attempt.request.headers["anthropic-version"] == "2099-01-01"
