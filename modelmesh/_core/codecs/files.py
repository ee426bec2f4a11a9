"""Vendor files and fine-tuning APIs, pure: what each request is and what each answer means.

Theory of operation: the shell (`modelmesh/_files.py`, and the batch path for its input and
result files) sends the `ApiWire`s built here with its own HTTP and hands the answer's bytes
back to a `parse_*` method; nothing here does I/O. OpenAI's wire (and the OpenAI-compatible
servers that offer these APIs: Groq, Together, ...) is the one the mesh drives:

    POST   {base}/files                multipart `purpose`, `file`      -> File object
    GET    {base}/files[?purpose=&after=&limit=&order=]                 -> {"object": "list", "data", "has_more"}
    GET    {base}/files/{id}                                            -> File object
    GET    {base}/files/{id}/content                                    -> the bytes
    DELETE {base}/files/{id}                                            -> {"id", "deleted": true}
    POST   {base}/fine_tuning/jobs     {"model", "training_file", ...}  -> fine_tuning.job
    GET    {base}/fine_tuning/jobs[?after=&limit=]                      -> {"object": "list", "data", "has_more"}
    GET    {base}/fine_tuning/jobs/{id}                                 -> fine_tuning.job
    POST   {base}/fine_tuning/jobs/{id}/cancel                          -> fine_tuning.job

Ids. The mesh hands out a provider's id with the provider's name after a `~`
(`file-abc~openai`, `ftjob-xyz~groq`): `~` is URL-safe and no provider id contains one
(`_config._PROVIDER_ID`), so `untag` always finds the provider again, in any process, and
the vendor's own id is the part before the last `~`. An untagged id is a vendor's id as it
is; the caller then says which provider (or there is only one).
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .. import _errors as E
from .._types import ErrorKind
from ._base import Codec, CodecError, Target, load_json

__all__ = ["ApiWire", "FilesCodec", "files_codec", "tag", "untag", "vendor_id", "multipart", "JOB_STATUSES",
           "JOB_ENDED"]

JOB_STATUSES = ("validating_files", "queued", "running", "succeeded", "failed", "cancelled")
JOB_ENDED = frozenset({"succeeded", "failed", "cancelled"})
_TAG = "~"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiWire:
    """One HTTP request to a provider's API: `json`, or `content` bytes sent as they are.
    `headers` hold credentials: never printed."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(method={self.method!r}, url={self.url!r})"


def tag(ident: str, provider: str) -> str:
    """The id the mesh hands out for a provider's `ident`."""
    return f"{ident}{_TAG}{provider}"


def untag(mesh_id: str) -> tuple[str, str | None]:
    """(the vendor's id, the provider it came from, or None for an untagged id)."""
    ident, sep, provider = mesh_id.rpartition(_TAG)
    return (ident, provider) if sep and ident and provider else (mesh_id, None)


def vendor_id(value: Any, param: str) -> str:
    """A vendor id put in a URL path or a body: refused when it could change the path."""
    if not isinstance(value, str) or not _SAFE_ID.match(value):
        raise E.InvalidArgumentError(f"not a valid {param.replace('_', ' ')}: {value!r}", param=param)
    return value


