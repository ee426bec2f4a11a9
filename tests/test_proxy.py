"""`modelmesh serve` as a real process, driven by the official openai SDK (sync, streaming,
async) and by raw HTTP: answers, failover, the SDK's own exceptions from our error bodies,
malformed requests, keys, the access log. One server for the module; each test has its
own pool (and upstreams), so no test depends on the health another one left."""
from __future__ import annotations

import asyncio
import json

import openai
import pytest

from modelmesh.testing import CutStream, Error, FakeUpstream

from proxy_helpers import MASTER, UPSTREAM_KEY, provider, serving, write_config

MSG = [{"role": "user", "content": "Say hi"}]


@pytest.fixture(scope="module")
def ups():
    with FakeUpstream("openai", name="good", models=["gpt-x"]) as good, \
            FakeUpstream("openai", name="primary", models=["gpt-x"]) as primary, \
            FakeUpstream("openai", name="fallback", models=["gpt-x"]) as fallback, \
            FakeUpstream("openai", name="sprimary", models=["gpt-x"]) as sprimary, \
            FakeUpstream("openai", name="sfallback", models=["gpt-x"]) as sfallback, \
            FakeUpstream("openai", name="limited", models=["gpt-x"]) as limited, \
            FakeUpstream("openai", name="refused", models=["gpt-x"]) as refused, \
            FakeUpstream("openai", name="cut", models=["gpt-x"]) as cut:
        yield {"good": good, "primary": primary, "fallback": fallback, "sprimary": sprimary,
               "sfallback": sfallback, "limited": limited, "refused": refused, "cut": cut}


@pytest.fixture(scope="module")
def server(ups, tmp_path_factory):
    def pool(*names):
        order = [f"{n}/gpt-x" for n in names]
        return {"models": order, "strategy": "priority", "rotation": {"selection": {"model_priority": order}}}

    path = write_config(tmp_path_factory.mktemp("proxy") / "mesh.json",
                        {name: provider(up) for name, up in ups.items()},
                        {"chat": pool("good"), "failover": pool("primary", "fallback"),
                         "sfailover": pool("sprimary", "sfallback"), "limited": pool("limited"),
                         "refused": pool("refused"), "cut": pool("cut")},
                        proxy={"max_body_bytes": 4096, "model_aliases": {"gpt-4o": "chat"}})
    with serving(path) as served:
        yield served


@pytest.fixture
def client(server):
    with openai.OpenAI(api_key=MASTER, base_url=server.base_url, max_retries=0) as c:
        yield c


def test_the_sdk_gets_a_complete_answer_and_who_served_it(client, ups):
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=MSG)
    r = raw.parse()
    assert r.choices[0].message.content == "Hello from good" and r.usage.total_tokens > 0
    assert raw.headers["x-modelmesh-provider"] == "good" and raw.headers["x-modelmesh-pool"] == "chat"
    assert raw.headers["x-request-id"]
    sent = ups["good"].requests[-1]
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"  # the provider's key, not the proxy's


def test_a_stream_reaches_the_sdk_as_sse(client):
    with client.chat.completions.create(model="chat", messages=MSG, stream=True) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello from good"


def test_the_async_sdk_works_the_same(server):
    async def main():
        async with openai.AsyncOpenAI(api_key=MASTER, base_url=server.base_url, max_retries=0) as c:
            one = await c.chat.completions.create(model="chat", messages=MSG)
            stream = await c.chat.completions.create(model="chat", messages=MSG, stream=True)
            text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
            return one.choices[0].message.content, text

    assert asyncio.run(main()) == ("Hello from good", "Hello from good")


def test_embeddings_and_models(client):
    e = client.embeddings.create(model="chat", input=["a", "b"])  # base64 by default in the SDK, decoded by it
    assert len(e.data) == 2 and len(e.data[0].embedding) > 0 and isinstance(e.data[0].embedding[0], float)
    ids = {m.id for m in client.models.list()}
    assert {"chat", "failover", "good/gpt-x"} <= ids
    assert client.models.retrieve("good/gpt-x").owned_by == "good"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found"


def test_a_model_alias_names_the_pool_it_means(client):
    r = client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert r.choices[0].message.content == "Hello from good"


def test_failover_through_the_proxy_the_sdk_sees_complete_answers(client, ups):
    ups["primary"].script(Error(503))
    raw = client.chat.completions.with_raw_response.create(model="failover", messages=MSG)
    assert raw.parse().choices[0].message.content == "Hello from fallback"
    assert raw.headers["x-modelmesh-attempts"] == "2"
    assert len(ups["primary"].requests) == 1 and len(ups["fallback"].requests) == 1


def test_a_stream_fails_over_before_its_first_chunk(client, ups):
    ups["sprimary"].script(Error(429, retry_after=30))
    with client.chat.completions.create(model="sfailover", messages=MSG, stream=True) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello from sfallback"


def test_a_rate_limit_everywhere_is_the_sdks_rate_limit_error(client, ups):
    ups["limited"].always(Error(429, retry_after=7))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="limited", messages=MSG)
    assert info.value.status_code == 429 and info.value.response.headers.get("retry-after")
    assert info.value.response.headers["x-request-id"]


