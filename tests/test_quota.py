"""Quota and pricing queries (issue 17, seed 002): a provider whose quota endpoint says little
is left is rotated away from before its 429, and back when the endpoint says there is more;
prices from a provider's model listing change cost-first order. Over loopback fakes that
speak OpenRouter's key endpoint and priced listing and DeepSeek's balance, on both clients,
with a fake clock."""
from __future__ import annotations

import threading

import pytest

import modelmesh
from modelmesh.errors import InvalidArgumentError
from modelmesh.testing import Error, FakeClock, FakeUpstream, assert_replays

from shells import SHELLS, make_client

KEY = "sk-or-quota-0123456789abcdef"


def provider(connector, up, model, **extra):
    return {"connector": connector, "config": {"base_url": up.url, "auth": {"api_key": KEY},
                                               "models": [{"id": model, "capabilities": ["chat-completion"]}], **extra}}


@pytest.fixture
def ups():
    with FakeUpstream("openai", name="router", models=["m1"]) as a, \
            FakeUpstream("openai", name="backup", models=["m2"]) as b:
        yield a, b


def make(shell, ups, connector="openrouter", quota=None, **kw):
    a, b = ups
    quota = {"query_remaining": True, "query_interval": "5m"} if quota is None else quota
    cfg = {"providers": {"router": provider(connector, a, "m1", quota=quota), "backup": provider("openai", b, "m2")},
           "routing": {"retry": {"same_model_retries": 0}},
           "pools": {"chat": {"capability": "chat-completion", "strategy": "priority",
                              "rotation": {"selection": {"model_priority": ["router/m1", "backup/m2"]}}}},
           **kw}
    clock = FakeClock()
    events = Seen()
    client = make_client(shell, cfg, clock=clock, sleep=clock.sleep, environ={}, on_event=events.append,
                         probe_check_interval=3600.0)
    return client, clock, events, cfg


class Seen(list):
    """The events, and a way to wait for the first round of queries, which the background
    thread may run as the client starts (or the test, whichever comes first)."""

    def __init__(self):
        super().__init__()
        self._cond = threading.Condition()

    def append(self, ev):
        with self._cond:
            super().append(ev)
            self._cond.notify_all()

    def answered(self, n=1, timeout=10.0):
        with self._cond:
            return self._cond.wait_for(
                lambda: sum(e.type in ("quota_reported", "prices_updated") for e in self) >= n, timeout)


def discover(shell, client):
    return client.run(client.client.run_discovery()) if shell == "async" else client.run_discovery()


def first_round(shell, client, events, n=1):
    """The queries asked as the client starts: by this thread unless the background one got there first."""
    discover(shell, client)
    assert events.answered(n)


def ask(client):
    return client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])


def chats(up):
    return [r for r in up.requests if r.path.endswith("/chat/completions")]


@pytest.mark.parametrize("shell", SHELLS)
def test_a_provider_whose_quota_endpoint_reports_two_percent_left_is_skipped_before_any_429(shell, ups):
    a, b = ups
    a.quota = {"limit": 100.0, "usage": 98.0}
    client, clock, events, _ = make(shell, ups)
    with client:
        first_round(shell, client, events)
        assert a.requests[-1].path == "/v1/key" and a.requests[-1].headers["authorization"] == f"Bearer {KEY}"
        status = client.status()["providers"]["router"]
        assert status["up"] is False and status["reason"] == "quota_low"
        assert status["quota"]["fraction"] == pytest.approx(0.02) and status["quota"]["remaining"] == 2.0
        assert ask(client).mesh.provider == "backup" and not chats(a)  # never sent there: no 429 to suffer
        down = [e for e in events if e.type == "provider_deactivated"]
        assert [(e.provider, e.reason) for e in down] == [("router", "quota_low")]
        # topped up: the next query (one interval on) brings it back at once
        a.quota = {"limit": 100.0, "usage": 10.0}
        assert discover(shell, client) == 0  # not due yet
        clock.advance(300)
        assert discover(shell, client) == 1
        assert client.status()["providers"]["router"]["up"] is True
        assert ask(client).mesh.provider == "router"
        assert [e.how for e in events if e.type == "provider_recovered"] == ["quota"]


