"""Files and fine-tuning on a provider that offers them: `client.files`, `client.fine_tuning.jobs`.

    f = client.files.create(file=open("train.jsonl", "rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=f.id)
    client.fine_tuning.jobs.retrieve(job.id).status

Theory of operation. These calls are not routed across a pool: a file or a job lives at one
provider, so each call goes to one provider, chosen by `_chosen`: the provider named by the
id (the mesh tags every id it hands out with its provider: `file-abc~openai`, see
`_core/codecs/files.py`), else the `provider=` argument, else the one provider whose
configuration says `infrastructure.files: true` (`.fine_tuning` for jobs). None or several is
a BadRequestError naming the candidates; a provider that does not offer the interface is one
naming the provider and the interface. Because the provider is in the id, a later
`retrieve`, `content` or `delete` finds it in any process (the proxy's workers too).

Each operation is written once, as a generator (`_Ops`) that yields the one request to send,
`(runtime, ApiWire)`, and is sent its answer's body; the pure codec builds the request and
reads the answer. MeshClient's resources send it with the blocking HTTP the batch path uses
(`_batch.send_wire`), AsyncMeshClient's with its httpx clients (`_abatch.asend_wire`). A
provider's error status is classified by its codec and raised as the OpenAI SDK's class.
"""
from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from typing import Any

from ._core import _errors as E
from ._media import BinaryContent, _aread_upload, read_upload
from ._response import MeshObject

__all__ = ["FileObject", "FileDeleted", "FineTuningJob", "FilePage", "JobPage", "Files", "AsyncFiles", "Jobs",
           "AsyncJobs", "FineTuning", "AsyncFineTuning", "chosen_provider", "INTERFACES"]

INTERFACES = {"files": "files", "fine_tuning": "fine-tuning"}
_Op = Generator[tuple[Any, Any], bytes, Any]


class FileObject(MeshObject):
    """OpenAI's File object: `id` (the mesh's, with its provider), `bytes`, `created_at`,
    `filename`, `purpose`, `status`."""

    __slots__ = ()


class FileDeleted(MeshObject):
    __slots__ = ()


class FineTuningJob(MeshObject):
    """OpenAI's fine_tuning.job: `id`, `status` (validating_files, queued, running, succeeded,
    failed, cancelled), `model`, `fine_tuned_model` once it has succeeded, `error`, ..."""

    __slots__ = ()


class _Page(MeshObject):
    """A list page: iterating it gives its items; `has_more` says whether the provider has more
    (ask again with `after=` the last id)."""

    __slots__ = ()
    _item: type[MeshObject] = MeshObject

    @property
    def data(self) -> list[Any]:
        return [self._item(item) for item in self._data.get("data", [])]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self._data.get("data", []))

    def has_next_page(self) -> bool:
        return bool(self._data.get("has_more"))


class FilePage(_Page):
    __slots__ = ()
    _item = FileObject


class JobPage(_Page):
    __slots__ = ()
    _item = FineTuningJob


def chosen_provider(client: Any, interface: str, provider: Any, where: str, ident: Any = None) -> tuple[Any, str]:
    """(the provider's runtime, the vendor's id in `ident`, or "") for a call of `interface`
    ("files" or "fine_tuning"); a clear error when no provider, or no single one, fits."""
    from ._core.codecs.files import untag

    vendor, tagged = untag(ident) if isinstance(ident, str) and ident else ("", None)
    if provider is not None and not isinstance(provider, str):
        raise E.InvalidArgumentError(f"{where}: 'provider' must be a provider's name, got {provider!r}",
                                     param="provider")
    if tagged is not None and provider is not None and tagged != provider:
        raise E.InvalidArgumentError(f"{where}: {ident!r} is provider {tagged!r}'s, not {provider!r}'s",
                                     param="provider")
    core = client.core
    name = tagged or provider
    label = INTERFACES[interface]
    if name is not None:
        runtime = core.providers.get(name)
        if runtime is None:
            raise E.NotFoundError(f"{where}: no provider {name!r} in this mesh (its providers: "
                                  f"{', '.join(core.providers) or 'none'})", param="provider")
        why = _refusal(runtime, interface)
        if why is not None:
            raise E.BadRequestError(f"{where}: provider {name!r} does not offer {label}: {why}", param="provider")
        return runtime, vendor
    offering = [r for r in core.providers.values() if _refusal(r, interface) is None]
    if len(offering) == 1:
        return offering[0], vendor
    if not offering:
        raise E.BadRequestError(f"{where}: no provider of this mesh offers {label}: none says "
                                f"infrastructure.{interface}: true in its configuration (providers: "
                                f"{', '.join(core.providers) or 'none'})", param="provider")
    raise E.BadRequestError(f"{where}: several providers offer {label} ({', '.join(r.id for r in offering)}); "
                            "say which with provider=", param="provider")