def test_an_upstream_refusing_our_key_is_an_api_status_error_without_the_key(client, ups):
    ups["refused"].always(Error(401, code="invalid_api_key"))
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="refused", messages=MSG)
    assert info.value.status_code >= 400
    assert UPSTREAM_KEY not in json.dumps(info.value.body) and UPSTREAM_KEY not in info.value.response.text


def test_a_stream_cut_after_content_ends_with_openais_error_event(client, ups):
    ups["cut"].always(CutStream(after_chunks=2))
    with pytest.raises(openai.APIError), client.chat.completions.create(model="cut", messages=MSG, stream=True) as stream:
        for _ in stream:
            pass


def test_no_key_and_a_wrong_key_are_the_sdks_authentication_error(server):
    for key in ("sk-wrong-key-0123456789", MASTER + "x", MASTER[:-1]):
        with openai.OpenAI(api_key=key, base_url=server.base_url, max_retries=0) as c, \
                pytest.raises(openai.AuthenticationError) as info:
            c.chat.completions.create(model="chat", messages=MSG)
        assert info.value.code == "invalid_api_key" and key not in info.value.response.text
    status, headers, body = server.request("GET", "/v1/models")
    assert status == 401 and json.loads(body)["error"]["message"].startswith("You didn't provide an API key")
    assert headers["x-request-id"].startswith("req_")


AUTH = {"Authorization": f"Bearer {MASTER}"}
JSON_AUTH = {**AUTH, "Content-Type": "application/json"}


def error_of(answer):
    status, headers, body = answer
    assert headers["content-type"] == "application/json" and headers["x-request-id"]
    return status, json.loads(body)["error"]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "says"), [
    ("POST", "/v1/chat/completions", b"{not json", JSON_AUTH, 400, "could not parse the JSON"),
    ("POST", "/v1/chat/completions", b"[1, 2]", JSON_AUTH, 400, "must be a JSON object"),
    ("POST", "/v1/chat/completions", json.dumps({"messages": MSG}).encode(), JSON_AUTH, 400, "model parameter"),
    ("POST", "/v1/chat/completions", b"{}", {**AUTH, "Content-Type": "text/plain"}, 415, "application/json"),
    ("POST", "/v1/chat/completions", b"{}", AUTH, 415, "application/json"),
    ("POST", "/v1/chat/completions", b"x" * 5000, JSON_AUTH, 413, "limit of 4096 bytes"),
    ("GET", "/v1/chat/completions", None, AUTH, 405, "use POST"),
    ("DELETE", "/v1/models", None, AUTH, 405, "use GET"),
    ("GET", "/v1/nothing-here", None, AUTH, 404, "Invalid URL"),
    ("GET", "/admin", None, AUTH, 404, "Invalid URL"),
    ("POST", "/health", b"", AUTH, 405, "use GET"),
])
def test_a_malformed_request_is_a_4xx_in_openais_shape(server, method, path, body, headers, status, says):
    got, error = error_of(server.request(method, path, body, headers))
    assert got == status and says in error["message"] and error["type"] == "invalid_request_error"


def test_a_body_with_no_length_is_read_up_to_the_limit_only(server):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        # one byte over the 4096 limit: the proxy reads the whole body before it answers, so no
        # unread bytes make the server's close a reset that could beat the answer to a busy client
        conn.request("POST", "/v1/chat/completions", body=iter([b"x" * 2048, b"x" * 2049]), headers=JSON_AUTH,
                     encode_chunked=True)
        r = conn.getresponse()
        assert r.status == 413 and b"request_too_large" in r.read()
    finally:
        conn.close()


def test_health_and_ready_need_no_key(server):
    status, _, body = server.request("GET", "/health")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, _, body = server.request("GET", "/ready")
    assert status in (200, 503)  # pools that earlier tests put on standby make it 503, with reasons
    ready = json.loads(body)
    assert ready["pools"]["chat"] == 1
    if status == 503:
        assert all("has no model available" in r for r in ready["reasons"])


def test_the_access_log_has_the_routing_outcome_and_no_secret(server, client, ups):
    client.chat.completions.create(model="chat", messages=MSG)
    ups["primary"].script(Error(500))
    ups["fallback"].script(Error(500))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="failover", messages=MSG)
    with client.chat.completions.create(model="chat", messages=MSG, stream=True) as stream:
        list(stream)
    out = server.stdout
    assert MASTER not in out and UPSTREAM_KEY not in out and MASTER not in server.stderr
    lines = server.access_log()
    served = [r for r in lines if r["op"] == "chat" and r["status"] == 200 and r["requested"] == "chat"]
    assert any(r["stream"] for r in served) and any(not r["stream"] for r in served)
    for r in served:
        assert (r["pool"], r["provider"], r["model"], r["attempts"]) == ("chat", "good", "gpt-x", 1)
        assert r["latency_ms"] > 0 and r["prompt_tokens"] > 0 and "cost" in r
    failed = [r for r in lines if r["requested"] == "failover" and r["status"] >= 500]
    assert failed and failed[-1]["error"] == "InternalServerError" and failed[-1]["attempts"] >= 1
    assert {r["status"] for r in lines} >= {200, 401, 404, 413, 415}