@pytest.mark.parametrize("shell", SHELLS)
def test_a_deepseek_balance_that_cannot_be_used_rotates_away_and_a_failed_query_changes_nothing(shell, ups):
    a, b = ups
    a.balance = {"total": "110.00", "currency": "CNY", "available": False}
    client, clock, events, _ = make(shell, ups, connector="deepseek")
    with client:
        first_round(shell, client, events)
        assert a.requests[-1].path == "/user/balance"  # on the host, not under /v1
        quota = client.status()["providers"]["router"]["quota"]
        assert quota["available"] is False and quota["remaining"] == 110.0 and quota["unit"] == "CNY"
        assert ask(client).mesh.provider == "backup"
        # the balance endpoint fails from now on: nothing changes, and the standby lapses by time
        a.always(Error(500))
        clock.advance(300)
        discover(shell, client)
        assert client.status()["providers"]["router"]["reason"] == "quota_low"
        clock.advance(301 + 300)
        a.always(None)
        assert ask(client).mesh.provider == "router"


@pytest.mark.parametrize("shell", SHELLS)
def test_query_current_alone_reports_usage_without_rotating(shell, ups):
    a, _ = ups
    a.quota = {"limit": 100.0, "usage": 99.5}
    client, _, events, _ = make(shell, ups, quota={"query_current": True})
    with client:
        first_round(shell, client, events)
        row = client.status()["providers"]["router"]
        assert row["up"] is True and row["quota"]["used"] == 99.5 and row["quota"]["used_today"] == 99.5
        assert ask(client).mesh.provider == "router"


def test_min_remaining_sets_the_threshold(ups):
    a, _ = ups
    a.quota = {"limit": 100.0, "usage": 75.0}
    client, _, events, _ = make("sync", ups, quota={"query_remaining": True, "min_remaining": 0.3})
    with client:
        first_round("sync", client, events)
        assert client.status()["providers"]["router"]["reason"] == "quota_low"  # 25% left < 30%


def test_a_quota_standby_does_not_end_a_standby_of_another_kind(ups):
    a, _ = ups
    a.quota = {"limit": 100.0, "usage": 1.0}
    client, clock, events, _ = make("sync", ups)
    with client:
        first_round("sync", client, events)
        a.script(Error(401))
        assert ask(client).mesh.provider == "backup"  # a bad key: the provider is down until a probe
        assert client.status()["providers"]["router"]["reason"] == "auth_failure"
        clock.advance(300)
        assert client.run_discovery() == 1  # plenty left: but that says nothing about the key
        assert client.status()["providers"]["router"]["reason"] == "auth_failure"


@pytest.mark.parametrize("shell", SHELLS)
def test_prices_from_a_providers_listing_change_cost_first_order(shell):
    with FakeUpstream("openai", name="x", models=["mx"]) as x, FakeUpstream("openai", name="y", models=["my"]) as y:
        x.prices, y.prices = {"mx": (5e-6, 15e-6)}, {"my": (1e-7, 4e-7)}
        cfg = {"providers": {"x": provider("openrouter", x, "mx", pricing={"query": True, "query_interval": "1h"}),
                             "y": provider("openrouter", y, "my", pricing={"query": True, "query_interval": "1h"})},
               "pools": {"chat": {"capability": "chat-completion", "strategy": "cost-first"}}}
        clock = FakeClock()
        events = Seen()
        with make_client(shell, cfg, clock=clock, sleep=clock.sleep, environ={}, probe_check_interval=3600.0,
                         on_event=events.append) as client:
            first_round(shell, client, events, 2)
            assert client.core.models["x/mx"].input_per_1m == pytest.approx(5.0)
            assert client.core.models["y/my"].output_per_1m == pytest.approx(0.4)
            r = ask(client)
            assert r.mesh.provider == "y"
            assert r.mesh.cost == pytest.approx((r.usage.prompt_tokens * 0.1 + r.usage.completion_tokens * 0.4) / 1e6)
            x.prices, y.prices = {"mx": (1e-8, 1e-8)}, {"my": (1e-7, 4e-7)}
            clock.advance(3600)
            assert discover(shell, client) == 2
            assert ask(client).mesh.provider == "x"


