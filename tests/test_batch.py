"""Batches end to end over loopback: a local batch of 1,000 requests with failover per item,
bounded concurrency, progress and cancel; provider batches through OpenAI's Batch API and
Anthropic's Message Batches on the fakes, polled with a fake clock; and the refusals."""
from __future__ import annotations

import asyncio
import json
import re
import threading
import time

import pytest

import modelmesh
from modelmesh import errors as E
from modelmesh._core._batch import TERMINAL, TRANSITIONS, BatchStateError, Status, next_status
from modelmesh.router import CompletionRequest, Router, RoutingOptions
from modelmesh.testing import Error, FakeClock, FakeUpstream, Reply

KEY_A, KEY_B = "sk-batch-alpha-0123456789", "sk-ant-batch-beta-0123456789"
CHAT = "/v1/chat/completions"


def config(a, b, *, batch=(True, True), b_style="anthropic"):
    return {"providers": {
        "a": {"connector": "openai", "config": {"base_url": a.url, "auth": {"api_key": KEY_A}, "models": ["gpt-x"],
                                                 "infrastructure": {"batch": batch[0]}}},
        "b": {"connector": b_style, "config": {"base_url": b.url, "auth": {"api_key": KEY_B},
                                                "models": [{"id": "claude-x", "capabilities": ["chat-completion"]}],
                                                "infrastructure": {"batch": batch[1]}}}},
        "pools": {"chat": {"capability": "chat-completion", "strategy": "priority",
                           "rotation": {"selection": {"model_priority": ["a/gpt-x", "b/claude-x"]},
                                        "deactivation": {"retry_limit": 100000}}}},
        "routing": {"retry": {"same_model_retries": 0}}}


def lines(n, model="chat"):
    return [{"custom_id": f"item-{i}", "method": "POST", "url": CHAT,
             "body": {"model": model, "messages": [{"role": "user", "content": f"question {i}"}]}} for i in range(n)]


def number(req):
    found = re.search(r"question (\d+)", json.dumps(req.json)) if req.json else None
    return int(found.group(1)) if found else None


def every(n, step):
    """A step for the items whose number is a multiple of `n`; the rest get a short real reply."""
    return lambda r: step if number(r) is not None and number(r) % n == 0 else Reply(delay=0.002)


@pytest.fixture
def ups():
    with FakeUpstream("openai", name="alpha", models=["gpt-x"], api_key=KEY_A) as a, \
            FakeUpstream("anthropic", name="beta", models=["claude-x"], api_key=KEY_B) as b:
        yield a, b


@pytest.fixture
def clock():
    return FakeClock()


def client_for(a, b, clock, **kw):
    return modelmesh.MeshClient(config(a, b, **kw), environ={}, clock=clock, sleep=clock.sleep)


# -- local batches ---------------------------------------------------------------------------------

def test_a_thousand_requests_each_answered_or_failed_with_its_reason(ups, clock):
    a, b = ups
    # 10% of the first model's answers fail (503): those fail over to the second model; every
    # 50th fails there too (500), so the item fails, with its reason, and the batch goes on
    a.always(every(10, Error(503)))
    b.always(every(50, Error(500, message="beta broke")))
    seen = []
    with client_for(a, b, clock) as client:
        started = time.perf_counter()
        job = client.batches.create(input=lines(1000), max_concurrency=8, on_progress=seen.append)
        assert job.wait(timeout=30).status == "completed"
        took = time.perf_counter() - started
    assert took < 10, took
    assert job.request_counts == {"total": 1000, "completed": 980, "failed": 20}
    results = job.results
    assert [r.custom_id for r in results] == [f"item-{i}" for i in range(1000)]
    for i, r in enumerate(results):
        if i % 50 == 0:
            assert not r.ok and r.response is None
            assert (r.error.error_class, r.error.status) == ("InternalServerError", 500)
            assert "beta broke" in r.error.message
        else:
            assert r.ok and r.content == ("Hello from beta" if i % 10 == 0 else "Hello from alpha")
            assert r.provider == ("b" if i % 10 == 0 else "a")
    # concurrency is bounded: never more than 8 requests at once at either upstream, and it was used
    assert 2 <= a.max_in_flight <= 8 and b.max_in_flight <= 8
    assert len(a.requests) == 1000 and len(b.requests) == 100
    # progress: one report per item, counts only growing, ending at the total
    assert [p.done for p in seen] == list(range(1, 1001))
    assert all(x.completed <= y.completed and x.failed <= y.failed for x, y in zip(seen, seen[1:], strict=False))
    assert (seen[-1].completed, seen[-1].failed, seen[-1].total) == (980, 20, 1000)
    out = job.output_lines()
    assert out[0]["custom_id"] == "item-0" and out[0]["error"] is None
    assert out[0]["response"]["status_code"] == 500 and out[0]["response"]["body"]["error"]["message"]
    assert out[1]["response"]["status_code"] == 200 and out[1]["response"]["body"]["object"] == "chat.completion"


