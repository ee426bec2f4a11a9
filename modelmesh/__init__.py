"""ModelMesh Lite: capability-driven LLM routing with automatic failover.

    import modelmesh
    client = modelmesh.create("chat-completion")          # providers from the environment
    client = modelmesh.MeshClient(config="modelmesh.yaml")  # or from configuration
    aclient = modelmesh.AsyncMeshClient(config="modelmesh.yaml")  # the same, awaited (extra `async`)
    built = modelmesh.build("modelmesh.yaml")                # a ready sans-IO core, for embedders
    r = client.chat.completions.create(model="chat-completion", messages=[...])

Importing this package is cheap: the client, requests, YAML and everything else load on
first use (PEP 562 module `__getattr__`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._core._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AttemptRecord,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigurationError,
    ConflictError,
    ContentFilteredError,
    ContentFilterFinishReasonError,
    ContextLengthError,
    InternalError,
    InternalServerError,
    InvalidArgumentError,
    LengthFinishReasonError,
    ModelMeshError,
    NoModelAvailableError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StreamInterruptedError,
    UnprocessableEntityError,
)

__version__ = "0.1.0"

__all__ = [
    "create", "MeshClient", "AsyncMeshClient", "QuickProvider", "build", "Built", "load_config", "RoutingOptions",
    "RoutingDecision", "Router", "CompletionRequest", "CompletionResponse",
    "BatchJob", "BatchResult", "BatchProgress",
    "AttemptRecord", "ModelMeshError", "ConfigurationError", "InternalError",
    # the OpenAI SDK's error hierarchy, under ModelMeshError
    "APIError", "APIStatusError", "BadRequestError", "InvalidArgumentError", "ContextLengthError", "ContentFilteredError",
    "AuthenticationError", "PermissionDeniedError", "NotFoundError", "ConflictError", "UnprocessableEntityError",
    "RateLimitError", "BudgetExceededError", "InternalServerError", "NoModelAvailableError", "APIConnectionError",
    "APITimeoutError", "StreamInterruptedError",
    # chat.completions.parse
    "LengthFinishReasonError", "ContentFilterFinishReasonError",
]

_LAZY = {
    "create": ("modelmesh._convenience", "create"),
    "QuickProvider": ("modelmesh._convenience", "QuickProvider"),
    "MeshClient": ("modelmesh.client", "MeshClient"),
    "AsyncMeshClient": ("modelmesh._async_client", "AsyncMeshClient"),
    "build": ("modelmesh._build", "build"),
    "Built": ("modelmesh._build", "Built"),
    "load_config": ("modelmesh.config", "load_config"),
    "RoutingOptions": ("modelmesh._core._mesh", "RoutingOptions"),
    "RoutingDecision": ("modelmesh._core._mesh", "RoutingDecision"),
    "Router": ("modelmesh.router", "Router"),
    "CompletionRequest": ("modelmesh.router", "CompletionRequest"),
    "CompletionResponse": ("modelmesh.router", "CompletionResponse"),
    "BatchJob": ("modelmesh._batch", "BatchJob"),
    "BatchResult": ("modelmesh._batch", "BatchResult"),
    "BatchProgress": ("modelmesh._batch", "BatchProgress"),
}

if TYPE_CHECKING:
    from ._async_client import AsyncMeshClient
    from ._batch import BatchJob, BatchProgress, BatchResult
    from ._build import Built, build
    from ._convenience import QuickProvider, create
    from ._core._mesh import RoutingDecision, RoutingOptions
    from .client import MeshClient
    from .config import load_config
    from .router import CompletionRequest, CompletionResponse, Router


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'modelmesh' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
