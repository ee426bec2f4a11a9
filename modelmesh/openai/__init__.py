"""The real openai SDK over the mesh: `modelmesh.openai.OpenAI(config=...)`.

    from modelmesh.openai import OpenAI
    client = OpenAI(config="modelmesh.yaml")
    r = client.chat.completions.create(model="chat-completion", messages=[...])

`OpenAI` is a subclass of `openai.OpenAI`: every surface of the SDK (its pydantic types,
`parse`, `with_raw_response`, `with_streaming_response`, `with_options`, its exception
types) is the SDK's own. Only the HTTP transport is ours (`MeshTransport`): requests go
through a MeshClient built from `config`, with its routing and failover, and come back as
OpenAI would answer them. A subclass rather than a factory because the SDK's `copy()` /
`with_options()` rebuilds the client through `self.__class__(...)`: the copy stays a
`modelmesh.openai.OpenAI`, shares the same mesh and keeps `.mesh`, and
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

from ._transport import MeshTransport

if TYPE_CHECKING:
    from ..client import MeshClient

__all__ = ["OpenAI", "MeshTransport", "MESH_BASE_URL"]

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
        if api_key not in (None, _MESH_KEY):
            raise TypeError("modelmesh.openai.OpenAI takes no api_key: the mesh sends each provider the key of its "
                            "configuration (providers.<id>.config.auth.api_key)")
        if base_url is not None and str(base_url).rstrip("/") != MESH_BASE_URL:
            raise TypeError("modelmesh.openai.OpenAI takes no base_url: requests go through the mesh; set each "
                            "provider's base_url in its configuration")
        if isinstance(http_client, _MeshHttpClient):  # a copy (with_options): the same mesh
            if config is not None or mesh is not None:
                raise TypeError("give config= or mesh=, not both with a modelmesh http_client")
        elif http_client is not None:
            raise TypeError("modelmesh.openai.OpenAI sends through the mesh and takes no http_client; "
                            "give config= (or mesh=)")
        else:
            http_client = _MeshHttpClient(MeshTransport(_mesh_from(config, mesh)))
        super().__init__(api_key=_MESH_KEY, base_url=MESH_BASE_URL, http_client=http_client,
                         max_retries=max_retries, **kwargs)

    @property
    def mesh(self) -> MeshClient:
        """The MeshClient requests go through: `status()`, `route()`, `subscribe()`, ..."""
        client = self._client
        assert isinstance(client, _MeshHttpClient)
        return client.mesh_transport.mesh

    def __repr__(self) -> str:
        return f"modelmesh.openai.OpenAI(mesh={self.mesh!r}, max_retries={self.max_retries})"


def _mesh_from(config: Any, mesh: Any) -> Any:
    if (config is None) == (mesh is None):
        raise TypeError("modelmesh.openai.OpenAI needs exactly one of config= (a path, dict or MeshConfig) "
                        "or mesh= (a MeshClient)")
    if mesh is not None:
        from ..client import MeshClient

        if not isinstance(mesh, MeshClient):
            raise TypeError(f"mesh must be a modelmesh.MeshClient, got {type(mesh).__name__}")
        return mesh
    from ..client import MeshClient

    return MeshClient(config)
