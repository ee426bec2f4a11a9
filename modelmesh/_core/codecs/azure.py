"""Azure OpenAI: the OpenAI wire format behind deployment URLs and an `api-key` header.

Theory of operation: Azure serves the OpenAI request/response/stream format, so this
codec is the OpenAI codec with three things changed.

* Addressing: `{base_url}/openai/deployments/{deployment}/chat/completions?api-version=V`
  (and `/embeddings`, `/audio/...`, `/images/...`: OpenAI's paths); models are listed at
  `{base_url}/openai/models?api-version=V`. The
  deployment defaults to the model id; the api-version defaults to the data-plane
  inference GA release `DEFAULT_API_VERSION`. With `api_version="v1"` the newer
  version-less surface `{base_url}/openai/v1/...` is used instead and the deployment goes
  in the body's `model`. A `base_url` that already ends in `/openai` is accepted.
* Auth: `api-key: <key>` instead of `Authorization: Bearer`; with
  `target.options["auth"] == "bearer"` the key is sent as a Microsoft Entra ID bearer
  token instead.
* Content filtering: Azure rejects a filtered prompt with 400 `code: content_filter`
  (innererror `ResponsibleAIPolicyViolation`), handled by the OpenAI classification, and
  filters a completion by ending it with `finish_reason: "content_filter"`. A completion
  whose every choice was filtered away with nothing left is raised as CONTENT_FILTERED;
  in a stream, a filter finish before any content is a `StreamError(CONTENT_FILTERED)`.
"""
from __future__ import annotations

import re
from typing import Any

from .._types import ErrorKind
from ._base import CodecError, Target
from .openai import _PATHS, _STATIC_HEADERS, OpenAICodec

__all__ = ["AzureOpenAICodec", "DEFAULT_API_VERSION"]

DEFAULT_API_VERSION = "2024-10-21"
_DEPLOYMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_API_VERSION = re.compile(r"v1|preview|\d{4}-\d{2}-\d{2}(?:-preview)?")


class AzureOpenAICodec(OpenAICodec):
    name = "azure-openai"
    default_base_url = None  # every Azure resource has its own endpoint
    filter_is_error = True

    def _url(self, target: Target, op: str) -> str:
        version = target.api_version or DEFAULT_API_VERSION
        if not _API_VERSION.fullmatch(version):
            raise ValueError(f"Azure api_version must look like 2024-10-21 or v1, got {version!r}")
        root = self.base_url(target)
        if not root.endswith("/openai"):
            root += "/openai"
        if version in ("v1", "preview"):
            query = "" if version == "v1" else "?api-version=preview"
            return f"{root}/v1{_PATHS[op]}{query}"
        if op == "models":
            return f"{root}/models?api-version={version}"
        return f"{root}/deployments/{self._deployment(target)}{_PATHS[op]}?api-version={version}"

    @staticmethod
    def _deployment(target: Target) -> str:
        deployment = target.deployment or target.model
        if not _DEPLOYMENT.fullmatch(deployment):
            raise ValueError(f"Azure deployment names use letters, digits, '.', '_' and '-'; got {deployment!r}")
        return deployment

    def _body_model(self, target: Target) -> str:
        # The deployment decides the model on Azure; on the v1 surface `model` names it.
        return target.deployment or target.model

    def _get_headers(self, target: Target) -> dict[str, str]:
        if not target.api_key:
            return {}
        if target.options.get("auth") == "bearer":
            return {"Authorization": f"Bearer {target.api_key}"}
        return {"api-key": target.api_key}

    def _check_chat(self, target: Target, data: dict[str, Any]) -> None:
        choices = [c for c in data["choices"] if isinstance(c, dict)]
        if choices and all(c.get("finish_reason") == "content_filter" and not _has_output(c) for c in choices):
            raise CodecError.of(ErrorKind.CONTENT_FILTERED, "the completion was filtered by Azure's content filter",
                                code="content_filter", status=200)


_STATIC_HEADERS.add(AzureOpenAICodec._get_headers)  # the key header alone: the same for every request to a target


def _has_output(choice: dict[str, Any]) -> bool:
    message = choice.get("message")
    return isinstance(message, dict) and bool(message.get("content") or message.get("tool_calls"))
