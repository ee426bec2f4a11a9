"""Errors read like the OpenAI SDK's: the official SDK and MeshClient are pointed at the same
fake upstream, given the same failure, and what they raise is compared: the class (by name
and by its place in the hierarchy), `status_code`, `code`, `type`, `param` and `body`.

With one provider and no retries the mesh has nothing to fail over to, so it must raise what
the SDK raises; the mesh's own refusals (an unknown model, every model on standby) take
the status an OpenAI-compatible server would give them."""
from __future__ import annotations

import pickle

import pytest

import modelmesh
from modelmesh import errors as E
from modelmesh.testing import Error, FakeClock, FakeUpstream, SlowFirstByte, refuse_connections

openai = pytest.importorskip("openai")

KEY = "sk-compare-0123456789abcdef"
MSG = [{"role": "user", "content": "Say hi"}]

# the SDK's exception classes, which ours must mirror by name and ancestry
SDK_NAMES = ("APIError", "APIStatusError", "APIConnectionError", "APITimeoutError", "BadRequestError",
             "AuthenticationError", "PermissionDeniedError", "NotFoundError", "ConflictError",
             "UnprocessableEntityError", "RateLimitError", "InternalServerError")


def mesh_for(url: str, timeout: str = "5s") -> modelmesh.MeshClient:
    clock = FakeClock()
    config = {
        "providers": {"up": {"connector": "openai", "config": {
            "base_url": url, "auth": {"api_key": KEY}, "timeout": timeout,
            "models": [{"id": "gpt-x", "capabilities": ["chat-completion"]}]}}},
        "routing": {"retry": {"same_model_retries": 0, "max_attempts": 1}},
    }
    return modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={})


def sdk_for(url: str, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=timeout)


def raised(call) -> BaseException:
    with pytest.raises(Exception) as info:
        call()
    return info.value


def sdk_lineage(exc: BaseException) -> list[str]:
    return [c.__name__ for c in type(exc).__mro__ if c.__name__ in SDK_NAMES]


CASES = [
    ("400", Error(400, message="Invalid value for 'temperature'.")),
    ("401", Error(401)),
    ("403", Error(403, message="Country, region, or territory not supported")),
    ("404", Error(404, code="model_not_found")),
    ("409", Error(409, message="conflict")),
    ("422", Error(422, message="unprocessable")),
    ("429-rate", Error(429, code="rate_limit_exceeded")),
    ("429-quota", Error(429, code="insufficient_quota")),
    ("500", Error(500)),
    ("503", Error(503)),
]