def _refusal(runtime: Any, interface: str) -> str | None:
    """Why `runtime` cannot serve `interface`, or None when it can."""
    from ._core.codecs import infrastructure_of
    from ._core.codecs.files import files_codec

    connector = runtime.config.connector
    offered = infrastructure_of(connector, runtime.codec)
    if interface not in offered:
        return f"the '{connector}' connector does not offer it (it offers: {', '.join(sorted(offered)) or 'none'})"
    if not runtime.config.infrastructure.get(interface):
        return f"its configuration does not say infrastructure.{interface}: true"
    if files_codec(runtime.codec) is None:
        return f"its wire format ({runtime.codec.name}) has no {INTERFACES[interface]} API the mesh drives"
    return None


class _Ops:
    """Each operation once, as a generator of the request to send (see the module's docstring)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def _at(self, interface: str, provider: Any, where: str, ident: Any = None) -> tuple[Any, Any, Any, str]:
        from ._core.codecs.files import FilesCodec

        runtime, vendor = chosen_provider(self.client, interface, provider, where, ident)
        return runtime, runtime.bare_target(), FilesCodec(runtime.codec), vendor

    @staticmethod
    def _id(where: str, value: Any, param: str) -> str:
        if not isinstance(value, str) or not value:
            raise E.InvalidArgumentError(f"{where}: '{param}' is required (an id the mesh gave)", param=param)
        return value

    def upload(self, upload: Any, purpose: Any, provider: Any) -> _Op:
        where = "files.create"
        if not isinstance(purpose, str) or not purpose:
            raise E.InvalidArgumentError(f"{where}: 'purpose' is required (fine-tune, batch, assistants, ...)",
                                         param="purpose")
        runtime, target, codec, _ = self._at("files", provider, where)
        wire = codec.upload(target, filename=upload.filename, content=upload.data, purpose=purpose,
                            content_type=upload.content_type)
        return FileObject(codec.parse_file(target, (yield runtime, wire)))

    def list_files(self, purpose: Any, after: Any, limit: Any, order: Any, provider: Any) -> _Op:
        where = "files.list"
        if purpose is not None and not isinstance(purpose, str):
            raise E.InvalidArgumentError(f"{where}: 'purpose' must be a str, got {purpose!r}", param="purpose")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000):
            raise E.InvalidArgumentError(f"{where}: 'limit' must be 1..10000, got {limit!r}", param="limit")
        if order not in (None, "asc", "desc"):
            raise E.InvalidArgumentError(f"{where}: 'order' must be 'asc' or 'desc', got {order!r}", param="order")
        runtime, target, codec, vendor = self._at("files", provider, where, after)
        wire = codec.list_files(target, purpose, vendor or None, limit, order)
        return FilePage(codec.parse_files(target, (yield runtime, wire)))

    def file(self, action: str, file_id: Any, provider: Any) -> _Op:
        where = f"files.{action}"
        runtime, target, codec, vendor = self._at("files", provider, where, self._id(where, file_id, "file_id"))
        if action == "retrieve":
            return FileObject(codec.parse_file(target, (yield runtime, codec.retrieve_file(target, vendor))))
        if action == "delete":
            return FileDeleted(codec.parse_deleted(target, (yield runtime, codec.delete_file(target, vendor))))
        body = yield runtime, codec.content(target, vendor)
        return BinaryContent(body, "application/octet-stream")

    def create_job(self, args: Mapping[str, Any], provider: Any) -> _Op:
        where = "fine_tuning.jobs.create"
        model, training = args.get("model"), self._id(where, args.get("training_file"), "training_file")
        if not isinstance(model, str) or not model:
            raise E.InvalidArgumentError(f"{where}: 'model' is required (the provider's base model)", param="model")
        runtime, target, codec, vendor = self._at("fine_tuning", provider, where, training)
        payload = {k: v for k, v in args.items() if v is not None} | {"training_file": vendor}
        if args.get("validation_file") is not None:
            from ._core.codecs.files import untag

            ident, owner = untag(self._id(where, args["validation_file"], "validation_file"))
            if owner not in (None, runtime.id):
                raise E.InvalidArgumentError(f"{where}: the validation file is provider {owner!r}'s and the "
                                             f"training file provider {runtime.id!r}'s", param="validation_file")
            payload["validation_file"] = ident
        return FineTuningJob(codec.parse_job(target, (yield runtime, codec.create_job(target, payload))))

    def job(self, action: str, job_id: Any, provider: Any) -> _Op:
        where = f"fine_tuning.jobs.{action}"
        runtime, target, codec, vendor = self._at("fine_tuning", provider, where,
                                                  self._id(where, job_id, "fine_tuning_job_id"))
        wire = codec.retrieve_job(target, vendor) if action == "retrieve" else codec.cancel_job(target, vendor)
        return FineTuningJob(codec.parse_job(target, (yield runtime, wire)))

    def list_jobs(self, after: Any, limit: Any, provider: Any) -> _Op:
        where = "fine_tuning.jobs.list"
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100):
            raise E.InvalidArgumentError(f"{where}: 'limit' must be 1..100, got {limit!r}", param="limit")
        runtime, target, codec, vendor = self._at("fine_tuning", provider, where, after)
        return JobPage(codec.parse_jobs(target, (yield runtime, codec.list_jobs(target, vendor or None, limit))))


def _run(client: Any, op: _Op, api: str) -> Any:
    from ._batch import send_wire

    answer: Any = None
    while True:
        try:
            runtime, wire = op.send(answer)
        except StopIteration as end:
            return end.value
        answer = send_wire(client, runtime, wire, api)


async def _arun(client: Any, op: _Op, api: str) -> Any:
    from ._abatch import asend_wire

    answer: Any = None
    while True:
        try:
            runtime, wire = op.send(answer)
        except StopIteration as end:
            return end.value
        answer = await asend_wire(client, runtime, wire, api)


_FILES_API, _JOBS_API = "files API", "fine-tuning API"


class _Resource:
    def __init__(self, client: Any) -> None:
        self._ops = _Ops(client)


class Files(_Resource):
    """`client.files`: OpenAI's files resource at the provider that offers files. Each call
    takes `provider=` to name it (needed only when several offer files and the id does not say)."""

    def create(self, *, file: Any, purpose: str, provider: str | None = None) -> FileObject:
        """Upload `file` (a path, an open binary file, bytes or a (filename, content) tuple)."""
        made: FileObject = _run(self._ops.client, self._ops.upload(read_upload("files.create: 'file'", file), purpose,
                                                                   provider), _FILES_API)
        return made

    def list(self, *, purpose: str | None = None, after: str | None = None, limit: int | None = None,
             order: str | None = None, provider: str | None = None) -> FilePage:
        """The provider's files (of `purpose`), a page of `limit` after the file `after`."""
        page: FilePage = _run(self._ops.client, self._ops.list_files(purpose, after, limit, order, provider),
                              _FILES_API)
        return page

    def retrieve(self, file_id: str, *, provider: str | None = None) -> FileObject:
        found: FileObject = _run(self._ops.client, self._ops.file("retrieve", file_id, provider), _FILES_API)
        return found

    def content(self, file_id: str, *, provider: str | None = None) -> BinaryContent:
        """The file's bytes: `.read()`, `.content`, `.text`, `.write_to_file(path)`."""
        body: BinaryContent = _run(self._ops.client, self._ops.file("content", file_id, provider), _FILES_API)
        return body

    def delete(self, file_id: str, *, provider: str | None = None) -> FileDeleted:
        gone: FileDeleted = _run(self._ops.client, self._ops.file("delete", file_id, provider), _FILES_API)
        return gone


