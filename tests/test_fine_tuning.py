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
