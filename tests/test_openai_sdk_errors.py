"""Errors through modelmesh.openai.OpenAI are the openai SDK's own exception types, with the
status, body, code and headers the mesh's error answer carries; a request no upstream
answered at all is the SDK's connection or timeout error. Plus the wire module's error
mapping on its own (it is shared with the proxy)."""
from __future__ import annotations

import json

import httpx
import openai
import pytest
from openai_sdk_helpers import MSG, chat_requests, config, fakes, key, sdk

import modelmesh
from modelmesh import _wire_openai as wire
from modelmesh.testing import Error, Refuse, Reply, SlowFirstByte, refuse_connections

# upstream status -> (the SDK's exception, the status the mesh answers with): every model failed
# the same way, so the mesh's error is the one the SDK raises for that status.
CASES = [
    (400, openai.BadRequestError, 400),
    (401, openai.AuthenticationError, 401),
    (403, openai.PermissionDeniedError, 403),
    (404, openai.NotFoundError, 404),
    (409, openai.ConflictError, 409),
    (422, openai.UnprocessableEntityError, 422),
    (429, openai.RateLimitError, 429),
    (500, openai.InternalServerError, 500),
    (503, openai.InternalServerError, 503),
]


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
@pytest.mark.parametrize(("upstream", "sdk_error", "status"), CASES, ids=[str(c[0]) for c in CASES])
def test_an_upstream_error_is_the_sdks_exception_raised_from_create(upstream, sdk_error, status, stream):
    with fakes("alpha") as (a,):
        a.always(Error(upstream))
        client, _ = sdk(config(a))
        with client, pytest.raises(sdk_error) as info:
            client.chat.completions.create(model="chat", messages=MSG, stream=stream)  # a stream raises here too
    err = info.value
    assert type(err) is sdk_error and err.status_code == status == err.response.status_code
    assert set(err.body) == {"message", "type", "param", "code"}
    assert "alpha/gpt-x -> " in err.message and f" {upstream}" in err.message  # what was tried, and its answer
    assert err.response.headers["x-modelmesh-attempts"] == "1"
    assert err.response.headers["x-modelmesh-provider"] == "alpha"
    assert len(chat_requests(a)) == 1  # one mesh attempt; the SDK did not retry


def test_a_spent_quota_upstream_is_a_rate_limit_error_with_code_insufficient_quota():
    with fakes("alpha") as (a,):
        a.always(Error(429, code="insufficient_quota"))
        client, _ = sdk(config(a))
        with client, pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="chat", messages=MSG)
    assert info.value.status_code == 429 and info.value.code == "insufficient_quota"
    assert info.value.type == "insufficient_quota"


def test_a_rate_limit_names_its_code_and_says_when_to_come_back():
    with fakes("alpha") as (a,):
        a.always(Error(429, retry_after=7))
        client, _ = sdk(config(a))
        with client, pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="chat", messages=MSG)
    assert info.value.code == "rate_limit_exceeded" and info.value.type == "requests"
    assert info.value.response.headers["retry-after"] == "7"


def test_our_own_budget_is_a_rate_limit_error_of_type_insufficient_quota_code_budget_exceeded():
    with fakes("alpha") as (a,):
        a.always(Reply(usage=(10, 5)))
        client, _ = sdk(config(a, pricing={"input_per_1m": 1000.0, "output_per_1m": 1000.0},
                               budget={"daily_limit": 0.001}))
        with client:
            client.chat.completions.create(model="chat", messages=MSG)
            with pytest.raises(openai.RateLimitError) as info:
                client.chat.completions.create(model="chat", messages=MSG)
    assert info.value.code == "budget_exceeded" and info.value.type == "insufficient_quota"
    assert "budget" in info.value.message
    assert info.value.response.headers["x-modelmesh-attempts"] == "0"
    assert len(chat_requests(a)) == 1  # refused before anything was sent


