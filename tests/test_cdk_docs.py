"""The rotation, storage and discovery examples of docs/cdk.md run as written: each Python
block is saved as the module its first line names, each YAML block is merged into a
configuration over loopback fakes, and the behaviour the text promises is checked."""
from __future__ import annotations

import pathlib
import re
import sys

import pytest
import yaml

import modelmesh
from modelmesh.testing import Error, FakeClock, FakeUpstream

CDK = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "cdk.md").read_text()
MSG = [{"role": "user", "content": "hi"}]


def python_block(name: str) -> str:
    return next(b for b in re.findall(r"```python\n(.*?)```", CDK, flags=re.S) if f"class {name}(" in b)


def yaml_block(words: str) -> dict:
    return next(yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", CDK, flags=re.S) if words in b)


@pytest.fixture
def module(tmp_path, monkeypatch):
    """Save a documented block as the module its `# name.py` first line names."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def save(block: str) -> None:
        name = re.match(r"# (\w+)\.py\n", block).group(1)
        (tmp_path / f"{name}.py").write_text(block)
        monkeypatch.delitem(sys.modules, name, raising=False)

    return save


def providers(x, y):
    return {name: {"connector": "openai", "config": {
        "base_url": up.url, "auth": {"api_key": f"sk-{name}-0123456789abcdef"},
        "models": [{"id": "gpt-4o-mini", "capabilities": ["chat-completion"]}]}} for name, up in (("x", x), ("y", y))}


def with_priority(config: dict) -> dict:
    """The documented pool, with x preferred so the test knows who serves first."""
    chat = config["pools"]["chat"]
    chat["strategy"] = "priority"
    chat.setdefault("rotation", {})["selection"] = {"provider_priority": ["x", "y"]}
    chat["retry"] = {"same_model_retries": 0}
    chat["rotation"].setdefault("recovery", {})["probe_interval"] = None
    return config


def served(client) -> str:
    return client.chat.completions.create(model="chat", messages=MSG).mesh.provider


def test_the_base_rotation_policy_example_takes_a_model_out_at_its_first_503(module):
    module(python_block("OutOnFirst503"))
    with FakeUpstream("openai", name="x") as x, FakeUpstream("openai", name="y") as y:
        config = with_priority({"providers": providers(x, y), **yaml_block('policy: "my_policies:OutOnFirst503"')})
        with modelmesh.MeshClient(config, clock=FakeClock(), environ={}) as client:
            x.script(Error(503))
            assert [served(client), served(client)] == ["y", "y"]
            assert len(x.requests) == 1


def test_the_threshold_example_deactivates_after_two_failures_for_thirty_seconds():
    with FakeUpstream("openai", name="x") as x, FakeUpstream("openai", name="y") as y:
        config = with_priority({"providers": providers(x, y), **yaml_block("connector: threshold")})
        clock = FakeClock()
        with modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={}) as client:
            x.script(Error(500), Error(500))
            assert [served(client), served(client), served(client)] == ["y", "y", "y"]
            assert len(x.requests) == 2
            clock.advance(30)
            assert served(client) == "x"


def test_the_key_value_storage_example_shares_a_standby_between_two_clients(module):
    module(python_block("DictBackedStore"))
    with FakeUpstream("openai", name="x") as x, FakeUpstream("openai", name="y") as y:
        config = {"providers": providers(x, y), **yaml_block('connector: "my_storage:DictBackedStore"'),
                  "pools": {"chat": {"capability": "chat-completion", "strategy": "priority",
                                     "rotation": {"selection": {"provider_priority": ["x", "y"]}}}}}
        with modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as one, \
                modelmesh.MeshClient(config, environ={}, probe_check_interval=3600) as two:
            assert served(two) == "x"
            x.always(Error(401, code="invalid_api_key"))
            assert served(one) == "y"
            sent = len(x.requests)
            assert served(two) == "y" and len(x.requests) == sent
        import my_storage

        assert any(key.startswith("prod/") for key in my_storage.BACKEND)


def test_the_discovery_example_puts_down_a_provider_whose_listing_lost_the_model(module):
    module(python_block("ListsTheModel"))
    with FakeUpstream("openai", name="x", models=["gpt-4o-mini"]) as x, \
            FakeUpstream("openai", name="y", models=["gpt-4o-mini"]) as y:
        config = {"providers": providers(x, y), **yaml_block('connector: "my_checks:ListsTheModel"')}
        clock = FakeClock()
        with modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={},
                                  probe_check_interval=3600.0) as client:
            clock.advance(60)
            assert client.run_probes() == 2
            assert client.status()["providers"]["x"]["up"] is True
            x.models = ("gpt-4o",)
            for _ in range(2):
                clock.advance(60)
                client.run_probes()
            assert client.status()["providers"]["x"]["up"] is False
            assert client.status()["providers"]["y"]["up"] is True


def test_the_http_health_discovery_example_checks_the_configured_path():
    with FakeUpstream("openai", name="x", models=["gpt-4o-mini"]) as x, \
            FakeUpstream("openai", name="y", models=["gpt-4o-mini"]) as y:
        config = {"providers": providers(x, y), **yaml_block("connector: http")}
        clock = FakeClock()
        with modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={},
                                  probe_check_interval=3600.0) as client:
            clock.advance(60)
            assert client.run_probes() == 2
            assert [r.path for r in x.requests] == ["/v1/models/gpt-4o-mini"]
            assert client.status()["providers"]["x"]["up"] is True
