"""Fine-tuning jobs on both clients, over loopback against the fake's fine-tuning API: a job
that succeeds and whose model then serves requests, one that fails, one cancelled, the
listing, and the refusals. Jobs move on the fake's retrieves, never on time."""
from __future__ import annotations

import json

import pytest

from modelmesh import errors as E
from modelmesh._core.codecs.files import untag
from modelmesh.testing import FakeClock, FakeUpstream

from shells import SHELLS, make_client

KEY_A, KEY_B = "sk-ft-alpha-0123456789", "sk-ft-beta-0123456789"
TRAINING = b"".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                             {"role": "assistant", "content": f"a{i}"}]}).encode() + b"\n"
                    for i in range(3))
MSG = [{"role": "user", "content": "hi"}]


def provider(up, key, models=("gpt-x",), **infra):
    return {"connector": "openai", "config": {
        "base_url": up.url, "auth": {"api_key": key}, "timeout": "5s", "infrastructure": infra,
        "models": [{"id": m, "capabilities": ["chat-completion"]} for m in models]}}


@pytest.fixture
def ups():
    clock = FakeClock()
    with FakeUpstream("openai", name="alpha", api_key=KEY_A, clock=clock) as a, \
            FakeUpstream("openai", name="beta", api_key=KEY_B, clock=clock) as b:
        yield a, b


@pytest.mark.parametrize("shell", SHELLS)
def test_a_job_succeeds_and_its_model_then_serves_requests(shell, ups):
    a, b = ups
    a.fine_tune_polls = 2
    with make_client(shell, {"providers": {"a": provider(a, KEY_A, files=True, fine_tuning=True),
                                           "b": provider(b, KEY_B)}}, environ={}) as client:
        f = client.files.create(file=("train.jsonl", TRAINING), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="gpt-x", training_file=f.id, suffix="mine", seed=3,
                                             hyperparameters={"n_epochs": 2})
        assert job.id.endswith("~a") and job.training_file == f.id
        assert (job.status, job.model, job.seed, job.fine_tuned_model) == ("validating_files", "gpt-x", 3, None)
        sent = a.last_request.json
        assert sent["training_file"] == untag(f.id)[0] and sent["hyperparameters"] == {"n_epochs": 2}
        assert "validation_file" not in sent  # None is left out, as the SDK leaves out NOT_GIVEN
        assert client.fine_tuning.jobs.retrieve(job.id).status == "running"
        done = client.fine_tuning.jobs.retrieve(job.id)
        assert done.status == "succeeded" and done.fine_tuned_model.startswith("ft:gpt-x:fake-org:mine:")
        assert all(r.endswith("~a") for r in done.result_files)
        assert client.files.content(done.result_files[0]).text.startswith("step,train_loss")
        model = done.fine_tuned_model
    # a mesh that serves it: the fine-tuned model in a provider's models, in a pool
    cfg = {"providers": {"a": provider(a, KEY_A, models=(model,))},
           "pools": {"tuned": {"models": [f"a/{model}"]}}}
    with make_client(shell, cfg, environ={}) as client:
        r = client.chat.completions.create(model="tuned", messages=MSG)
        assert r.choices[0].message.content == "Hello from alpha" and a.last_request.json["model"] == model


@pytest.mark.parametrize("shell", SHELLS)
def test_failed_cancelled_and_listed_jobs(shell, ups):
    a, _ = ups
    with make_client(shell, {"providers": {"a": provider(a, KEY_A, files=True, fine_tuning=True)}},
                     environ={}) as client:
        f = client.files.create(file=("t.jsonl", TRAINING), purpose="fine-tune")
        a.fine_tune_error = "The training file has too few examples."
        failing = client.fine_tuning.jobs.create(model="gpt-x", training_file=f.id)
        a.fine_tune_error = None
        second = client.fine_tuning.jobs.create(model="gpt-x", training_file=f.id, validation_file=f.id)
        assert a.last_request.json["validation_file"] == untag(f.id)[0] and second.validation_file == f.id
        cancelled = client.fine_tuning.jobs.cancel(second.id)
        assert cancelled.status == "cancelled"
        failed = client.fine_tuning.jobs.retrieve(failing.id)
        assert failed.status == "failed" and failed.error.message == "The training file has too few examples."
        page = client.fine_tuning.jobs.list(limit=1)
        assert [j.id for j in page] == [second.id] and page.has_more and page.has_next_page()
        rest = client.fine_tuning.jobs.list(after=second.id)
        assert [j.id for j in rest.data] == [failing.id] and not rest.has_more
        assert a.last_request.query == {"after": untag(second.id)[0]}
        with pytest.raises(E.BadRequestError, match="already cancelled"):
            client.fine_tuning.jobs.cancel(second.id)
        with pytest.raises(E.NotFoundError, match="Could not find fine-tune"):
            client.fine_tuning.jobs.retrieve("ftjob-nothing~a")
        with pytest.raises(E.InvalidArgumentError, match="'limit' must be 1..100"):
            client.fine_tuning.jobs.list(limit=0)
        with pytest.raises(E.InvalidArgumentError, match="'model' is required"):
            client.fine_tuning.jobs.create(model="", training_file=f.id)


