"""The Connector Development Kit: base classes for provider connectors (seed 003).

A provider connector here is a *codec*: pure translation between the OpenAI-shaped
requests the mesh speaks and a vendor's wire format. The shells do the HTTP, so a
connector written once works under every shell and in replay, and gets retries,
failover, rotation, rate-limit and budget handling for free.

- `BaseProvider`: a connector that does its own I/O: override `complete(request)` (and
  `stream`); everything else is inherited (see `_provider.py`).
- `Codec`: the full codec contract (build_request, parse_response, stream_decoder, error
  classification), for a wire format of your own that the shell sends.
- `OpenAICompatibleProvider`: the OpenAI chat-completions format; subclass and override
  `_get_headers`, `_url` or `_body_model` for a service that differs a little (Azure's
  connector is one such subclass).
- `HttpApiProvider`: a JSON REST API that is not OpenAI-shaped. Set `path` (and the auth
  header), override `translate_request` and `translate_response`; errors are classified
  from the HTTP status and `error_message`. It does not stream: streaming requests skip it.

Use one from configuration as `connector: "my_package.module:MyProvider"`. A provider class
offers no infrastructure (codecs.INTERFACES) until it names it in `infrastructure`; one that
offers "quota" answers `quota_request(target) -> WireRequest` and
`parse_quota(status, headers, body) -> QuotaReport | None`.

Secret stores (seed 003): `BaseSecretStore` (override `_resolve(name)`; for management,
`_names`, `_store` and `_remove`: a store without them is read-only and says so) and
`FileSecretStore` (a `.env`, JSON or TOML file, by suffix). Use one from configuration as
`secrets: {store: "my_package.module:MyStore"}`: it is called with the SecretsConfig.

Observability connectors (seed 003): `BaseObservability` implements the four interfaces
(`emit`, `log`, `flush`, `trace`, with `events.filter`, `include_metadata` and
`tracing.min_severity` applied) over one method, `_write(record)`; override it, or any one
door. `ConsoleObservability`, `FileObservability` and `NullObservability` are the built-in
ones. Use one as `observability.connectors[i].connector: "my_package.module:MySink"`.

Rotation policies (seed 003): `BaseRotationPolicy` (override `should_deactivate` or
`get_reason`, `get_recovery_schedule`, `should_recover`; each defaults to the pool's
configured behaviour) and `ThresholdRotationPolicy` (numbers only). Use one as
`rotation.policy: {connector: "my_package.module:MyPolicy", config: {...}}`.

Storage (seed 003): `BaseStorage` (the full contract) and `KeyValueStorage` (override
`_get`, `_set`, `_delete`, `_keys`). Use one as `storage.connector: "my_package.module:MyStore"`.

Health checks (seed 003): `BaseDiscovery` (override `probe`, `request` or `judge`; each
defaults to the built-in check) and `HttpHealthDiscovery` (configuration only). Use one as
`discovery.health.connector: "my_package.module:MyCheck"`.
"""
from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

from .._core._quota import QuotaReport
from .._core._types import ErrorInfo, ErrorKind, WireRequest
from .._core.codecs._base import (
    Codec,
    CodecError,
    SSEStreamDecoder,
    StreamDecoder,
    StreamDone,
    StreamError,
    Target,
    kind_for_status,
    load_json,
    merge_headers,
)
from .._core.codecs.connector import error_message
from .._core.codecs.openai import OpenAICodec
from ..connectors.discovery import BaseDiscovery, HealthCheck, HttpHealthDiscovery
from ..connectors.secrets import BaseSecretStore, FileSecretStore, SecretStoreError
from ..connectors.storage import BaseStorage, KeyValueStorage, Lock, Stat, StorageUnavailable
from ..observability._base import BaseObservability, ConsoleObservability, FileObservability, NullObservability
from . import mixins
from ._provider import BaseProvider, CompletionRequest, CompletionResponse, TokenUsage
from ._rotation import BaseRotationPolicy, ThresholdRotationPolicy
from .mixins import *  # noqa: F403 - the mixins, listed in mixins/__init__.py

__all__ = [
    "BaseProvider", "CompletionRequest", "CompletionResponse", "TokenUsage", "Codec",
    "OpenAICompatibleProvider", "HttpApiProvider", "Target", "CodecError", "ErrorInfo",
    "ErrorKind", "WireRequest", "StreamDecoder", "SSEStreamDecoder", "StreamDone", "StreamError",
    "BaseSecretStore", "FileSecretStore", "SecretStoreError",
    "BaseObservability", "ConsoleObservability", "FileObservability", "NullObservability",
    "BaseRotationPolicy", "ThresholdRotationPolicy",
    "BaseStorage", "KeyValueStorage", "Lock", "Stat", "StorageUnavailable",
    "BaseDiscovery", "HttpHealthDiscovery", "HealthCheck", "QuotaReport",
]
__all__ += mixins.__all__


class OpenAICompatibleProvider(OpenAICodec):
    """The OpenAI wire format; every parameter passes through."""

    name = "openai-compatible"


class _NoStream(StreamDecoder):
    def feed(self, data: bytes) -> list:
        return [StreamError(info=ErrorInfo(kind=ErrorKind.BAD_REQUEST, message="this connector does not stream"))]

    def close(self) -> list:
        return []


class HttpApiProvider(Codec):
    """A JSON REST API: override `translate_request` and `translate_response`."""

    name = "http-api"
    ops = frozenset({"chat"})
    path = "/chat"
    method = "POST"
    auth_header = "Authorization"
    auth_scheme = "Bearer"  # "" sends the bare key

    @abc.abstractmethod
    def translate_request(self, body: Mapping[str, Any], target: Target) -> Any:
        """OpenAI-shaped `body` -> the JSON this API takes."""

    @abc.abstractmethod
    def translate_response(self, data: Any, target: Target) -> dict:
        """This API's JSON -> an OpenAI `chat.completion` dict."""

    def error_message(self, payload: Any) -> str:
        return error_message(payload)

    def build_request(self, target: Target, op: str, body: Mapping[str, Any], *, stream: bool) -> WireRequest:
        self._check_op(op)
        if stream:
            raise CodecError.of(ErrorKind.BAD_REQUEST, f"the {self.name} connector does not stream")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if target.api_key:
            headers[self.auth_header] = f"{self.auth_scheme} {target.api_key}".strip()
        return WireRequest(method=self.method, url=self.base_url(target) + self.path,
                           headers=merge_headers(headers, target.headers), json=self.translate_request(body, target))

    def parse_response(self, target: Target, op: str, status: int, headers: Mapping[str, str], body: bytes) -> dict:
        data = load_json(body)
        try:
            out = self.translate_response(data, target)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise CodecError.of(ErrorKind.MALFORMED, f"unexpected response from {self.name}: {type(exc).__name__}") from None
        if not isinstance(out, dict) or not out.get("choices"):
            raise CodecError.of(ErrorKind.MALFORMED, f"{self.name}: translate_response must return a chat.completion dict")
        return out

    def stream_decoder(self, target: Target, op: str, *, created: int = 0) -> StreamDecoder:
        return _NoStream()

    def _classify_payload(self, status: int | None, payload: Any) -> ErrorInfo:
        return ErrorInfo(kind=kind_for_status(status), message=self.error_message(payload))
