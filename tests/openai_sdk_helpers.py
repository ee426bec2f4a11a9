"""Shared by the tests of modelmesh.openai.OpenAI: a mesh of fake OpenAI upstreams, and the
official SDK over it, with a fake clock so standbys and cooldowns never need real waiting."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import modelmesh
from modelmesh.openai import OpenAI
from modelmesh.testing import FakeClock, FakeUpstream

from core_helpers import MECHANICS

MSG = [{"role": "user", "content": "Say hi"}]


def key(name: str) -> str:
    return f"sk-sdk-{name}-0123456789abcdef"


def config(*ups: FakeUpstream, timeout: str = "2s", pricing: dict | None = None, budget: dict | None = None) -> dict:
    """One provider per upstream (named after it) serving `gpt-x` for chat and embeddings,
    and a pool `chat` trying them in the order given."""
    providers = {}
    for up in ups:
        model: dict = {"id": "gpt-x", "capabilities": ["chat-completion", "text-embeddings"]}
        if pricing:
            model["pricing"] = pricing
        cfg: dict = {"base_url": up.url, "auth": {"api_key": key(up.name)}, "timeout": timeout, "models": [model]}
        if budget:
            cfg["budget"] = budget
        providers[up.name] = {"connector": "openai", "config": cfg}
    order = [f"{up.name}/gpt-x" for up in ups]
    pools = {"chat": {"models": order, "strategy": "priority", "rotation": {"selection": {"model_priority": order}}}}
    # one scripted fault shows one failover: no same-model retry
    return {"providers": providers, "pools": pools, "routing": MECHANICS}


def sdk(cfg: dict, **openai_kwargs) -> tuple[OpenAI, FakeClock]:
    clock = FakeClock()
    mesh = modelmesh.MeshClient(cfg, clock=clock, sleep=clock.sleep, environ={})
    return OpenAI(mesh=mesh, **openai_kwargs), clock


@contextlib.contextmanager
def fakes(*names: str, **upstream_kw) -> Iterator[list[FakeUpstream]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(FakeUpstream("openai", name=n, models=["gpt-x"], **upstream_kw)) for n in names]


def chat_requests(up: FakeUpstream) -> list:
    return [r for r in up.requests if r.path.endswith("/chat/completions")]
