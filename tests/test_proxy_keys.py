"""Virtual keys, rate limits, /metrics and SIGHUP reload through real `modelmesh serve`
processes (two workers sharing SQLite) driven by the official openai SDK."""
from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import time

import openai
import pytest

from modelmesh.cli import main
from modelmesh.testing import FakeUpstream, SlowStream

from proxy_helpers import MASTER, UPSTREAM_KEY, provider, serving, start, write_config

MSG = [{"role": "user", "content": "Say hi"}]
SYNC = 0.2  # storage.persistence.sync_interval of these servers: how fast a revocation spreads


@pytest.fixture(scope="module")
def up():
    with FakeUpstream("openai", name="up", models=["gpt-x", "gpt-y"], text="one two three") as u:
        yield u


def config(tmp_path, up, *, name="mesh.json", proxy=None, storage=True, pools=None):
    prov = provider(up, ("gpt-x", "gpt-y"))
    for m in prov["config"]["models"]:
        m["pricing"] = {"per_request": 0.01}
    top = {"storage": {"connector": "sqlite", "config": {"path": str(tmp_path / "shared.sqlite3")},
                       "persistence": {"sync_interval": f"{SYNC}s"}}} if storage else {}
    # a SIGTERM that reaches a Granian worker still starting is lost to it, which then stops only
    # when the parent kills it after shutdown_timeout: keep that short
    proxy = {"shutdown_timeout": "3s", **(proxy or {})}
    return write_config(tmp_path / name, {"up": prov},
                        pools or {"chat": {"models": ["up/gpt-x"]}, "other": {"models": ["up/gpt-y"]}}, proxy, **top)


def keys(*argv) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["keys", *argv])
    return code, out.getvalue()


def create(path, *args) -> str:
    code, out = keys("create", "--config", str(path), *args)
    assert code == 0, out
    return re.search(r"(sk-mm-\S+)", out).group(1)


def sdk(served, key):
    return openai.OpenAI(api_key=key, base_url=served.base_url, max_retries=0)


def chat(served, key, model="chat"):
    with sdk(served, key) as c:
        return c.chat.completions.create(model=model, messages=MSG)