def test_cancel_stops_sending_and_the_rest_end_cancelled(ups, clock):
    a, b = ups
    a.always(Reply(delay=0.01))
    cancelled = threading.Event()
    with client_for(a, b, clock) as client:
        def progress(p):
            if p.done >= 5 and not cancelled.is_set():
                cancelled.set()
                client.batches.cancel(job_id[0])

        job_id = []
        job = client.batches.create(input=lines(200), max_concurrency=2, on_progress=progress)
        job_id.append(job.id)
        job.wait(timeout=10)
        assert client.batches.retrieve(job.id) is job
    assert job.status == "cancelled" and job.to_dict()["cancelled_at"] is not None
    sent = len(a.requests)
    assert 5 <= sent <= 8  # the two in flight when it was cancelled finish; nothing more is sent
    counts = job.request_counts
    assert counts["completed"] == sent and counts["failed"] == 200 - sent
    last = job.results[-1]
    assert (last.error.code, last.error.error_class) == ("batch_cancelled", "APIError")
    assert job.output_lines()[-1]["error"]["code"] == "batch_cancelled"
    job.cancel()  # cancelling an ended batch changes nothing
    assert job.status == "cancelled"


def test_router_batch_runs_completion_requests_in_input_order(ups, clock):
    a, b = ups
    with Router(client=client_for(a, b, clock)) as router:
        requests = [CompletionRequest(messages=[{"role": "user", "content": f"question {i}"}], max_tokens=5,
                                      metadata={"custom_id": f"q{i}"} if i == 0 else {}) for i in range(12)]
        job = router.batch("chat", requests, RoutingOptions(preferred_provider="b"), max_concurrency=3).wait(10)
    assert job.status == "completed" and job.request_count == 12 and job.provider is None
    assert [r.custom_id for r in job.results] == ["q0"] + [f"request-{i}" for i in range(1, 12)]
    assert {r.provider for r in job.results} == {"b"} and b.requests[0].json["max_tokens"] == 5


def test_jsonl_file_input_list_and_results(ups, clock, tmp_path):
    a, b = ups
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines(3)) + "\n", encoding="utf-8")
    with client_for(a, b, clock) as client:
        job = client.batches.create(input=str(path), metadata={"run": "1"}).wait(10)
        other = client.batches.create(input=lines(2)).wait(10)
        assert [j.id for j in client.batches.list()] == [other.id, job.id]
        assert [j.id for j in client.batches.list(after=other.id)] == [job.id]
        out = client.batches.results(job.id)
    assert [o["custom_id"] for o in out] == ["item-0", "item-1", "item-2"]
    assert job.to_dict()["object"] == "batch" and job.to_dict()["metadata"] == {"run": "1"}
    assert job.output_jsonl().count("\n") == 3