@pytest.mark.parametrize("setting, words", [
    ({"quota": {"query_remaining": True}}, "quota.query_remaining: the 'openai' connector does not offer quota"),
    ({"quota": {"query_current": True}}, "quota.query_current: the 'openai' connector does not offer quota"),
    ({"pricing": {"query": True}}, "pricing.query: the 'openai' connector does not offer pricing"),
    ({"quota": {"min_remaining": 2}}, "quota.min_remaining: expected a value from 0 to 1"),
    ({"quota": {"query_interval": "soon"}}, "quota.query_interval"),
])
def test_a_query_the_connector_cannot_answer_is_a_configuration_error(ups, setting, words):
    a, _ = ups
    with pytest.raises(modelmesh.ConfigurationError, match=words.replace("(", r"\(")):
        modelmesh.MeshClient({"providers": {"p": provider("openai", a, "m", **setting)}}, environ={})


def test_a_session_with_quota_and_price_queries_replays(ups, tmp_path):
    a, _ = ups
    a.quota = {"limit": 100.0, "usage": 98.0}
    a.prices = {"m1": (1e-6, 2e-6)}
    path = tmp_path / "rec.jsonl"
    client, clock, _, cfg = make("sync", ups, observability={"connector": "recorder", "config": {"path": str(path)}})
    cfg["providers"]["router"]["config"]["pricing"] = {"query": True}
    client.close()
    events = Seen()
    with modelmesh.MeshClient(cfg, clock=clock, sleep=clock.sleep, environ={}, probe_check_interval=3600.0,
                              on_event=events.append) as client:
        first_round("sync", client, events, 2)
        assert ask(client).mesh.provider == "backup"
        a.quota = {"limit": 100.0, "usage": 1.0}
        clock.advance(300)
        client.run_discovery()
        assert ask(client).mesh.provider == "router"
    assert_replays(path, cfg)


def test_the_connector_catalogue_lists_what_each_connector_offers():
    import pathlib
    import re

    from modelmesh._core.codecs import INTERFACES, infrastructure_of
    from modelmesh.connectors.presets import PRESETS

    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "connectors.md").read_text()
    section = text.split("## Infrastructure each connector offers", 1)[1].split("\n## ", 1)[0]
    rows = {m[1]: [c.strip() for c in m[2].split("|")] for m in re.finditer(r"^\| `([\w-]+)` \|(.*)\|$", section, re.M)}
    assert set(rows) == set(PRESETS)
    for name, cells in rows.items():
        assert cells == ["yes" if i in infrastructure_of(name) else "—" for i in INTERFACES], name


def test_the_guides_quota_example_rotates_away_and_reprices():
    import pathlib
    import re

    import yaml

    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "guide.md").read_text()
    section = text.split("### Quota and prices from the provider", 1)[1]
    cfg = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, flags=re.S).group(1))
    with FakeUpstream("openai", name="or", models=["openai/gpt-4o-mini", "anthropic/claude-3.5-haiku"]) as up:
        up.quota = {"limit": 10.0, "usage": 9.7}
        up.prices = {"openai/gpt-4o-mini": (1.5e-7, 6e-7)}
        cfg["providers"]["openrouter"]["config"]["base_url"] = up.url
        events = Seen()
        with modelmesh.MeshClient(cfg, environ={"OPENROUTER_API_KEY": KEY}, probe_check_interval=3600.0,
                                  on_event=events.append) as client:
            first_round("sync", client, events, 2)
            assert client.status()["providers"]["openrouter"]["reason"] == "quota_low"  # 3% left
            assert client.core.models["openrouter/openai/gpt-4o-mini"].output_per_1m == pytest.approx(0.6)