def multipart(fields: Mapping[str, str], filename: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    """(the body, its Content-Type) of a multipart/form-data upload: `fields`, then the file."""
    boundary = "modelmesh-" + hashlib.sha256(content).hexdigest()[:32]
    safe_name = re.sub(r'["\r\n\\]', "_", filename) or "upload"
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
             for name, value in fields.items()]
    parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{safe_name}\"\r\n"
                 f"Content-Type: {content_type}\r\n\r\n".encode())
    parts += [content, f"\r\n--{boundary}--\r\n".encode()]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class FilesCodec:
    """OpenAI's files and fine-tuning APIs over a provider's OpenAI codec `codec`."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def _headers(self, target: Target) -> dict[str, str]:
        # the codec's own auth and version headers, as its model listing sends them
        wire = self.codec.build_request(target, "models", {}, stream=False)
        return {k: v for k, v in wire.headers.items() if k.lower() != "accept"} | {"Accept": "application/json"}

    def _url(self, target: Target, path: str, query: Mapping[str, Any] | None = None) -> str:
        given = {k: v for k, v in (query or {}).items() if v is not None}
        return f"{self.codec.base_url(target)}{path}" + (f"?{urlencode(given)}" if given else "")

    def _wire(self, method: str, target: Target, path: str, *, query: Mapping[str, Any] | None = None,
              json: Any = None) -> ApiWire:
        headers = self._headers(target)
        if json is not None:
            headers["Content-Type"] = "application/json"
        return ApiWire(method=method, url=self._url(target, path, query), headers=headers, json=json)

    # -- files -------------------------------------------------------------------------------
    def upload(self, target: Target, *, filename: str, content: bytes, purpose: str,
               content_type: str = "application/octet-stream") -> ApiWire:
        body, ctype = multipart({"purpose": purpose}, filename, content, content_type)
        return ApiWire(method="POST", url=self._url(target, "/files"), headers=self._headers(target) | {
            "Content-Type": ctype}, content=body)

    def list_files(self, target: Target, purpose: str | None = None, after: str | None = None,
                   limit: int | None = None, order: str | None = None) -> ApiWire:
        return self._wire("GET", target, "/files", query={
            "purpose": purpose, "after": vendor_id(after, "after") if after is not None else None, "limit": limit,
            "order": order})

    def retrieve_file(self, target: Target, file_id: str) -> ApiWire:
        return self._wire("GET", target, f"/files/{vendor_id(file_id, 'file_id')}")

    def content(self, target: Target, file_id: str) -> ApiWire:
        wire = self._wire("GET", target, f"/files/{vendor_id(file_id, 'file_id')}/content")
        return ApiWire(method="GET", url=wire.url, headers={**wire.headers, "Accept": "*/*"})

    def delete_file(self, target: Target, file_id: str) -> ApiWire:
        return self._wire("DELETE", target, f"/files/{vendor_id(file_id, 'file_id')}")

    def parse_file(self, target: Target, body: bytes) -> dict[str, Any]:
        data = self._object(target, body, "a file request")
        if not isinstance(data.get("id"), str) or data.get("object") != "file":
            raise _malformed(target, "the file answer is not a File object")
        return _tagged(data, target.provider, "id")

    def parse_files(self, target: Target, body: bytes) -> dict[str, Any]:
        data = self._object(target, body, "a file listing")
        items = data.get("data")
        if not isinstance(items, list):
            raise _malformed(target, "the file listing has no data list")
        files = [_tagged(f, target.provider, "id") for f in items if isinstance(f, dict) and isinstance(f.get("id"), str)]
        return {"object": "list", "data": files, "first_id": files[0]["id"] if files else None,
                "last_id": files[-1]["id"] if files else None, "has_more": bool(data.get("has_more"))}

    def parse_deleted(self, target: Target, body: bytes) -> dict[str, Any]:
        data = self._object(target, body, "a file deletion")
        if not isinstance(data.get("id"), str) or not isinstance(data.get("deleted"), bool):
            raise _malformed(target, "the deletion answer has no id or deleted flag")
        return _tagged({"id": data["id"], "object": "file", "deleted": data["deleted"]}, target.provider, "id")

    # -- fine-tuning -------------------------------------------------------------------------
    def create_job(self, target: Target, payload: Mapping[str, Any]) -> ApiWire:
        """`payload` holds vendor ids (the caller untags the mesh's)."""
        return self._wire("POST", target, "/fine_tuning/jobs", json=dict(payload))

    def list_jobs(self, target: Target, after: str | None = None, limit: int | None = None) -> ApiWire:
        return self._wire("GET", target, "/fine_tuning/jobs",
                          query={"after": vendor_id(after, "after") if after is not None else None, "limit": limit})

    def retrieve_job(self, target: Target, job_id: str) -> ApiWire:
        return self._wire("GET", target, f"/fine_tuning/jobs/{vendor_id(job_id, 'fine_tuning_job_id')}")

    def cancel_job(self, target: Target, job_id: str) -> ApiWire:
        return self._wire("POST", target, f"/fine_tuning/jobs/{vendor_id(job_id, 'fine_tuning_job_id')}/cancel")

    def parse_job(self, target: Target, body: bytes) -> dict[str, Any]:
        return self._job(target, self._object(target, body, "a fine-tuning request"))

    def parse_jobs(self, target: Target, body: bytes) -> dict[str, Any]:
        data = self._object(target, body, "a fine-tuning job listing")
        items = data.get("data")
        if not isinstance(items, list):
            raise _malformed(target, "the fine-tuning job listing has no data list")
        return {"object": "list", "data": [self._job(target, j) for j in items if isinstance(j, dict)],
                "has_more": bool(data.get("has_more"))}

    def _job(self, target: Target, data: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(data.get("id"), str) or data.get("status") not in JOB_STATUSES:
            raise _malformed(target, f"the fine-tuning job answer has no id or an unknown status "
                                     f"({data.get('status')!r})")
        out = _tagged(data, target.provider, "id", "training_file", "validation_file")
        if isinstance(out.get("result_files"), list):
            out["result_files"] = [tag(f, target.provider) if isinstance(f, str) else f for f in out["result_files"]]
        return out

    def _object(self, target: Target, body: bytes, what: str) -> dict[str, Any]:
        data = load_json(body)
        if not isinstance(data, dict):
            raise _malformed(target, f"answered {what} with something that is not a JSON object")
        return data


def files_codec(codec: Codec) -> FilesCodec | None:
    """The files and fine-tuning APIs of a provider's codec, or None when its wire format has
    none the mesh drives (only OpenAI's, which the OpenAI-compatible connectors speak)."""
    return FilesCodec(codec) if codec.name == "openai" else None


def _tagged(data: dict[str, Any], provider: str, *keys: str) -> dict[str, Any]:
    out = dict(data)
    for key in keys:
        if isinstance(out.get(key), str) and out[key]:
            out[key] = tag(out[key], provider)
    return out


def _malformed(target: Target, message: str) -> CodecError:
    return CodecError.of(ErrorKind.MALFORMED, f"{target.provider}: {message}")