class AsyncFiles(_Resource):
    """`client.files` on AsyncMeshClient: MeshClient's calls, awaited (a path is read off the loop)."""

    async def create(self, *, file: Any, purpose: str, provider: str | None = None) -> FileObject:
        upload = await _aread_upload("files.create: 'file'", file)
        made: FileObject = await _arun(self._ops.client, self._ops.upload(upload, purpose, provider), _FILES_API)
        return made

    async def list(self, *, purpose: str | None = None, after: str | None = None, limit: int | None = None,
                   order: str | None = None, provider: str | None = None) -> FilePage:
        page: FilePage = await _arun(self._ops.client, self._ops.list_files(purpose, after, limit, order, provider),
                                     _FILES_API)
        return page

    async def retrieve(self, file_id: str, *, provider: str | None = None) -> FileObject:
        found: FileObject = await _arun(self._ops.client, self._ops.file("retrieve", file_id, provider), _FILES_API)
        return found

    async def content(self, file_id: str, *, provider: str | None = None) -> BinaryContent:
        body: BinaryContent = await _arun(self._ops.client, self._ops.file("content", file_id, provider), _FILES_API)
        return body

    async def delete(self, file_id: str, *, provider: str | None = None) -> FileDeleted:
        gone: FileDeleted = await _arun(self._ops.client, self._ops.file("delete", file_id, provider), _FILES_API)
        return gone


