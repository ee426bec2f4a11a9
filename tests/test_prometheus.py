"""Prometheus: the mesh's families from a client's events (prometheus_client), served in an app
with one call, summed over worker processes (multiprocess mode), and on the proxy's /metrics
summed over its workers."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

import modelmesh
from modelmesh.observability import PrometheusMetrics
from modelmesh.testing import Error, FakeClock, FakeUpstream

from proxy_helpers import MASTER, provider, serving, write_config

MSG = [{"role": "user", "content": "hi"}]


def cfg(url, **top):
    key = {"auth": {"api_key": "sk-prom-secret-0123456789"}}
    return {"providers": {
        "a": {"connector": "openai", "config": {"base_url": url, **key, "models": [
            {"id": "m1", "pricing": {"per_request": 0.5}}]}},
        "b": {"connector": "openai", "config": {"base_url": url, **key, "models": [
            {"id": "m2", "pricing": {"per_request": 0.25}}]}}},
        "pools": {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority"}}, **top}


@pytest.fixture
def up():
    with FakeUpstream("openai", models=["m1", "m2", "gpt-x", "gpt-y"]) as u:
        yield u


def test_a_failed_over_request_in_every_family(up):
    registry = CollectorRegistry()
    up.script(Error(429, retry_after=30))
    clock = FakeClock()
    with modelmesh.MeshClient(cfg(up.url), clock=clock, sleep=clock.sleep, environ={}) as client:
        PrometheusMetrics.instrument(client, registry)
        client.chat.completions.create(model="chat", messages=MSG)
        client.chat.completions.create(model="chat", messages=MSG)

    def value(name, **labels):
        return registry.get_sample_value(name, labels) or 0.0

    b = {"pool": "chat", "provider": "b", "model": "m2"}
    assert value("modelmesh_mesh_requests_total", **b, outcome="success") == 2
    assert value("modelmesh_mesh_attempts_total", pool="chat", provider="a", model="m1") == 1
    assert value("modelmesh_mesh_attempts_total", **b) == 2
    assert value("modelmesh_mesh_failovers_total", pool="chat", reason="rate_limited") == 1
    assert value("modelmesh_mesh_standbys_total", pool="chat", provider="a", model="m1", reason="rate_limited") == 1
    assert value("modelmesh_mesh_cost_usd_total", **b) == pytest.approx(0.5)
    assert value("modelmesh_mesh_tokens_total", **b, kind="completion") > 0
    assert value("modelmesh_mesh_request_duration_seconds_count", **b) == 2
    assert value("modelmesh_mesh_request_duration_seconds_bucket", **b, le="0.005") == 2


def test_served_in_an_app_with_one_call_and_by_configuration(up):
    with modelmesh.MeshClient(cfg(up.url), environ={}) as client:
        server = client.serve_metrics(0)
        try:
            client.serve_metrics(0).shutdown()  # a second server counts nothing twice
            client.chat.completions.create(model="chat", messages=MSG)
            text = urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5).read().decode()
        finally:
            server.shutdown()
    assert "# TYPE modelmesh_mesh_requests_total counter" in text
    assert _sum(text, "modelmesh_mesh_requests_total", 'outcome="success"') >= 1

    obs = {"connector": "prometheus", "config": {"port": 0}}
    with modelmesh.MeshClient(cfg(up.url, observability=obs), environ={}) as client:
        port = client.status()["observability"]["sinks"][0]["port"]
        client.chat.completions.create(model="chat", messages=MSG)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert _sum(text, "modelmesh_mesh_requests_total", 'outcome="success"') >= 2  # the same process's registry
    with pytest.raises(modelmesh.ConfigurationError, match=r"observability.connectors\[0\].config.port: expected a port number"):
        modelmesh.MeshClient(cfg(up.url, observability={"connector": "prometheus", "config": {"port": "x"}}),
                             environ={})


def _sum(text: str, family: str, *parts: str) -> float:
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{family}\{{([^}}]*)\}} (\S+)$", line)
        if m and all(p in m.group(1) for p in parts):
            total += float(m.group(2))
    return total


WORKER = textwrap.dedent("""
    import json, sys
    import modelmesh
    from modelmesh.observability import PrometheusMetrics
    config, n = json.loads(sys.argv[1]), int(sys.argv[2])
    with modelmesh.MeshClient(config, environ={}) as client:
        PrometheusMetrics.instrument(client)
        for _ in range(n):
            client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
""")


def test_several_processes_are_summed_in_multiprocess_mode(up, tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    config = json.dumps(cfg(up.url))
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, config, str(n)], env=env) for n in (3, 4)]
    assert [w.wait(60) for w in workers] == [0, 0]
    render = "from modelmesh.observability import render_metrics; print(render_metrics().decode())"
    text = subprocess.run([sys.executable, "-c", render], env=env, capture_output=True, text=True, check=True).stdout
    assert _sum(text, "modelmesh_mesh_requests_total", 'pool="chat"', 'outcome="success"') == 7
    assert _sum(text, "modelmesh_mesh_request_duration_seconds_count", 'pool="chat"') == 7
    assert _sum(text, "modelmesh_mesh_cost_usd_total", 'provider="a"') == pytest.approx(3.5)


def test_the_proxy_sums_the_mesh_families_over_two_workers(tmp_path, up, monkeypatch):
    monkeypatch.setenv("PROXY_MASTER_KEY", MASTER)
    path = write_config(tmp_path / "mesh.json", {"up": provider(up, ("gpt-x", "gpt-y"))},
                        {"chat": {"models": ["up/gpt-x", "up/gpt-y"], "strategy": "priority"}},
                        storage={"connector": "sqlite", "config": {"path": str(tmp_path / "shared.sqlite3")},
                                 "persistence": {"sync_interval": "0.2s"}})
    up.script(Error(500))  # the first request fails over (same_model_retries: 0)
    body = json.dumps({"model": "chat", "messages": MSG}).encode()
    auth = {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"}
    with serving(path, "--workers", "2", "--threads", "4") as served:
        answers = [served.request("POST", "/v1/chat/completions", body, headers=auth)[0] for _ in range(6)]
    assert answers == [200] * 6
    with serving(path) as again:  # what both workers counted is in the store
        _, _, scraped = again.request("GET", "/metrics", headers={"Authorization": f"Bearer {MASTER}"})
    text = scraped.decode()
    assert "# TYPE modelmesh_mesh_standbys_total counter" in text
    assert _sum(text, "modelmesh_mesh_requests_total", 'pool="chat"', 'outcome="success"') == 6
    assert _sum(text, "modelmesh_mesh_attempts_total", 'pool="chat"') == 7
    assert _sum(text, "modelmesh_mesh_failovers_total", 'pool="chat"', 'reason="server_error"') == 1
    assert _sum(text, "modelmesh_mesh_request_duration_seconds_count", 'pool="chat"') == 6
    assert _sum(text, "modelmesh_requests_total", 'status="200"') == 6  # the proxy's own families still there