def test_a_pool_on_standby_by_hand_is_503_with_retry_after_and_recovers_by_the_clock():
    with fakes("alpha") as (a,):
        client, clock = sdk(config(a))
        with client:
            client.mesh.deactivate("alpha/gpt-x", until=clock() + 30)
            with pytest.raises(openai.InternalServerError) as info:
                client.chat.completions.create(model="chat", messages=MSG)
            assert info.value.status_code == 503 and info.value.code == "no_model_available"
            assert info.value.response.headers["retry-after"] == "30"
            assert info.value.response.headers["x-modelmesh-attempts"] == "0"
            clock.advance(31)
            assert client.chat.completions.create(model="chat", messages=MSG).choices[0].message.content
    assert len(chat_requests(a)) == 1


def test_an_unknown_pool_or_model_is_not_found_model_not_found():
    with fakes("alpha") as (a,):
        client, _ = sdk(config(a))
        with client, pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(model="no-such-pool", messages=MSG)
    assert info.value.code == "model_not_found" and info.value.param == "model"
    assert "no-such-pool" in info.value.message and a.requests == []


def test_a_missing_model_or_a_body_that_is_no_object_is_a_bad_request_error_before_anything_is_sent():
    with fakes("alpha") as (a,):
        client, _ = sdk(config(a))
        with client:
            with pytest.raises(openai.BadRequestError) as no_model:
                client.chat.completions.create(model="", messages=MSG)
            with pytest.raises(openai.BadRequestError) as no_object:
                client.post("/chat/completions", cast_to=object, body=["not", "an", "object"])
    assert no_model.value.param == "model" and "model parameter" in no_model.value.message
    assert "JSON object" in no_object.value.message
    assert a.requests == []


def test_refused_connections_are_the_sdks_connection_error_with_the_mesh_error_as_cause():
    with fakes("alpha") as (a,):
        cfg = config(a)
        cfg["providers"]["alpha"]["config"]["base_url"] = refuse_connections() + "/v1"
        client, _ = sdk(cfg)
        with client, pytest.raises(openai.APIConnectionError) as info:
            client.chat.completions.create(model="chat", messages=MSG)
    assert type(info.value) is openai.APIConnectionError  # not its APITimeoutError subclass
    mesh_error = info.value.__cause__.__cause__
    assert isinstance(mesh_error, modelmesh.ModelMeshError) and "connection refused" in str(mesh_error)


def test_a_reset_connection_is_a_connection_error_too():
    with fakes("alpha") as (a,):
        a.always(Refuse())
        client, _ = sdk(config(a))
        with client, pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="chat", messages=MSG, stream=True)


def test_an_upstream_that_never_answers_in_time_is_the_sdks_timeout_error():
    with fakes("alpha") as (a,):
        a.always(SlowFirstByte(1.0))
        client, _ = sdk(config(a, timeout="0.2s"))
        with client, pytest.raises(openai.APITimeoutError) as info:
            client.chat.completions.create(model="chat", messages=MSG)
    assert isinstance(info.value.__cause__.__cause__, modelmesh.ModelMeshError)


def test_a_timeout_on_one_model_and_an_http_error_on_another_is_an_http_status():
    with fakes("alpha", "beta") as (a, b):
        a.always(SlowFirstByte(1.0))
        b.always(Error(503))
        client, _ = sdk(config(a, b, timeout="0.2s"))
        with client, pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="chat", messages=MSG)
    assert info.value.status_code == 503 and info.value.response.headers["x-modelmesh-attempts"] == "2"


def test_no_secret_reaches_an_error_its_body_or_its_headers():
    with fakes("alpha") as (a,):
        secret = key("alpha")
        a.always(Error(401, message=f"Incorrect API key provided: {secret}. Check it."))
        client, _ = sdk(config(a))
        with client, pytest.raises(openai.AuthenticationError) as info:
            client.chat.completions.create(model="chat", messages=MSG)
    err = info.value
    shown = [str(err), repr(err), str(err.body), err.response.text, str(dict(err.response.headers))]
    assert "Incorrect API key provided" in str(err)  # the upstream's words are there ...
    assert not [s for s in shown if secret in s or secret[:12] in s]  # ... its echo of the key is not


