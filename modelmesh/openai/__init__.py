"""The real openai SDK over the mesh: `modelmesh.openai.OpenAI(config=...)` and `AsyncOpenAI`.

    from modelmesh.openai import OpenAI
    client = OpenAI(config="modelmesh.yaml")
    r = client.chat.completions.create(model="chat-completion", messages=[...])

    from modelmesh.openai import AsyncOpenAI
    async with AsyncOpenAI(config="modelmesh.yaml") as client:
        r = await client.chat.completions.create(model="chat-completion", messages=[...])

`OpenAI` is a subclass of `openai.OpenAI` (`AsyncOpenAI` of `openai.AsyncOpenAI`): every
surface of the SDK (its pydantic types, `parse`, `with_raw_response`,
`with_streaming_response`, `with_options`, its exception types) is the SDK's own. Only the
HTTP transport is ours (`MeshTransport`, `AsyncMeshTransport`): requests go through a
MeshClient (an AsyncMeshClient) built from `config`, with its routing and failover, and
come back as OpenAI would answer them. A subclass rather than a factory because the SDK's
`copy()` / `with_options()` rebuilds the client through `self.__class__(...)`: the copy
stays a `modelmesh.openai.OpenAI`, shares the same mesh and keeps `.mesh`, and
`isinstance(client, modelmesh.openai.OpenAI)` means what it says.

Needs the `openai` extra: `pip install 'modelmesh-lite[openai]'`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

try:
    import httpx
    import openai as _openai
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError("modelmesh.openai needs the openai SDK: pip install 'modelmesh-lite[openai]'") from exc

from ._transport import AsyncMeshTransport, MeshTransport

if TYPE_CHECKING:
    from .._async_client import AsyncMeshClient
    from ..client import MeshClient

__all__ = ["OpenAI", "AsyncOpenAI", "MeshTransport", "AsyncMeshTransport", "MESH_BASE_URL"]

# The SDK builds URLs from its base_url; nothing is ever sent there (the transport is the
# mesh), and `.invalid` can never resolve, so a request that escaped the mesh could not leave.
MESH_BASE_URL = "http://modelmesh.invalid/v1"
# The SDK insists on an API key and sends it to its transport; the mesh ignores it and sends
# each provider the key of its own configuration.
_MESH_KEY = "modelmesh"


class _MeshHttpClient(httpx.Client):
    """The httpx client of a modelmesh.openai.OpenAI (and of its copies)."""

    def __init__(self, transport: MeshTransport) -> None:
        super().__init__(transport=transport, base_url=MESH_BASE_URL)
        self.mesh_transport = transport


class _AsyncMeshHttpClient(httpx.AsyncClient):
    """The httpx client of a modelmesh.openai.AsyncOpenAI (and of its copies)."""

    def __init__(self, transport: AsyncMeshTransport) -> None:
        super().__init__(transport=transport, base_url=MESH_BASE_URL)
        self.mesh_transport = transport


class OpenAI(_openai.OpenAI):
    """`openai.OpenAI` whose requests are routed by the mesh.

    Give `config` (a YAML/JSON path, a dict or a MeshConfig: what `MeshClient` takes) or a
    ready `mesh` (a MeshClient; the SDK client then owns it). Other keyword arguments are
    the SDK's (`timeout`, `default_headers`, ...). `max_retries` defaults to 0: the mesh
    already retries and fails over, and the SDK's retries on top would repeat a whole
    failover round. `api_key` and `base_url` are not taken: each provider's key and URL come
    from the mesh configuration. Closing this client (or leaving its `with` block) closes
    the mesh; copies made by `with_options()` share it.
    """

    def __init__(
        self,
        config: str | os.PathLike[str] | Mapping[str, Any] | Any = None,
        *,
        mesh: MeshClient | None = None,
        http_client: httpx.Client | None = None,
        api_key: Any = None,
        base_url: str | httpx.URL | None = None,
        max_retries: int = 0,
        **kwargs: Any,
    ) -> None:
        _check_endpoint("OpenAI", api_key, base_url)
        if not _is_copy("OpenAI", http_client, _MeshHttpClient, config, mesh):
            from ..client import MeshClient

            http_client = _MeshHttpClient(MeshTransport(_mesh_from("OpenAI", MeshClient, config, mesh)))
        super().__init__(api_key=_MESH_KEY, base_url=MESH_BASE_URL, http_client=http_client,
                         max_retries=max_retries, **kwargs)

    @property
    def mesh(self) -> MeshClient:
        """The MeshClient requests go through: `status()`, `route()`, `subscribe()`, ..."""
        client = self._client
        assert isinstance(client, _MeshHttpClient)
        mesh: MeshClient = client.mesh_transport.mesh
        return mesh

    def __repr__(self) -> str:
        return f"modelmesh.openai.OpenAI(mesh={self.mesh!r}, max_retries={self.max_retries})"


class AsyncOpenAI(_openai.AsyncOpenAI):
    """`openai.AsyncOpenAI` whose requests are routed by the mesh: `OpenAI`'s twin for asyncio.

    Give `config` (what `AsyncMeshClient` takes) or a ready `mesh` (an AsyncMeshClient; the
    SDK client then owns it). The SDK's other keyword arguments are taken; `max_retries`
    defaults to 0; `api_key`, `base_url` and `http_client` are refused, as by `OpenAI`.
    `await client.close()` (or leaving its `async with` block) closes the mesh; copies made
    by `with_options()` share it. As an AsyncMeshClient does, the client belongs to the
    event loop it first sends on.
    """

    def __init__(
        self,
        config: str | os.PathLike[str] | Mapping[str, Any] | Any = None,
        *,
        mesh: AsyncMeshClient | None = None,
        http_client: httpx.AsyncClient | None = None,
        api_key: Any = None,
        base_url: str | httpx.URL | None = None,
        max_retries: int = 0,
        **kwargs: Any,
    ) -> None:
        _check_endpoint("AsyncOpenAI", api_key, base_url)
        if not _is_copy("AsyncOpenAI", http_client, _AsyncMeshHttpClient, config, mesh):
            from .._async_client import AsyncMeshClient

            mesh_client = _mesh_from("AsyncOpenAI", AsyncMeshClient, config, mesh)
            http_client = _AsyncMeshHttpClient(AsyncMeshTransport(mesh_client))
        super().__init__(api_key=_MESH_KEY, base_url=MESH_BASE_URL, http_client=http_client,
                         max_retries=max_retries, **kwargs)

    @property
    def mesh(self) -> AsyncMeshClient:
        """The AsyncMeshClient requests go through: `status()`, `route()`, `subscribe()`, ..."""
        client = self._client
        assert isinstance(client, _AsyncMeshHttpClient)
        mesh: AsyncMeshClient = client.mesh_transport.mesh
        return mesh

    def __repr__(self) -> str:
        return f"modelmesh.openai.AsyncOpenAI(mesh={self.mesh!r}, max_retries={self.max_retries})"


def _check_endpoint(name: str, api_key: Any, base_url: Any) -> None:
    # the refused values are never repeated: an api_key is a secret
    if api_key not in (None, _MESH_KEY):
        raise TypeError(f"modelmesh.openai.{name} takes no api_key: the mesh sends each provider the key of its "
                        "configuration (providers.<id>.config.auth.api_key)")
    if base_url is not None and str(base_url).rstrip("/") != MESH_BASE_URL:
        raise TypeError(f"modelmesh.openai.{name} takes no base_url: requests go through the mesh; set each "
                        "provider's base_url in its configuration")


def _is_copy(name: str, http_client: Any, ours: type, config: Any, mesh: Any) -> bool:
    """True for a copy made by the SDK (`with_options`): it passes our http client, and with
    it the same mesh. Any other http client is refused."""
    if isinstance(http_client, ours):
        if config is not None or mesh is not None:
            raise TypeError("give config= or mesh=, not both with a modelmesh http_client")
        return True
    if http_client is not None:
        raise TypeError(f"modelmesh.openai.{name} sends through the mesh and takes no http_client; "
                        "give config= (or mesh=)")
    return False


def _mesh_from(name: str, cls: type, config: Any, mesh: Any) -> Any:
    if (config is None) == (mesh is None):
        raise TypeError(f"modelmesh.openai.{name} needs exactly one of config= (a path, dict or MeshConfig) "
                        f"or mesh= (a {cls.__name__})")
    if mesh is not None:
        if not isinstance(mesh, cls):
            raise TypeError(f"mesh must be a modelmesh.{cls.__name__}, got {type(mesh).__name__}")
        return mesh
    return cls(config)