@pytest.mark.parametrize("shell", SHELLS)
def test_fine_tuning_goes_where_the_training_file_is_and_is_refused_elsewhere(shell, ups):
    a, b = ups
    providers = {"a": provider(a, KEY_A, files=True, fine_tuning=True),
                 "b": provider(b, KEY_B, files=True, fine_tuning=True)}
    with make_client(shell, {"providers": providers}, environ={}) as client:
        fb = client.files.create(file=("t.jsonl", TRAINING), purpose="fine-tune", provider="b")
        job = client.fine_tuning.jobs.create(model="gpt-x", training_file=fb.id)  # no provider=: the file says b
        assert job.id.endswith("~b") and len(b.fine_tuning_jobs) == 1 and a.fine_tuning_jobs == []
        fa = client.files.create(file=("t.jsonl", TRAINING), purpose="fine-tune", provider="a")
        with pytest.raises(E.InvalidArgumentError, match="validation file is provider 'a''s and the training file "
                                                         "provider 'b''s"):
            client.fine_tuning.jobs.create(model="gpt-x", training_file=fb.id, validation_file=fa.id)
        with pytest.raises(E.BadRequestError, match=r"several providers offer fine-tuning \(a, b\)"):
            client.fine_tuning.jobs.list()
    with make_client(shell, {"providers": {"a": provider(a, KEY_A, files=True)}}, environ={}) as client:
        with pytest.raises(E.BadRequestError, match="fine_tuning.jobs.list: no provider of this mesh offers "
                                                    "fine-tuning: none says infrastructure.fine_tuning: true"):
            client.fine_tuning.jobs.list()
        with pytest.raises(E.BadRequestError, match="provider 'a' does not offer fine-tuning: its configuration "
                                                    "does not say infrastructure.fine_tuning: true"):
            client.fine_tuning.jobs.retrieve("ftjob-x~a")


# -- from_job: a model that serves once its job has succeeded --------------------------------------

def start_job(up, key, *, suffix="mine"):
    """A fine-tuning job started at the fake directly; (its id, the model it will make)."""
    import openai

    sdk = openai.OpenAI(base_url=up.url, api_key=key, max_retries=0)
    f = sdk.files.create(file=("t.jsonl", TRAINING), purpose="fine-tune")
    job = sdk.fine_tuning.jobs.create(model="gpt-x", training_file=f.id, suffix=suffix)
    return job.id, f"ft:gpt-x:fake-org:{suffix}:{job.id[6:14]}"


def pooled(a, b, tuned, job):
    providers = {"a": provider(a, KEY_A, fine_tuning=True), "b": provider(b, KEY_B)}
    providers["a"]["config"]["models"] = [{"id": tuned, "capabilities": ["chat-completion"], "from_job": job}]
    order = [f"a/{tuned}", "b/gpt-x"]
    return {"providers": providers,
            "pools": {"chat": {"models": order, "strategy": "priority", "rotation": {"selection": {"model_priority": order}}}}}


def background_round(shell, client):
    if shell == "sync":
        client.transport.background_round()
    else:
        client.run(client.client.transport.background_round())


def job_retrieves(up):
    return [r for r in up.requests if r.method == "GET" and r.path.startswith("/v1/fine_tuning/jobs/")]