def test_bad_input_is_refused_naming_the_line(ups, clock, tmp_path):
    a, b = ups
    bad = lines(3)
    bad[1] = {"custom_id": "item-0", "method": "POST", "url": CHAT, "body": bad[1]["body"]}
    bad[2] = {"custom_id": "x", "method": "GET", "url": "/v1/responses", "body": {}}
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"custom_id": "a"}\nnot json\n', encoding="utf-8")
    with client_for(a, b, clock) as client:
        with pytest.raises(E.InvalidArgumentError) as info:
            client.batches.create(input=bad)
        assert "line 2: custom_id 'item-0' repeats line 1" in str(info.value)
        assert "line 3: 'method' must be \"POST\"" in str(info.value)
        with pytest.raises(E.InvalidArgumentError, match="line 2 is not JSON"):
            client.batches.create(input=broken)
        with pytest.raises(E.InvalidArgumentError, match="names a file uploaded to one provider"):
            client.batches.create(input_file_id="file-abc", endpoint=CHAT)
        with pytest.raises(E.InvalidArgumentError, match="max_concurrency"):
            client.batches.create(input=lines(1), max_concurrency=0)
        with pytest.raises(E.NotFoundError, match="no batch 'batch_nope'"):
            client.batches.retrieve("batch_nope")
        with pytest.raises(E.InvalidArgumentError, match="not available on a single request.*batches.create"):
            client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}],
                                           delivery_mode="batch")
    assert not a.requests and not b.requests


# -- provider batches --------------------------------------------------------------------------------

def test_openai_batch_round_trip_submit_poll_results(ups, clock):
    a, b = ups
    a.batch_polls = 2
    a.always(lambda r: Error(429) if number(r) == 1 else None)
    progress = []
    with client_for(a, b, clock) as client:
        job = client.batches.create(input=lines(3), delivery_mode="batch", on_progress=progress.append)
        assert (job.status, job.provider, job.delivery_mode) == ("in_progress", "a", "batch")
        job.wait(poll_interval=60)
    assert job.status == "completed" and clock.sleeps == [60.0]
    paths = [(r.method, r.path) for r in a.requests]
    remote = job.remote_id
    assert paths == [("POST", "/v1/files"), ("POST", "/v1/batches"), ("GET", f"/v1/batches/{remote}"),
                     ("GET", f"/v1/batches/{remote}"), ("GET", f"/v1/files/file-out-{remote[6:]}/content"),
                     ("GET", f"/v1/files/file-err-{remote[6:]}/content")]
    upload = a.requests[0]
    assert upload.headers["authorization"] == f"Bearer {KEY_A}"
    assert b'name="purpose"\r\n\r\nbatch' in upload.body
    sent = [json.loads(x) for x in upload.body.splitlines() if x.startswith(b"{")]  # the JSONL part
    assert [s["body"]["model"] for s in sent] == ["gpt-x"] * 3 and sent[0]["url"] == CHAT
    assert a.requests[1].json == {"input_file_id": a.requests[1].json["input_file_id"], "endpoint": CHAT,
                                  "completion_window": "24h"}
    assert job.request_counts == {"total": 3, "completed": 2, "failed": 1}
    r0, r1, r2 = job.results
    assert r0.content == "Hello from alpha" and r0.model == "gpt-x" and r2.ok
    assert (r1.error.error_class, r1.error.status, r1.error.code) == ("RateLimitError", 429, "rate_limit_exceeded")
    assert job.output_lines()[1]["response"]["status_code"] == 429
    assert progress[-1].done == 3 and not b.requests


def test_anthropic_batch_round_trip_and_failover_of_the_submission(ups, clock):
    a, b = ups
    a.script(Error(500))  # the first batch provider refuses the upload: the batch goes to the next
    b.batch_polls = 1
    b.always(lambda r: Error(400, code="invalid_request_error", message="bad params") if number(r) == 2 else None)
    with client_for(a, b, clock) as client:
        job = client.batches.create(input=lines(3), delivery_mode="batch")
        assert job.provider == "b" and job.remote_id.startswith("msgbatch_")
        job.wait(poll_interval=5)
    assert job.status == "completed" and clock.sleeps == []
    create = b.requests[0]
    assert create.path == "/v1/messages/batches" and create.headers["x-api-key"] == KEY_B
    assert create.headers["anthropic-version"]
    params = create.json["requests"][0]
    assert params["custom_id"] == "item-0" and params["params"]["model"] == "claude-x"
    assert params["params"]["max_tokens"] and params["params"]["messages"][0]["role"] == "user"
    assert [r.path for r in b.requests][1:] == [f"/v1/messages/batches/{job.remote_id}",
                                                f"/v1/messages/batches/{job.remote_id}/results"]
    r0, r1, r2 = job.results
    assert r0.content == "Hello from beta" and r0.response["object"] == "chat.completion" and r1.ok
    assert (r2.error.error_class, r2.error.status, r2.error.message) == ("BadRequestError", 400, "bad params")
    assert job.request_counts == {"total": 3, "completed": 2, "failed": 1}


