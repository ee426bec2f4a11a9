"""The fake upstream's files and fine-tuning endpoints, read by the official openai SDK: the
wire shapes are the ones the SDK parses (FileObject, FileDeleted, FineTuningJob, the pages)."""
from __future__ import annotations

import json

import openai
import pytest

from modelmesh.testing import Error, FakeClock, FakeUpstream

KEY = "sk-fake-files-0123456789"
TRAINING = "".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                            {"role": "assistant", "content": f"a{i}"}]}) + "\n" for i in range(3))


@pytest.fixture
def up():
    with FakeUpstream("openai", name="alpha", api_key=KEY, clock=FakeClock(start=1_700_000_000)) as u:
        yield u


@pytest.fixture
def sdk(up):
    return openai.OpenAI(base_url=up.url, api_key=KEY, max_retries=0)


def test_files_round_trip(up, sdk):
    f = sdk.files.create(file=("train.jsonl", TRAINING.encode()), purpose="fine-tune")
    assert (f.object, f.purpose, f.filename, f.bytes, f.status) == ("file", "fine-tune", "train.jsonl",
                                                                    len(TRAINING), "processed")
    other = sdk.files.create(file=("b.jsonl", b'{"custom_id": "x"}\n'), purpose="batch")
    assert {x.id for x in sdk.files.list()} == {f.id, other.id}
    assert [x.id for x in sdk.files.list(purpose="fine-tune")] == [f.id]
    assert sdk.files.retrieve(f.id).filename == "train.jsonl"
    assert sdk.files.content(f.id).read() == TRAINING.encode()
    gone = sdk.files.delete(f.id)
    assert (gone.id, gone.deleted, gone.object) == (f.id, True, "file")
    with pytest.raises(openai.NotFoundError, match="No such File object"):
        sdk.files.retrieve(f.id)


def test_bad_uploads_are_refused_as_openai_does(sdk):
    with pytest.raises(openai.BadRequestError, match="purpose") as bad:
        sdk.files.create(file=("x.txt", b"hi"), purpose="nonsense")  # type: ignore[arg-type]
    assert bad.value.body["param"] == "purpose"
    with pytest.raises(openai.BadRequestError, match="line 1"):
        sdk.files.create(file=("x.jsonl", b'{"prompt": "old format"}\n'), purpose="fine-tune")


def test_a_job_succeeds_after_its_polls_and_its_model_then_answers(up, sdk):
    up.fine_tune_polls = 3
    f = sdk.files.create(file=("t.jsonl", TRAINING.encode()), purpose="fine-tune")
    with pytest.raises(openai.NotFoundError):  # no such model yet
        sdk.chat.completions.create(model="ft:gpt-x:fake-org:mine:anything", messages=[{"role": "user", "content": "hi"}])
    job = sdk.fine_tuning.jobs.create(model="gpt-x", training_file=f.id, suffix="mine", seed=7)
    assert (job.object, job.status, job.fine_tuned_model, job.seed) == ("fine_tuning.job", "validating_files", None, 7)
    assert [sdk.fine_tuning.jobs.retrieve(job.id).status for _ in range(3)] == ["running", "running", "succeeded"]
    done = sdk.fine_tuning.jobs.retrieve(job.id)
    assert done.fine_tuned_model == f"ft:gpt-x:fake-org:mine:{job.id[6:14]}" and done.result_files
    r = sdk.chat.completions.create(model=done.fine_tuned_model, messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello from alpha"
    with pytest.raises(openai.BadRequestError, match="already succeeded"):
        sdk.fine_tuning.jobs.cancel(job.id)


def test_jobs_fail_cancel_and_list(up, sdk):
    f = sdk.files.create(file=("t.jsonl", TRAINING.encode()), purpose="fine-tune")
    up.fine_tune_error = "The training file has too few examples."
    failing = sdk.fine_tuning.jobs.create(model="gpt-x", training_file=f.id)
    up.fine_tune_error = None
    cancelled = sdk.fine_tuning.jobs.cancel(sdk.fine_tuning.jobs.create(model="gpt-x", training_file=f.id).id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    failed = sdk.fine_tuning.jobs.retrieve(failing.id)
    assert failed.status == "failed" and failed.error.message == "The training file has too few examples."
    page = sdk.fine_tuning.jobs.list(limit=1)
    assert [j.id for j in page.data] == [cancelled.id] and page.has_more
    assert [j.id for j in sdk.fine_tuning.jobs.list(after=cancelled.id).data] == [failing.id]
    batch_file = sdk.files.create(file=("b.jsonl", b'{"custom_id": "x"}\n'), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="purpose 'batch'"):
        sdk.fine_tuning.jobs.create(model="gpt-x", training_file=batch_file.id)
    with pytest.raises(openai.NotFoundError, match="Could not find"):
        sdk.fine_tuning.jobs.retrieve("ftjob-nope")


def test_scripted_faults_hit_the_files_endpoints(up, sdk):
    up.script(Error(503))
    with pytest.raises(openai.InternalServerError):
        sdk.files.list()
    assert sdk.files.list().data == []