@pytest.mark.parametrize("shell", SHELLS)
def test_a_from_job_model_serves_in_its_pool_once_its_job_has_succeeded(shell, ups):
    a, b = ups
    a.fine_tune_polls = 2
    job, tuned = start_job(a, KEY_A)
    clock = FakeClock()
    ref = f"a/{tuned}"
    # probe_check_interval: the background thread never runs a round of its own in this test
    with make_client(shell, pooled(a, b, tuned, job), environ={}, clock=clock, sleep=clock.sleep,
                     probe_check_interval=3600) as client:
        assert client.status()["from_job"][ref]["state"] == "waiting"
        r = client.chat.completions.create(model="chat", messages=MSG)
        assert (r.mesh.provider, r.choices[0].message.content) == ("b", "Hello from beta")  # the job is not done
        background_round(shell, client)  # the first round asks at once: running
        view = client.status()["from_job"][ref]
        assert (view["state"], view["job_status"]) == ("waiting", "running") and "is running" in view["reason"]
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "b"
        background_round(shell, client)  # not due yet: nothing asked
        assert len(job_retrieves(a)) == 1
        clock.advance(60)
        background_round(shell, client)  # due: the job has succeeded, the model is back, no restart
        assert len(job_retrieves(a)) == 2
        assert client.status()["from_job"][ref]["state"] == "serving"
        r = client.chat.completions.create(model="chat", messages=MSG)
        assert (r.mesh.provider, r.mesh.model) == ("a", tuned) and a.last_request.json["model"] == tuned
        clock.advance(600)
        background_round(shell, client)  # a job that has ended is asked about no more
        assert len(job_retrieves(a)) == 2


@pytest.mark.parametrize("shell", SHELLS)
def test_a_failed_job_leaves_its_model_out_and_says_why(shell, ups):
    a, b = ups
    a.fine_tune_error = "The training file has too few examples."
    job, tuned = start_job(a, KEY_A)
    clock = FakeClock()
    with make_client(shell, pooled(a, b, tuned, f"{job}~a"), environ={}, clock=clock, sleep=clock.sleep,
                     probe_check_interval=3600) as client:
        assert (client.check_jobs() if shell == "sync" else client.run(client.client.check_jobs())) == 1
        view = client.status()["from_job"][f"a/{tuned}"]
        assert (view["state"], view["job_status"]) == ("left_out", "failed")
        assert "failed: The training file has too few examples.; the model is not served" in view["reason"]
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "b"


@pytest.mark.parametrize("shell", SHELLS)
def test_a_job_that_made_another_model_or_cannot_be_asked(shell, ups):
    a, b = ups
    job, _ = start_job(a, KEY_A)
    clock = FakeClock()
    with make_client(shell, pooled(a, b, "ft:gpt-x:fake-org:other:1234", job), environ={}, clock=clock,
                     sleep=clock.sleep, probe_check_interval=3600) as client:
        from modelmesh.testing import Error

        a.script(Error(503))
        background_round(shell, client)
        view = client.status()["from_job"]["a/ft:gpt-x:fake-org:other:1234"]
        assert view["state"] == "waiting" and "the last check failed" in view["reason"] and KEY_A not in view["reason"]
        clock.advance(60)
        background_round(shell, client)
        view = client.status()["from_job"]["a/ft:gpt-x:fake-org:other:1234"]
        assert view["state"] == "left_out" and "succeeded, but made 'ft:gpt-x:fake-org:mine:" in view["reason"]
        assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "b"


def test_from_job_is_checked_with_the_rest_of_the_configuration(ups):
    import modelmesh

    a, b = ups
    cfg = pooled(a, b, "ft:x", "ftjob-1")
    cfg["providers"]["a"]["config"]["infrastructure"] = {}
    cfg["providers"]["a"]["config"]["models"].append({"id": "ft:y", "from_job": "ftjob-2~b"})
    cfg["providers"]["a"]["config"]["models"].append({"id": "ft:z", "from_job": ["no"]})
    with pytest.raises(modelmesh.ConfigurationError) as info:
        modelmesh.build(cfg, environ={})
    problems = "\n".join(info.value.problems)
    where = "providers.a.config.models"
    assert f"{where}[0].from_job: the mesh follows the job through the provider's fine-tuning API, so provider 'a' " \
           "needs infrastructure.fine_tuning: true" in problems
    assert f"{where}[1].from_job: 'ftjob-2~b' is a job of provider 'b', not of 'a' whose model this is" in problems
    assert f"{where}[2].from_job: expected a fine-tuning job id such as 'ftjob-abc123'" in problems