@pytest.mark.parametrize("step", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_an_upstream_error_raises_what_the_sdk_raises(step):
    with FakeUpstream("openai", models=["gpt-x"]) as up:
        up.always(step)
        with sdk_for(up.url) as sdk:
            theirs = raised(lambda: sdk.chat.completions.create(model="gpt-x", messages=MSG))
        with mesh_for(up.url) as mesh:
            ours = raised(lambda: mesh.chat.completions.create(model="gpt-x", messages=MSG))
        with mesh_for(up.url) as mesh:
            stream_error = raised(lambda: mesh.chat.completions.create(model="gpt-x", messages=MSG, stream=True))
    assert isinstance(theirs, openai.APIStatusError)
    assert isinstance(ours, modelmesh.ModelMeshError)
    assert sdk_lineage(ours) == sdk_lineage(theirs)
    assert (ours.status_code, ours.code, ours.type, ours.param) == \
           (theirs.status_code, theirs.code, theirs.type, theirs.param)
    # the message is the mesh's account of the request, which quotes the provider's
    assert {k: v for k, v in ours.body.items() if k != "message"} == {k: v for k, v in theirs.body.items() if k != "message"}
    assert theirs.body["message"] in ours.body["message"] == ours.message
    assert ours.response.status_code == theirs.response.status_code
    assert ours.response.json() == {"error": ours.body}
    assert ours.request_id and ours.response.headers["x-request-id"] == ours.request_id
    assert KEY not in str(ours) and KEY not in ours.response.text
    # a stream's error is raised by create() too, as the SDK does, not on the first next()
    assert type(stream_error) is type(ours) and stream_error.status_code == ours.status_code


def test_a_refused_connection_raises_api_connection_error_as_the_sdk_does():
    url = refuse_connections() + "/v1"  # (nothing listens: the path is never reached)
    with sdk_for(url) as sdk:
        theirs = raised(lambda: sdk.chat.completions.create(model="gpt-x", messages=MSG))
    with mesh_for(url) as mesh:
        ours = raised(lambda: mesh.chat.completions.create(model="gpt-x", messages=MSG))
    assert type(theirs) is openai.APIConnectionError
    assert sdk_lineage(ours) == sdk_lineage(theirs) == ["APIConnectionError", "APIError"]
    assert not hasattr(ours, "status_code")


def test_a_timeout_raises_api_timeout_error_as_the_sdk_does():
    with FakeUpstream("openai", models=["gpt-x"]) as up:
        up.always(SlowFirstByte(1.0))
        with sdk_for(up.url, timeout=0.2) as sdk:
            theirs = raised(lambda: sdk.chat.completions.create(model="gpt-x", messages=MSG))
        with mesh_for(up.url, timeout="0.2s") as mesh:
            ours = raised(lambda: mesh.chat.completions.create(model="gpt-x", messages=MSG))
    assert type(theirs) is openai.APITimeoutError
    assert sdk_lineage(ours) == sdk_lineage(theirs) == ["APITimeoutError", "APIConnectionError", "APIError"]


# -- the mesh's own refusals ---------------------------------------------------------------------

def test_an_unknown_model_is_a_404_model_not_found_as_openai_answers_it():
    with FakeUpstream("openai", models=["gpt-x"]) as up, mesh_for(up.url) as mesh:
        err = raised(lambda: mesh.chat.completions.create(model="gpt-nope", messages=MSG))
    assert isinstance(err, E.NotFoundError) and isinstance(err, E.APIStatusError)
    assert (err.status_code, err.code, err.type, err.param) == (404, "model_not_found", "invalid_request_error", "model")


def test_every_model_on_standby_is_a_503_with_retry_after():
    with FakeUpstream("openai", models=["gpt-x"]) as up, mesh_for(up.url) as mesh:
        mesh.deactivate("up/gpt-x", until=mesh._clock() + 30)
        err = raised(lambda: mesh.chat.completions.create(model="gpt-x", messages=MSG))
    assert isinstance(err, E.NoModelAvailableError) and isinstance(err, E.InternalServerError)
    assert (err.status_code, err.code, err.type) == (503, "no_model_available", "server_error")
    assert err.response.headers["retry-after"] == "30"


def test_a_mesh_budget_is_a_429_the_sdk_users_code_already_catches():
    err = E.BudgetExceededError("pool 'chat': every provider has spent its budget (up)")
    assert isinstance(err, E.RateLimitError)
    assert (err.status_code, err.code, err.type) == (429, "budget_exceeded", "insufficient_quota")


def test_every_sdk_error_name_is_ours_and_in_the_same_place():
    for name in SDK_NAMES:
        ours, theirs = getattr(modelmesh, name), getattr(openai, name)
        assert issubclass(ours, modelmesh.ModelMeshError)
        assert [c.__name__ for c in ours.__mro__ if c.__name__ in SDK_NAMES] == \
               [c.__name__ for c in theirs.__mro__ if c.__name__ in SDK_NAMES]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 529, 418])
def test_the_status_picks_the_class_the_sdk_would(status):
    sdk_class = type(openai.OpenAI(api_key="x", base_url="http://127.0.0.1:9")._make_status_error(
        "m", body=None, response=_response(status)))
    assert E.status_class(status).__name__ == sdk_class.__name__


def _response(status: int):
    import httpx

    return httpx.Response(status, request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))


def test_a_pool_on_standby_for_one_cause_raises_that_causes_class_too():
    with FakeUpstream("openai", models=["gpt-x"]) as up, mesh_for(up.url) as mesh:
        up.always(Error(401))
        first = raised(lambda: mesh.chat.completions.create(model="gpt-x", messages=MSG))
        again = raised(lambda: mesh.chat.completions.create(model="gpt-x", messages=MSG))
        sent = len(up.requests)
    assert type(first) is E.AuthenticationError and sent == 1  # the second asked nobody
    # the key is still bad: the SDK's users keep catching what they caught the first time
    assert isinstance(again, E.NoModelAvailableError) and isinstance(again, E.AuthenticationError)
    assert (again.status_code, again.code) == (401, "invalid_api_key")
    assert sdk_lineage(again) == ["AuthenticationError", "APIStatusError", "APIError"]
    copy = pickle.loads(pickle.dumps(again))
    assert type(copy) is type(again) and copy.recovery_at == again.recovery_at and copy.status_code == 401