def test_provider_batch_cancel(ups, clock):
    a, b = ups
    b.batch_polls = 3
    with Router(client=client_for(a, b, clock, batch=(False, True))) as router:
        requests = [CompletionRequest(messages=[{"role": "user", "content": f"question {i}"}]) for i in range(4)]
        job = router.batch("chat", requests, RoutingOptions(delivery_mode="batch"))
        assert job.provider == "b"
        job.cancel()
        assert job.status == "cancelling"
        job.wait(poll_interval=1)
    assert job.status == "cancelled" and b.requests[1].path.endswith("/cancel")
    assert all(r.error.code == "batch_cancelled" for r in job.results)
    assert job.request_counts == {"total": 4, "completed": 0, "failed": 4}


def test_no_provider_with_a_batch_api_is_a_clear_refusal(ups, clock):
    a, b = ups
    with client_for(a, b, clock, batch=(False, False)) as client, pytest.raises(E.BadRequestError) as info:
        client.batches.create(input=lines(2), delivery_mode="batch")
    text = str(info.value)
    assert "pool 'chat' has none" in text and "a: infrastructure.batch is not true" in text
    assert "b: infrastructure.batch is not true" in text
    assert not a.requests and not b.requests


def test_a_connector_without_a_batch_api_cannot_claim_one():
    with pytest.raises(modelmesh.ConfigurationError) as info:
        modelmesh.build({"providers": {"g": {"connector": "gemini", "config": {
            "auth": {"api_key": "gk-0123456789"}, "models": ["gemini-2.0-flash"], "infrastructure": {"batch": True}}}}},
            environ={})
    assert ("providers.g.config.infrastructure.batch: the 'gemini' connector does not offer batch "
            "(it offers: discovery)") in str(info.value)


def test_one_pool_per_provider_batch_and_secrets_stay_out_of_errors(ups, clock):
    a, b = ups
    mixed = lines(2)
    mixed[1]["body"]["model"] = "a/gpt-x"
    a.script(Error(401, code="invalid_api_key"))
    with client_for(a, b, clock, batch=(True, False)) as client:
        with pytest.raises(E.InvalidArgumentError, match="every line's body.model must name the same pool"):
            client.batches.create(input=mixed, delivery_mode="batch")
        with pytest.raises(E.AuthenticationError) as info:
            client.batches.create(input=lines(2), delivery_mode="batch")
    assert "no provider took the batch" in str(info.value) and KEY_A not in str(info.value)


def test_the_batches_example_in_the_guide_runs(ups, clock, capsys):
    import pathlib

    guide = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "guide.md").read_text()
    example = next(b for b in re.findall(r"```python\n(.*?)```", guide, flags=re.S) if "batches.create(input=" in b)
    a, b = ups
    with client_for(a, b, clock) as client:
        scope = {"client": client}
        exec(compile(example, "docs/guide.md", "exec"), scope)  # noqa: S102 - our own documentation
    printed = capsys.readouterr().out
    assert "completed {'total': 100, 'completed': 100, 'failed': 0}" in printed and "q99 Hello from alpha" in printed
    assert len(scope["output"]) == 100 and scope["output"][0]["custom_id"] == "q0"


# -- the pure parts -----------------------------------------------------------------------------------

EVENTS = ("validated", "invalid", "finalizing", "finished", "cancel", "failed", "expired")


@pytest.mark.parametrize("state", list(Status))
@pytest.mark.parametrize("event", EVENTS)
def test_every_state_and_input_of_the_job_table(state, event):
    if (state, event) not in TRANSITIONS:
        with pytest.raises(BatchStateError):
            next_status(state, event)
        return
    end = next_status(state, event)
    if state in TERMINAL:  # an ended batch stays as it ended
        assert (event, end) == ("cancel", state)
    if event == "cancel" and state not in TERMINAL:
        assert end in (Status.CANCELLING, Status.CANCELLED)


