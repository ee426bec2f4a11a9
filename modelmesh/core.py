"""The sans-IO core, for embedders: frameworks that bring their own I/O.

    from modelmesh.core import build, Attempt, Wait, Read, Deliver, Succeeded, Failed, ...

    built = build("modelmesh.yaml", seed=0)      # config -> a ready MeshCore (every problem at once)
    call = built.core.start("chat", body, model="chat", stream=False, now=time.time())
    action = call.next_action(time.time())       # what to do next: one of the actions below
    call.feed(input, time.time())                # what happened: one of the inputs below

This module is the contract between the core and a shell, and the only place an embedder
needs to import from. The names are re-exported from the private modules that define them
(`modelmesh._core`), so `MeshClient`, `AsyncMeshClient` and the proxy run on exactly what
is exported here. The core does no I/O, reads no clock and draws no random number of its
own: time comes in as `now` on every call, randomness from the `random.Random` given to
`build` (`rng=` or `seed=`), and threads that share a core pass `build(lock=...)`, which
the core takes around shared health only (never across I/O). See docs/embedding.md.

Actions (what a shell does)          Inputs (what it feeds back)
    Attempt(request, timeouts...)        ResponseReceived(status, headers, body)
    Wait(seconds)                        StreamOpened(headers)    DataReceived(data)
    Read()            (streams)          StreamEnded()            (streams)
    Deliver(chunk)    (streams)          TransportFailed(kind, message, connect)
    Succeeded(response, ...)             Cancelled()
    Failed(error)

Importing this module loads the configuration machinery (`build`); `import modelmesh`
does not import it.
"""
from __future__ import annotations

from ._build import Built, build
from ._core._call import Call
from ._core._errors import ModelMeshError
from ._core._mesh import MeshCore, Probe
from ._core._protocol import (
    Action,
    Attempt,
    CallProtocolError,
    Cancelled,
    DataReceived,
    Deliver,
    Failed,
    Read,
    ResponseReceived,
    RoutingDecision,
    RoutingOptions,
    StreamEnded,
    StreamOpened,
    Succeeded,
    TransportFailed,
    Wait,
)
from ._core._types import ErrorKind, WireRequest
from .config import load_config

__all__ = [
    # making a core
    "build", "Built", "load_config", "MeshCore", "Call", "Probe", "RoutingOptions", "RoutingDecision",
    # actions
    "Action", "Attempt", "Wait", "Read", "Deliver", "Succeeded", "Failed",
    # inputs
    "ResponseReceived", "StreamOpened", "DataReceived", "StreamEnded", "TransportFailed", "Cancelled",
    # their vocabulary
    "ErrorKind", "WireRequest", "CallProtocolError", "ModelMeshError",
]
