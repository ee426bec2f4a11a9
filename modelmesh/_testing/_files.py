"""The fake upstream's files and fine-tuning APIs (OpenAI style).

Theory of operation: `FilesAPI` holds the upstream's files and fine-tuning jobs and answers
OpenAI's endpoints for them, in OpenAI's wire shapes:

    POST   /v1/files                       multipart `file` + `purpose` -> the File object
    GET    /v1/files[?purpose=&after=&limit=&order=]  {"object": "list", "data", "first_id",
                                           "last_id", "has_more"}
    GET    /v1/files/{id}                  the File object
    GET    /v1/files/{id}/content          the bytes as uploaded
    DELETE /v1/files/{id}                  {"id", "object": "file", "deleted": true}
    POST   /v1/fine_tuning/jobs            {"model", "training_file", ...} -> fine_tuning.job
    GET    /v1/fine_tuning/jobs[?after=&limit=]  {"object": "list", "data", "has_more"}, newest first
    GET    /v1/fine_tuning/jobs/{id}       fine_tuning.job (each retrieve moves it on)
    POST   /v1/fine_tuning/jobs/{id}/cancel

It is called by `BatchAPI.serve` (`_batches.py`), which takes each request's scripted step
first, so a scripted fault hits these endpoints as any other. A job moves deterministically:
it is created `validating_files`, each retrieve moves it on (`running`), and the
`upstream.fine_tune_polls`-th retrieve ends it: `succeeded` with `fine_tuned_model`
`ft:{model}:{org}:{suffix}:{short id}`, or `failed` with `upstream.fine_tune_error` (as it was
when the job was created) as its error. A succeeded job's model is then served by the fake's
chat endpoint; any other `ft:` model is refused there with OpenAI's model_not_found.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._steps import Error, RecordedRequest
from ._wire import digest

if TYPE_CHECKING:
    from ._server import FakeUpstream

__all__ = ["FilesAPI", "FakeFile", "FakeFineTune", "FILES_PATH", "Refusal"]

FILES_PATH = re.compile(r"^/v1/(?:files|fine_tuning/jobs)(?:/[^/]+(?:/(?:content|cancel))?)?$")
_FILES = re.compile(r"^/v1/files(?:/([^/]+)(?:/(content))?)?$")
_JOBS = re.compile(r"^/v1/fine_tuning/jobs(?:/([^/]+)(?:/(cancel))?)?$")
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
ORG = "fake-org"
_ENDED = ("succeeded", "failed", "cancelled")


@dataclass
class FakeFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def body(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.content), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed", "expires_at": None,
                "status_details": None}


@dataclass
class FakeFineTune:
    id: str
    model: str
    training_file: str
    validation_file: str | None
    created_at: int
    polls_left: int
    error: str | None                      # the error it will end with (None: it succeeds)
    suffix: str | None = None
    seed: int = 0
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    status: str = "validating_files"
    finished_at: int | None = None
    fine_tuned_model: str | None = None
    result_files: list[str] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        hyper = {"batch_size": "auto", "learning_rate_multiplier": "auto", "n_epochs": "auto"} | self.hyperparameters
        failed = self.status == "failed"
        return {"id": self.id, "object": "fine_tuning.job", "created_at": self.created_at,
                "error": {"code": "invalid_training_file", "message": self.error, "param": "training_file"}
                if failed else None,
                "fine_tuned_model": self.fine_tuned_model, "finished_at": self.finished_at,
                "hyperparameters": hyper, "model": self.model, "organization_id": f"org-{ORG}",
                "result_files": list(self.result_files), "seed": self.seed, "status": self.status,
                "trained_tokens": 1000 if self.status == "succeeded" else None,
                "training_file": self.training_file, "validation_file": self.validation_file,
                "estimated_finish": None, "integrations": None, "metadata": None,
                "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
                "user_provided_suffix": self.suffix}


class Refusal(Exception):
    """An endpoint's refusal: the vendor's error, sent as any scripted Error is."""

    def __init__(self, error: Error) -> None:
        super().__init__(error.message)
        self.error = error


def _refuse(status: int, message: str, param: str | None = None, code: str = "") -> Refusal:
    return Refusal(Error(status, code=code, message=message, param=param))


class FilesAPI:
    """One upstream's files and fine-tuning jobs; its methods run under the batch API's lock."""

    def __init__(self, upstream: FakeUpstream) -> None:
        self.up = upstream
        self.files: dict[str, FakeFile] = {}
        self.jobs: dict[str, FakeFineTune] = {}

    # -- what other endpoints ask ---------------------------------------------------------------
    def put(self, file_id: str, content: bytes, purpose: str, filename: str) -> FakeFile:
        stored = self.files[file_id] = FakeFile(file_id, filename, purpose, content, self._now())
        return stored

    def content_of(self, file_id: str) -> bytes | None:
        found = self.files.get(file_id)
        return found.content if found is not None else None

    def serves_model(self, model: str) -> bool:
        """Whether `model` is the fine-tuned model of a job that succeeded."""
        return any(j.fine_tuned_model == model for j in self.jobs.values())

    # -- the endpoints ------------------------------------------------------------------------
    def answer(self, req: RecordedRequest, salt: str) -> tuple[int, Any]:
        """(status, a JSON body or the bytes of a file's content); raises Refusal."""
        files = _FILES.match(req.path)
        if files is not None:
            return 200, self._files(req, salt, files[1], files[2])
        jobs = _JOBS.match(req.path)
        if jobs is not None:
            return 200, self._jobs(req, salt, jobs[1], jobs[2])
        raise _not_found(req)

    def _files(self, req: RecordedRequest, salt: str, ident: str | None, action: str | None) -> Any:
        if ident is None and req.method == "POST":
            return self._upload(req, salt).body()
        if ident is None and req.method == "GET":
            return self._file_list(req)
        if ident is None:
            raise _not_found(req)
        found = self.files.get(ident)
        if found is None:
            raise _refuse(404, f"No such File object: {ident}", "id")
        if action == "content" and req.method == "GET":
            return found.content
        if action is None and req.method == "GET":
            return found.body()
        if action is None and req.method == "DELETE":
            del self.files[ident]
            return {"id": ident, "object": "file", "deleted": True}
        raise _not_found(req)

    def _upload(self, req: RecordedRequest, salt: str) -> FakeFile:
        parts = multipart(req)
        purpose = parts.get("purpose", (None, b""))[1].decode("utf-8", "replace")
        if "file" not in parts:
            raise _refuse(400, "Missing required parameter: 'file'.", "file", "missing_required_parameter")
        if not purpose:
            raise _refuse(400, "Missing required parameter: 'purpose'.", "purpose", "missing_required_parameter")
        if purpose not in PURPOSES:
            raise _refuse(400, f"Invalid value for 'purpose': '{purpose}'. Supported values are: "
                               f"{', '.join(repr(p) for p in PURPOSES)}.", "purpose", "invalid_value")
        filename, content = parts["file"]
        if purpose in ("batch", "fine-tune"):
            problem = _jsonl_problem(content, need="messages" if purpose == "fine-tune" else None)
            if problem is not None:
                raise _refuse(400, f"Invalid file format for '{purpose}': {problem}", "file")
        return self.put(f"file-{digest(salt, 'file')[:24]}", content, purpose, filename or "upload")

    def _file_list(self, req: RecordedRequest) -> dict[str, Any]:
        chosen = [f for f in self.files.values() if req.query.get("purpose") in (None, "", f.purpose)]
        chosen.sort(key=lambda f: f.created_at, reverse=req.query.get("order", "desc") != "asc")
        page, more = _page(chosen, req, 10000)
        data = [f.body() for f in page]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": more}

    def _jobs(self, req: RecordedRequest, salt: str, ident: str | None, action: str | None) -> Any:
        if ident is None and req.method == "POST":
            return self._create_job(req, salt).body()
        if ident is None and req.method == "GET":
            jobs = list(reversed(self.jobs.values()))  # newest first
            page, more = _page(jobs, req, 20)
            return {"object": "list", "data": [j.body() for j in page], "has_more": more}
        job = self.jobs.get(ident or "")
        if job is None:
            raise _refuse(404, f"Could not find fine-tune: {ident}", "fine_tune_id", "fine_tune_not_found")
        if action == "cancel" and req.method == "POST":
            if job.status in _ENDED:
                raise _refuse(400, f"Job {job.id} has already {job.status}: it cannot be cancelled.")
            job.status, job.finished_at = "cancelled", self._now()
            return job.body()
        if action is None and req.method == "GET":
            self._poll(job)
            return job.body()
        raise _not_found(req)

    def _create_job(self, req: RecordedRequest, salt: str) -> FakeFineTune:
        body = req.json
        if not isinstance(body, dict):
            raise _refuse(400, "We could not parse the JSON body of your request.")
        model, training = body.get("model"), body.get("training_file")
        if not isinstance(model, str) or not model:
            raise _refuse(400, "Missing required parameter: 'model'.", "model", "missing_required_parameter")
        if not isinstance(training, str) or not training:
            raise _refuse(400, "Missing required parameter: 'training_file'.", "training_file",
                          "missing_required_parameter")
        for param in ("training_file", "validation_file"):
            ident = body.get(param)
            if ident is None:
                continue
            found = self.files.get(str(ident))
            if found is None:
                raise _refuse(400, f"invalid {param}: {ident}", param, "invalid_request_error")
            if found.purpose != "fine-tune":
                raise _refuse(400, f"File {ident} has purpose '{found.purpose}'; fine-tuning needs a file "
                                   "uploaded with purpose 'fine-tune'.", param, "invalid_file_purpose")
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
            raise _refuse(400, "Invalid 'suffix': a string of at most 64 characters.", "suffix", "invalid_value")
        hyper = body.get("hyperparameters")
        seed = body.get("seed")
        job = FakeFineTune(id=f"ftjob-{digest(salt, 'ftjob')[:24]}", model=model, training_file=training,
                           validation_file=body.get("validation_file"), created_at=self._now(),
                           polls_left=self.up.fine_tune_polls, error=self.up.fine_tune_error, suffix=suffix,
                           seed=seed if isinstance(seed, int) else int(digest(salt, "seed")[:6], 16),
                           hyperparameters=dict(hyper) if isinstance(hyper, dict) else {})
        self.jobs[job.id] = job
        return job

    def _poll(self, job: FakeFineTune) -> None:
        if job.status in _ENDED:
            return
        job.polls_left -= 1
        if job.polls_left > 0:
            job.status = "running"
            return
        job.finished_at = self._now()
        if job.error is not None:
            job.status = "failed"
            return
        job.status = "succeeded"
        job.fine_tuned_model = f"ft:{job.model}:{ORG}:{job.suffix or ''}:{job.id[6:14]}"
        results = self.put(f"file-{digest(job.id, 'results')[:24]}", b"step,train_loss\n1,0.5\n",
                           "fine-tune-results", "step_metrics.csv")
        job.result_files = [results.id]

    def _now(self) -> int:
        return int(self.up._clock())


def _not_found(req: RecordedRequest) -> Refusal:
    return _refuse(404, f"Invalid URL ({req.method} {req.path})")


def _page(items: list[Any], req: RecordedRequest, default: int) -> tuple[list[Any], bool]:
    after = req.query.get("after")
    if after:
        ids = [i.id for i in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    try:
        limit = int(req.query.get("limit") or default)
    except ValueError:
        raise _refuse(400, "Invalid 'limit': expected an integer.", "limit", "invalid_value") from None
    if not 1 <= limit <= 10000:
        raise _refuse(400, f"Invalid 'limit': {limit} is out of range.", "limit", "invalid_value")
    return items[:limit], len(items) > limit


def _jsonl_problem(content: bytes, need: str | None) -> str | None:
    for number, text in enumerate(content.splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError:
            return f"line {number} is not JSON."
        if not isinstance(line, dict) or (need is not None and not isinstance(line.get(need), list)):
            return f"line {number} has no '{need}' list." if need else f"line {number} is not a JSON object."
    return None


def multipart(req: RecordedRequest) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body, by name: (the filename, if any; the content)."""
    ctype = req.headers.get("content-type", "")
    found = re.search(r'boundary="?([^";]+)"?', ctype)
    if "multipart/form-data" not in ctype or not found:
        raise _refuse(400, "the upload must be multipart/form-data")
    delimiter = b"--" + found.group(1).encode()
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in req.body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.partition(b"\r\n\r\n")
        name = re.search(rb'[; ]name="([^"]+)"', head)
        filename = re.search(rb'filename="([^"]*)"', head)
        if name:
            fields[name.group(1).decode()] = (filename.group(1).decode() if filename else None,
                                              content[:-2] if content.endswith(b"\r\n") else content)
    return fields