def test_anthropic_results_of_every_kind_and_a_broken_line():
    from modelmesh._core.codecs import get_codec
    from modelmesh._core.codecs._base import CodecError, Target
    from modelmesh._core.codecs.batches import batch_codec

    codec = batch_codec(get_codec("anthropic"))
    target = Target(provider="b", model="claude-x", base_url="https://api.example/v1", api_key="sk-ant-secret-0123")
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
               "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "stop_sequence": None,
               "usage": {"input_tokens": 1, "output_tokens": 1}}
    body = "\n".join(json.dumps(x) for x in [
        {"custom_id": "a", "result": {"type": "succeeded", "message": message}},
        {"custom_id": "b", "result": {"type": "errored", "error": {"type": "error", "error": {
            "type": "overloaded_error", "message": "Overloaded sk-ant-secret-0123"}}}},
        {"custom_id": "c", "result": {"type": "canceled"}},
        {"custom_id": "d", "result": {"type": "expired"}}]).encode()
    out = codec.parse_results(target, "chat", [body])
    assert out["a"].body["choices"][0]["message"]["content"] == "hi"
    assert (out["b"].error.error_class, out["b"].error.status) == ("InternalServerError", 529)
    assert "sk-ant-secret" not in out["b"].error.message
    assert (out["c"].error.code, out["d"].error.code) == ("batch_cancelled", "batch_expired")
    with pytest.raises(CodecError, match="result line 1 is not a JSON object"):
        codec.parse_results(target, "chat", [b"[1, 2]\n"])
    wire = codec.retrieve(target, "msgbatch_1")
    assert "sk-ant" not in repr(wire) and wire.headers["x-api-key"] == "sk-ant-secret-0123"
    with pytest.raises(E.InvalidArgumentError, match="not a batch or file id"):
        codec.retrieve(target, "../../admin")
    batch = codec.parse_batch(target, json.dumps({
        "id": "msgbatch_1", "processing_status": "ended", "cancel_initiated_at": None, "results_url": "https://r",
        "request_counts": {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 4}}).encode())
    assert batch.status is Status.EXPIRED and batch.counts.failed == 4 and batch.results == ("https://r",)


# -- AsyncMeshClient: the same batches, awaited (the job model, checks and conversation are shared) ----

def aclient_for(a, b, clock, **kw):
    return modelmesh.AsyncMeshClient(config(a, b, **kw), environ={}, clock=clock, sleep=clock.sleep)


def test_async_local_batch_with_failures_bounded_concurrency_and_progress(ups, clock):
    a, b = ups
    a.always(every(10, Error(503)))  # fails over to beta
    b.always(every(50, Error(500, message="beta broke")))  # ... which fails too: the item fails

    async def main():
        seen = []

        async def progress(p):  # a coroutine function is awaited
            seen.append(p)

        async with aclient_for(a, b, clock) as client:
            job = await client.batches.create(input=lines(300), max_concurrency=6, on_progress=progress)
            assert type(job).__name__ == "AsyncBatchJob" and job.status == "in_progress"
            await job.wait(timeout=30)
            assert await client.batches.retrieve(job.id) is job
            assert [j.id for j in await client.batches.list()] == [job.id]
            return job, seen, await client.batches.results(job.id)

    job, seen, out = asyncio.run(main())
    assert job.status == "completed" and job.request_counts == {"total": 300, "completed": 294, "failed": 6}
    for i, r in enumerate(job.results):
        assert r.custom_id == f"item-{i}"
        if i % 50 == 0:
            assert (r.error.error_class, r.error.status) == ("InternalServerError", 500) and "beta broke" in r.error.message
        else:
            assert r.content == ("Hello from beta" if i % 10 == 0 else "Hello from alpha")
    assert 2 <= a.max_in_flight <= 6 and b.max_in_flight <= 6  # bounded, and used
    assert len(a.requests) == 300 and len(b.requests) == 30
    assert [p.done for p in seen] == list(range(1, 301)) and (seen[-1].completed, seen[-1].failed) == (294, 6)
    assert out[0]["response"]["status_code"] == 500 and out[1]["response"]["body"]["object"] == "chat.completion"