def _job_args(model: Any, training_file: Any, validation_file: Any, hyperparameters: Any, suffix: Any, seed: Any,
              extra: Mapping[str, Any]) -> dict[str, Any]:
    return {"model": model, "training_file": training_file, "validation_file": validation_file,
            "hyperparameters": hyperparameters, "suffix": suffix, "seed": seed, **extra}


class Jobs(_Resource):
    """`client.fine_tuning.jobs`: OpenAI's fine-tuning jobs at the provider that offers them."""

    def create(self, *, model: str, training_file: str, validation_file: str | None = None,
               hyperparameters: Mapping[str, Any] | None = None, suffix: str | None = None, seed: int | None = None,
               provider: str | None = None, **extra: Any) -> FineTuningJob:
        """Start fine-tuning `model` on `training_file` (an id `files.create` gave) at the provider
        that holds that file. Other OpenAI parameters (`method`, `metadata`, ...) pass through."""
        args = _job_args(model, training_file, validation_file, hyperparameters, suffix, seed, extra)
        job: FineTuningJob = _run(self._ops.client, self._ops.create_job(args, provider), _JOBS_API)
        return job

    def retrieve(self, fine_tuning_job_id: str, *, provider: str | None = None) -> FineTuningJob:
        job: FineTuningJob = _run(self._ops.client, self._ops.job("retrieve", fine_tuning_job_id, provider), _JOBS_API)
        return job

    def cancel(self, fine_tuning_job_id: str, *, provider: str | None = None) -> FineTuningJob:
        job: FineTuningJob = _run(self._ops.client, self._ops.job("cancel", fine_tuning_job_id, provider), _JOBS_API)
        return job

    def list(self, *, after: str | None = None, limit: int | None = None, provider: str | None = None) -> JobPage:
        """The provider's jobs, newest first; `after` a job id (the next page), `limit` 1..100."""
        page: JobPage = _run(self._ops.client, self._ops.list_jobs(after, limit, provider), _JOBS_API)
        return page


class AsyncJobs(_Resource):
    async def create(self, *, model: str, training_file: str, validation_file: str | None = None,
                     hyperparameters: Mapping[str, Any] | None = None, suffix: str | None = None,
                     seed: int | None = None, provider: str | None = None, **extra: Any) -> FineTuningJob:
        args = _job_args(model, training_file, validation_file, hyperparameters, suffix, seed, extra)
        job: FineTuningJob = await _arun(self._ops.client, self._ops.create_job(args, provider), _JOBS_API)
        return job

    async def retrieve(self, fine_tuning_job_id: str, *, provider: str | None = None) -> FineTuningJob:
        job: FineTuningJob = await _arun(self._ops.client, self._ops.job("retrieve", fine_tuning_job_id, provider),
                                         _JOBS_API)
        return job

    async def cancel(self, fine_tuning_job_id: str, *, provider: str | None = None) -> FineTuningJob:
        job: FineTuningJob = await _arun(self._ops.client, self._ops.job("cancel", fine_tuning_job_id, provider),
                                         _JOBS_API)
        return job

    async def list(self, *, after: str | None = None, limit: int | None = None,
                   provider: str | None = None) -> JobPage:
        page: JobPage = await _arun(self._ops.client, self._ops.list_jobs(after, limit, provider), _JOBS_API)
        return page


class FineTuning:
    """`client.fine_tuning`: `.jobs`."""

    def __init__(self, client: Any) -> None:
        self.jobs = Jobs(client)


class AsyncFineTuning:
    def __init__(self, client: Any) -> None:
        self.jobs = AsyncJobs(client)