def wait_for(check, limit=5.0):
    """Poll `check` until true (a bounded wait for the other process: a refresh, a restart)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_virtual_keys_pools_rates_budgets_and_revocation_across_two_workers(tmp_path, up, monkeypatch):
    monkeypatch.setenv("PROXY_MASTER_KEY", MASTER)  # the CLI reads the same configuration
    path = config(tmp_path, up)
    alice = create(path, "--name", "alice", "--pools", "chat")
    rated = create(path, "--name", "rated", "--rpm", "2")
    thrifty = create(path, "--name", "thrifty", "--budget", "0.015", "--period", "month")
    with serving(path, "--workers", "2", "--threads", "4") as served:
        assert chat(served, alice).choices[0].message.content == "one two three"
        late = create(path, "--name", "late")  # made while serving: works at once
        assert chat(served, late, "other").choices[0].message.content == "one two three"
        with pytest.raises(openai.PermissionDeniedError) as denied:
            chat(served, alice, "other")
        assert "may not use the pool 'other'" in denied.value.message and denied.value.status_code == 403

        chat(served, rated)
        chat(served, rated)  # its two of the minute, on whichever workers
        with pytest.raises(openai.RateLimitError) as limited:
            chat(served, rated)
        assert limited.value.code == "rate_limit_exceeded" and int(limited.value.response.headers["retry-after"]) >= 1

        chat(served, thrifty)  # 0.01 of 0.015
        chat(served, thrifty)  # 0.02: over now, though each worker counted only its own
        with pytest.raises(openai.RateLimitError) as broke:
            chat(served, thrifty)
        assert broke.value.code == "insufficient_quota" and broke.value.body["type"] == "insufficient_quota"

        code, out = keys("revoke", "--config", str(path), "alice")
        assert code == 0 and "REVOKED" in out
        revoked_at = time.monotonic()

        def refused():
            with contextlib.suppress(openai.AuthenticationError):
                chat(served, alice)
                return False
            return True

        assert wait_for(refused, limit=5.0)
        assert time.monotonic() - revoked_at < SYNC + 2.0  # one refresh (and a loaded machine's slack)
        # a worker that read the keys just before the revocation keeps its copy for up to SYNC:
        # from then on every one refuses the key (what docs/proxy.md promises)
        time.sleep(max(0.0, revoked_at + SYNC - time.monotonic()))
        for _ in range(4):  # on every worker
            with pytest.raises(openai.AuthenticationError, match="revoked"):
                chat(served, alice)
        code, listed = keys("list", "--config", str(path), "--json")
        rows = {k["name"]: k for k in json.loads(listed)}
        assert rows["alice"]["revoked"] and rows["rated"]["rpm"] == 2 and rows["late"]["pools"] is None
    printed = served.stdout + served.stderr + listed + out
    for secret in (alice, rated, thrifty, late, MASTER, UPSTREAM_KEY):
        assert secret not in printed
    raw = (tmp_path / "shared.sqlite3").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("*-wal"))
    assert not any(k.encode() in raw for k in (alice, rated, thrifty, late))
    assert {r.get("key") for r in served.access_log() if r["status"] == 200} >= {rows["alice"]["id"]}


def test_keys_need_shared_storage(tmp_path, up, monkeypatch):
    monkeypatch.setenv("PROXY_MASTER_KEY", MASTER)
    code, out = keys("list", "--config", str(config(tmp_path, up, storage=False)))
    assert code == 2 and "storage:" in out and "memory" in out and "sqlite" in out


def test_per_address_bucket_is_shared_by_the_workers(tmp_path, up):
    path = config(tmp_path, up, proxy={"rate_limit": {"per_ip": {"rpm": 3, "burst": 3}}})
    with serving(path, "--workers", "2", "--threads", "4") as served:
        outcomes = []
        for _ in range(6):  # each on a new connection: either worker may answer
            try:
                chat(served, MASTER)
                outcomes.append("ok")
            except openai.RateLimitError as exc:
                outcomes.append(exc.response.headers["retry-after"])
        assert outcomes[:3] == ["ok"] * 3 and all(o != "ok" and int(o) >= 1 for o in outcomes[3:])
        status, headers, _ = served.request("GET", "/health")  # probes are not limited
        assert status == 200


def _metric(text: str, series: str) -> float:
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_metrics_are_protected_and_summed_over_workers_and_restarts(tmp_path, up, monkeypatch):
    monkeypatch.setenv("PROXY_MASTER_KEY", MASTER)
    path = config(tmp_path, up)
    vkey = create(path, "--name", "reader")
    with serving(path, "--workers", "2", "--threads", "4") as served:
        for _ in range(5):
            chat(served, MASTER)
        with pytest.raises(openai.NotFoundError):
            chat(served, MASTER, "no-such-pool")
        assert served.request("GET", "/metrics")[0] == 401
        assert served.request("GET", "/metrics", headers={"Authorization": f"Bearer {vkey}"})[0] == 401
        status, headers, body = served.request("GET", "/metrics", headers={"Authorization": f"Bearer {MASTER}"})
        assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "# TYPE modelmesh_requests_total counter" in body.decode()
        assert _metric(body.decode(), 'modelmesh_pool_models{pool="chat"}') == 1
    logged = [r for r in served.access_log() if r["path"].startswith("/v1/")]
    where = 'pool="chat",provider="up",model="gpt-x"'
    with serving(path) as again:  # every count of the stopped workers is in the store
        _, _, body = again.request("GET", "/metrics", headers={"Authorization": f"Bearer {MASTER}"})
    text = body.decode()
    assert _metric(text, f'modelmesh_requests_total{{{where},status="200"}}') == 5
    assert _metric(text, 'modelmesh_requests_total{pool="",provider="",model="",status="404"}') == 1
    assert _metric(text, 'modelmesh_request_duration_seconds_count{pool="chat"}') == 5
    assert _metric(text, f"modelmesh_cost_usd_total{{{where}}}") == pytest.approx(0.05)
    assert _metric(text, f'modelmesh_tokens_total{{{where},kind="completion"}}') == \
        sum(r["completion_tokens"] for r in logged if r["status"] == 200)


def test_metrics_may_be_public(tmp_path, up):
    with serving(config(tmp_path, up, storage=False, proxy={"metrics": {"public": True}})) as served:
        assert served.request("GET", "/metrics")[0] == 200


def test_sighup_keeps_a_bad_configuration_out_and_swaps_a_good_one_in(tmp_path, up):
    path = config(tmp_path, up, storage=False)
    good = path.read_text()
    up.script(SlowStream(chunk_delay=0.15))
    served = start(path)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=20)
        conn.request("POST", "/v1/chat/completions", body=json.dumps({"model": "chat", "messages": MSG, "stream": True}),
                     headers={"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
        streaming = conn.getresponse()
        assert streaming.status == 200
        data = json.loads(good)
        data["pools"]["chat"]["models"] = ["up/gpt-z"]
        data["proxy"]["max_body_bytes"] = 0
        path.write_text(json.dumps(data))
        served.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "refused" in served.stderr)
        assert "pools.chat.models[0]" in served.stderr and "proxy.max_body_bytes" in served.stderr
        assert chat(served, MASTER).model == "gpt-x"  # the old one serves
        data = json.loads(good)
        data["pools"]["fresh"] = {"models": ["up/gpt-y"]}
        path.write_text(json.dumps(data))
        served.proc.send_signal(signal.SIGHUP)

        def swapped():
            with contextlib.suppress(openai.NotFoundError, openai.APIConnectionError):
                return chat(served, MASTER, "fresh").model == "gpt-y"
            return False

        assert wait_for(swapped, limit=20.0)
        rest = streaming.read()  # the stream begun on the old configuration finished on it
        assert rest.rstrip().endswith(b"data: [DONE]")
        assert served.proc.poll() is None
        assert f"pid {served.proc.pid}" in served.stderr  # where docs/proxy.md sends the SIGHUP
    finally:
        served.stop()
    assert "the new configuration is valid" in served.stderr
    assert MASTER not in served.stderr + served.stdout and UPSTREAM_KEY not in served.stderr + served.stdout


def test_the_banner_names_the_pid_a_reload_is_sent_to(tmp_path, up):
    with serving(config(tmp_path, up, storage=False)) as served:
        assert f"pid {served.proc.pid}, SIGHUP reloads" in served.stderr
        assert "no virtual keys (memory storage)" in served.stderr


# -- docs/proxy.md, as written ---------------------------------------------------------------
DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "proxy.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)


def test_the_docs_keys_section_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROXY_MASTER_KEY", MASTER)
    monkeypatch.setenv("OPENAI_API_KEY", UPSTREAM_KEY)
    (tmp_path / "modelmesh.yaml").write_text(next(b for b in _blocks("yaml") if "rate_limit:" in b))
    commands = [shlex.split(b.strip()) for b in _blocks("bash") for b in b.strip().splitlines()
                if b.startswith("modelmesh keys")]
    assert [c[2] for c in commands] == ["create", "list", "revoke"]
    with FakeUpstream("openai", name="openai", models=["gpt-4o-mini"], text="Hello from the docs") as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        code, out = keys(*commands[0][2:])
        assert code == 0, out
        token = re.search(r"(sk-mm-\S+)", out).group(1)
        with serving(tmp_path / "modelmesh.yaml") as served:  # one worker: /metrics has its count at once
            with sdk(served, token) as c:
                assert c.chat.completions.create(model="chat", messages=MSG).choices[0].message.content == \
                    "Hello from the docs"
            assert "team-a" in keys(*commands[1][2:])[1]
            assert keys(*commands[2][2:])[0] == 0
            curl = next(b.strip() for b in _blocks("bash") if b.startswith("curl"))
            if shutil.which("curl"):
                text = subprocess.run(curl.replace(":8080/", f":{served.port}/"), shell=True, capture_output=True,
                                      text=True, timeout=30, env={**os.environ}).stdout
                assert 'modelmesh_requests_total{pool="chat",provider="openai",model="gpt-4o-mini",status="200"} 1' \
                    in text
        assert token not in served.stdout + served.stderr