def test_async_cancel_stops_sending_and_the_rest_end_cancelled(ups, clock):
    a, b = ups
    a.always(Reply(delay=0.01))

    async def main():
        async with aclient_for(a, b, clock) as client:
            holder = []

            def progress(p):
                if p.done == 5:
                    asyncio.get_running_loop().create_task(client.batches.cancel(holder[0].id))

            job = await client.batches.create(input=lines(200), max_concurrency=2, on_progress=progress)
            holder.append(job)
            await job.wait(timeout=10)
            await job.cancel()  # an ended batch: nothing changes
            return job

    job = asyncio.run(main())
    assert job.status == "cancelled" and job.to_dict()["cancelled_at"] is not None
    sent = len(a.requests)
    assert 5 <= sent <= 8
    assert job.request_counts == {"total": 200, "completed": sent, "failed": 200 - sent}
    assert job.results[-1].error.code == "batch_cancelled"


def test_async_openai_batch_round_trip_with_a_fake_clock(ups, clock):
    a, b = ups
    a.batch_polls = 2
    a.always(lambda r: Error(429) if number(r) == 1 else None)
    progress = []

    async def main():
        async with aclient_for(a, b, clock) as client:
            job = await client.batches.create(input=lines(3), delivery_mode="batch", on_progress=progress.append)
            assert (job.status, job.provider, job.delivery_mode) == ("in_progress", "a", "batch")
            return await job.wait(poll_interval=60)

    job = asyncio.run(main())
    assert job.status == "completed" and clock.sleeps == [60.0]
    remote = job.remote_id
    assert [(r.method, r.path) for r in a.requests] == [
        ("POST", "/v1/files"), ("POST", "/v1/batches"), ("GET", f"/v1/batches/{remote}"),
        ("GET", f"/v1/batches/{remote}"), ("GET", f"/v1/files/file-out-{remote[6:]}/content"),
        ("GET", f"/v1/files/file-err-{remote[6:]}/content")]
    assert a.requests[0].headers["authorization"] == f"Bearer {KEY_A}"
    assert job.request_counts == {"total": 3, "completed": 2, "failed": 1}
    assert job.results[1].error.status == 429 and job.results[0].content == "Hello from alpha"
    assert progress[-1].done == 3 and not b.requests


def test_async_provider_batch_submission_fails_over_and_cancels(ups, clock):
    a, b = ups
    a.script(Error(500))  # the first batch provider refuses the upload: the batch goes to the next
    b.batch_polls = 3

    async def main():
        async with aclient_for(a, b, clock) as client:
            job = await client.batches.create(input=lines(4), delivery_mode="batch")
            assert job.provider == "b"
            await job.cancel()
            assert job.status == "cancelling"
            return await job.wait(poll_interval=1)

    job = asyncio.run(main())
    assert job.status == "cancelled" and b.requests[1].path.endswith("/cancel")
    assert all(r.error.code == "batch_cancelled" for r in job.results)


def test_async_batches_refuse_bad_input_as_the_sync_client_does(ups, clock, tmp_path):
    a, b = ups
    bad = lines(2)
    bad[1]["custom_id"] = "item-0"
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines(3)), encoding="utf-8")

    async def main():
        async with aclient_for(a, b, clock, batch=(False, False)) as client:
            with pytest.raises(E.InvalidArgumentError, match="line 2: custom_id 'item-0' repeats line 1"):
                await client.batches.create(input=bad)
            with pytest.raises(E.InvalidArgumentError, match="max_concurrency"):
                await client.batches.create(input=lines(1), max_concurrency=0)
            with pytest.raises(E.NotFoundError, match="no batch 'batch_nope'"):
                await client.batches.retrieve("batch_nope")
            with pytest.raises(E.BadRequestError, match="pool 'chat' has none"):
                await client.batches.create(input=lines(1), delivery_mode="batch")
            sent_before = len(a.requests)
            job = await (await client.batches.create(input=str(path))).wait(10)
            return sent_before, job

    sent_before, job = asyncio.run(main())
    assert sent_before == 0 and not b.requests
    assert [r.custom_id for r in job.results] == ["item-0", "item-1", "item-2"]