def test_a_pool_on_standby_for_a_rejected_key_keeps_raising_the_sdks_authentication_error():
    with fakes("alpha") as (a,):
        a.always(Error(401))
        client, _ = sdk(config(a))
        with client:
            with pytest.raises(openai.AuthenticationError):
                client.chat.completions.create(model="chat", messages=MSG)
            with pytest.raises(openai.AuthenticationError) as info:
                client.chat.completions.create(model="chat", messages=MSG)
    assert info.value.status_code == 401 and info.value.response.headers["x-modelmesh-attempts"] == "0"
    assert len(chat_requests(a)) == 1  # the provider is on standby: the second asked nobody


# -- the wire module's error mapping (shared with the proxy) -----------------------------------------

@pytest.mark.parametrize(("exc", "status"), [
    (modelmesh.ConflictError("conflict"), 409),
    (modelmesh.InternalServerError("upstream", status=500), 500),
    (modelmesh.InternalServerError("pool", status_code=503), 503),
    (modelmesh.BudgetExceededError("spent"), 429),
    (modelmesh.InvalidArgumentError("bad"), 400),
    (modelmesh.APITimeoutError("late"), 504),                     # no status of its own: a gateway timeout
    (modelmesh.APIConnectionError("refused"), 502),
    (modelmesh.StreamInterruptedError("cut", status=200), 502),   # never a success status for an error
    (modelmesh.InternalError("bug"), 500),
    (modelmesh.ModelMeshError("other"), 500),
])
def test_error_status_is_the_errors_status_code_else_its_class(exc, status):
    assert wire.error_status(exc) == status
    answer = wire.wire_error(exc)
    assert answer.status == status and b'"error":{"message":' in answer.body


def test_an_error_answer_carries_the_hierarchys_body_and_headers_and_names_the_last_model_tried():
    rec = modelmesh.AttemptRecord
    exc = modelmesh.InternalServerError("every attempt failed", status_code=503, retry_after=2.5, request_id="mm-7",
                                        attempts=[rec(provider="a", model="m1", outcome="server_error", status=500),
                                                  rec(provider="b", model="m2", outcome="timeout")])
    answer = wire.wire_error(exc)
    headers = dict(answer.headers)
    assert headers["retry-after"] == "3" and headers["x-request-id"] == "mm-7"
    assert (headers["x-modelmesh-provider"], headers["x-modelmesh-model"], headers["x-modelmesh-attempts"]) == ("b", "m2", "2")
    body = json.loads(answer.body)["error"]
    assert body == {"message": str(exc), "type": "server_error", "param": None, "code": None}
    assert exc.body == {**body, "message": exc.message}  # the same fields as the error's own body


def test_an_error_answer_is_the_sdks_exception_for_its_status_code():
    request = httpx.Request("POST", "http://modelmesh.invalid/v1/chat/completions")
    answer = wire.wire_error(modelmesh.ConflictError("conflict", code="busy"))
    response = httpx.Response(answer.status, headers=answer.headers, content=answer.body, request=request)
    with openai.OpenAI(api_key="unused", base_url="http://modelmesh.invalid/v1") as client:
        err = client._make_status_error_from_response(response)
    assert type(err) is openai.ConflictError and err.status_code == 409 and err.code == "busy"


def test_no_answer_is_for_connection_and_timeout_errors_only():
    assert wire.no_answer(modelmesh.APITimeoutError("late")) == "timeout"
    assert wire.no_answer(modelmesh.APIConnectionError("refused")) == "connection"
    assert wire.no_answer(modelmesh.InternalServerError("answered", status=500)) is None
    assert wire.no_answer(modelmesh.StreamInterruptedError("cut")) is None