@pytest.mark.parametrize("args", [(), ("--watch", "--count", "1")])
def test_modelmesh_status_shows_what_is_left(ups, tmp_path, capsys, args):
    import yaml

    from modelmesh import cli

    a, b = ups
    a.quota = {"limit": 100.0, "usage": 98.0}
    b.balance = {"total": "12.50", "currency": "USD", "available": True}
    cfg = {"providers": {"router": provider("openrouter", a, "m1", quota={"query_remaining": True}),
                         "seek": provider("deepseek", b, "m2", quota={"query_current": True})}}
    path = tmp_path / "modelmesh.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert cli.main(["status", str(path), *args]) == 0
    out = capsys.readouterr().out
    assert "router: DOWN (quota_low); quota 2.00 of 100.00 USD left (2%)" in out \
        or "router: down (quota_low), spend today" in out and "quota 2.00 of 100.00 USD left (2%)" in out
    assert "balance 12.50 USD" in out and KEY not in out


def test_a_custom_connector_class_can_offer_a_quota_query(ups):
    import sys
    import types

    from modelmesh.cdk import OpenAICompatibleProvider, QuotaReport, WireRequest

    class CreditsProvider(OpenAICompatibleProvider):
        infrastructure = frozenset({"discovery", "quota"})

        def quota_request(self, target):
            return WireRequest(method="GET", url=f"{target.base_url}/key", headers=self._get_headers(target))

        def parse_quota(self, status, headers, body):
            import json

            data = json.loads(body)["data"]
            return QuotaReport(remaining=data["limit_remaining"], limit=data["limit"], unit="credits")

    mod = types.ModuleType("mm_quota_plugins")
    mod.CreditsProvider = CreditsProvider
    sys.modules["mm_quota_plugins"] = mod
    try:
        a, _ = ups
        a.quota = {"limit": 50.0, "usage": 49.0}
        client, _, events, _ = make("sync", ups, connector="mm_quota_plugins:CreditsProvider")
        with client:
            first_round("sync", client, events)
            row = client.status()["providers"]["router"]
            assert row["reason"] == "quota_low" and row["quota"]["unit"] == "credits"
            assert ask(client).mesh.provider == "backup"
    finally:
        del sys.modules["mm_quota_plugins"]


@pytest.mark.parametrize("shell", SHELLS)
def test_usage_reports_requests_tokens_and_cost_per_provider_and_day(shell, ups):
    a, b = ups
    client, clock, events, _ = make(shell, ups, quota={})
    clock.advance(1_767_225_600.0 - 60 - clock())  # 2025-12-31T23:59:00Z
    with client:
        first = ask(client)
        clock.advance(120)  # into 2026-01-01
        ask(client)
        ask(client)
        rows = client.usage(days=2)
        assert [(r["provider"], r["date"], r["requests"]) for r in rows] == [
            ("router", "2025-12-31", 1), ("router", "2026-01-01", 2)]
        assert rows[0]["prompt_tokens"] == first.usage.prompt_tokens
        assert rows[1]["completion_tokens"] == 2 * first.usage.completion_tokens
        assert [r["date"] for r in client.usage(days=1)] == ["2026-01-01"]
        with pytest.raises(InvalidArgumentError, match="'days' must be a whole number from 1 to 62"):
            client.usage(days=0)


def test_status_shows_what_the_rate_limit_headers_said_until_their_reset(ups):
    from modelmesh.testing import Reply

    a, _ = ups
    client, clock, _, _ = make("sync", ups, quota={})
    with client:
        a.script(Reply(headers={"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "42",
                                "x-ratelimit-reset-requests": "20s"}))
        assert ask(client).mesh.provider == "router"
        row = next(r for r in client.status()["pools"]["chat"] if r["model"] == "router/m1")
        assert row["rate_limits"]["remaining_requests"] == 42 and row["rate_limits"]["limit_requests"] == 500
        clock.advance(21)
        row = next(r for r in client.status()["pools"]["chat"] if r["model"] == "router/m1")
        assert row["rate_limits"] is None  # reset since: no longer known
