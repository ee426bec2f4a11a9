"""`modelmesh serve` as a process: what it refuses to start with, --no-auth, several workers,
a client going away mid-stream, SIGTERM letting a stream finish, and docs/proxy.md's
commands (Granian and gunicorn) run as written."""
from __future__ import annotations

import http.client
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import time

import openai
import pytest

from modelmesh.testing import FakeUpstream, SlowStream

from proxy_helpers import MASTER, MASTER_ENV, Served, free_port, provider, serving, start, wait_ready, write_config

MSG = [{"role": "user", "content": "Say hi"}]
DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "proxy.md"


@pytest.fixture(scope="module")
def up():
    with FakeUpstream("openai", name="up", models=["gpt-x"], text="one two three four five six seven") as u:
        yield u


def config(tmp_path, up, *, master: bool = True, **proxy):
    path = write_config(tmp_path / "mesh.json", {"up": provider(up)}, {"chat": {"models": ["up/gpt-x"]}}, proxy)
    if not master:
        data = json.loads(path.read_text())
        del data["proxy"]["auth"]
        path.write_text(json.dumps(data))
    return path


def refused(path, *args):
    proc = subprocess.run([sys.executable, "-m", "modelmesh.cli", "serve", str(path), "--port", str(free_port()),
                           *args], capture_output=True, text=True, timeout=60, env={**os.environ, MASTER_ENV: MASTER})
    return proc.returncode, proc.stderr


def test_it_refuses_to_start_without_a_master_key(tmp_path, up):
    code, err = refused(config(tmp_path, up, master=False))
    assert code == 2 and "proxy.auth.master_key" in err and "--no-auth" in err


def test_no_auth_is_refused_off_loopback_and_beside_a_master_key(tmp_path, up):
    code, err = refused(config(tmp_path, up, master=False), "--no-auth", "--host", "0.0.0.0")
    assert code == 2 and "only allowed on a loopback address" in err and "'0.0.0.0'" in err
    code, err = refused(config(tmp_path, up), "--no-auth")
    assert code == 2 and "remove one of the two" in err and MASTER not in err


def test_a_bad_configuration_lists_its_problems_before_any_worker_starts(tmp_path, up):
    path = config(tmp_path, up, max_body_bytes=0, cors_origin="*")
    code, err = refused(path)
    assert code == 2 and "proxy.max_body_bytes" in err and "proxy.cors_origin: unknown key" in err


def test_no_auth_on_loopback_serves_without_a_key(tmp_path, up):
    with serving(config(tmp_path, up, master=False), "--no-auth") as served:
        assert "auth: NONE" in served.stderr
        with openai.OpenAI(api_key="anything", base_url=served.base_url, max_retries=0) as c:
            assert c.chat.completions.create(model="chat", messages=MSG).choices[0].message.content.startswith("one")


def test_two_workers_share_health_through_sqlite_by_default(tmp_path, up):
    with serving(config(tmp_path, up), "--workers", "2", "--threads", "4") as served:
        banner = served.stderr
        assert "2 worker(s) x 4 thread(s)" in banner and "storage: sqlite" in banner
        state = re.search(r"storage: sqlite (\S+)", banner).group(1)
        assert os.path.exists(state)
        with openai.OpenAI(api_key=MASTER, base_url=served.base_url, max_retries=0) as c:
            for _ in range(4):
                assert c.chat.completions.create(model="chat", messages=MSG).choices[0].message.content
        status, _, body = served.request("GET", "/ready")
        assert status == 200 and json.loads(body)["pools"] == {"chat": 1}
    assert not os.path.exists(state)  # this run's, removed when it stops


def stream_request(served: Served) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=20)
    body = json.dumps({"model": "chat", "messages": MSG, "stream": True})
    conn.request("POST", "/v1/chat/completions", body=body,
                 headers={"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("content-type").startswith("text/event-stream")
    return r


def test_a_client_going_away_mid_stream_closes_the_mesh_stream(tmp_path, up):
    up.script(SlowStream(chunk_delay=1.0))  # ~10 pieces: the whole stream would take ~10 s
    with serving(config(tmp_path, up)) as served:
        r = stream_request(served)
        assert r.read1(65536).startswith(b"data: ")
        started = time.monotonic()
        r.close()
        r.fp = None
        deadline = started + 6
        while time.monotonic() < deadline and not any(rec["stream"] for rec in served.access_log()):
            time.sleep(0.05)
        record = next(rec for rec in served.access_log() if rec["stream"])  # written by the iterable's close()
        assert time.monotonic() - started < 6 and record["status"] == 200


def test_sigterm_lets_a_stream_in_flight_finish(tmp_path, up):
    up.script(SlowStream(chunk_delay=0.1))
    served = start(config(tmp_path, up))
    try:
        r = stream_request(served)
        first = r.read1(65536)
        served.proc.send_signal(15)
        rest = r.read()
        assert served.proc.wait(timeout=30) == 0
    finally:
        served.stop()
    text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                   for line in (first + rest).decode().splitlines()
                   if line.startswith("data: {") and json.loads(line[6:])["choices"])
    assert text == "one two three four five six seven" and rest.endswith(b"data: [DONE]\n\n")


def test_sigterm_stops_workers_that_are_still_starting(tmp_path, up):
    """Granian's workers are forked with the parent's signal handler and install their own only
    once their app is built; a SIGTERM in between used to be lost and the parent waited
    `shutdown_timeout` (30 s) before killing them."""
    path = config(tmp_path, up)
    data = json.loads(path.read_text())
    data["observability"] = {"connectors": [{"connector": "held_start:HeldSink"}]}
    path.write_text(json.dumps(data))
    held = tmp_path / "held"
    held.mkdir()
    here = os.path.dirname(os.path.abspath(__file__))
    env = {"HELD_START_DIR": str(held), "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    served = start(path, "--workers", "2", env=env, wait=False)
    try:
        deadline = time.monotonic() + 30
        while len(list(held.iterdir())) < 2 and time.monotonic() < deadline:  # both workers are building
            assert served.proc.poll() is None, served.stderr
            time.sleep(0.02)
        assert len(list(held.iterdir())) == 2
        stopped = time.monotonic()
        served.proc.send_signal(15)
        assert served.proc.wait(timeout=15) == 0
        assert time.monotonic() - stopped < 10
    finally:
        (held / "go").write_text("")
        served.stop()
    assert "Traceback" not in served.stderr


# -- docs/proxy.md, as written -----------------------------------------------------------------
def doc_blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)


def doc_command(word: str) -> list[str]:
    line = next(b.strip() for b in doc_blocks("bash") if word in b)
    return shlex.split(line)


@pytest.fixture
def docs_env(tmp_path, monkeypatch):
    """The docs' modelmesh.yaml in a fresh directory, an upstream serving its models, and the
    variables the page names: OPENAI_API_KEY, PROXY_MASTER_KEY (OPENAI_BASE_URL for the fake)."""
    yaml_text = next(b for b in doc_blocks("yaml") if "proxy:" in b)
    (tmp_path / "modelmesh.yaml").write_text(yaml_text, encoding="utf-8")
    with FakeUpstream("openai", name="openai", models=["gpt-4o-mini", "text-embedding-3-small"],
                      text="Hello from the docs") as fake:
        env = {**os.environ, "OPENAI_API_KEY": "sk-docs-upstream-0123456789", "OPENAI_BASE_URL": fake.url}
        yield tmp_path, env


def run_documented(cwd, env, argv: list[str], port: int) -> Served:
    assigned = [a for a in argv if "=" in a and a.split("=")[0].isupper()]  # VAR=value before the command
    argv = [a for a in argv if a not in assigned]
    env = {**env, **dict(a.split("=", 1) for a in assigned)}
    out, err = cwd / f"{port}.out", cwd / f"{port}.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=o, stderr=e)
    served = Served(proc, port, out, err)
    wait_ready(served)
    return served


def ask_like_the_docs(port: int, capsys) -> None:
    client_code = next(b for b in doc_blocks("python") if "openai.OpenAI(" in b).replace(":8080/", f":{port}/")
    exec(compile(client_code, "docs/proxy.md", "exec"), {})  # noqa: S102 - our own documentation
    assert capsys.readouterr().out.strip() == "Hello from the docs"


def test_the_docs_serve_command_and_client_run_as_written(docs_env, capsys):
    cwd, env = docs_env
    port = free_port()
    argv = doc_command("modelmesh serve")
    argv[argv.index("modelmesh"):argv.index("modelmesh") + 1] = [sys.executable, "-m", "modelmesh.cli"]
    served = run_documented(cwd, env, [*argv, "--port", str(port)], port)
    try:
        ask_like_the_docs(port, capsys)
    finally:
        assert served.stop() == 0
    assert "sk-my-proxy-key" not in served.stdout + served.stderr


def test_the_docs_gunicorn_command_runs_as_written(docs_env, capsys):
    pytest.importorskip("gunicorn")
    cwd, env = docs_env
    port = free_port()
    argv = doc_command("gunicorn")
    argv[argv.index("gunicorn"):argv.index("gunicorn") + 1] = [sys.executable, "-m", "gunicorn"]
    argv[argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    served = run_documented(cwd, env, argv, port)
    try:
        ask_like_the_docs(port, capsys)
        assert any(r["provider"] == "openai" for r in served.access_log())
    finally:
        served.stop()


def test_import_modelmesh_loads_neither_the_proxy_nor_granian():
    code = ("import sys, modelmesh, modelmesh.cli\n"
            "print(sorted(m for m in ('modelmesh.proxy', 'granian', 'gunicorn') if m in sys.modules))\n"
            "import modelmesh.proxy\n"
            "print('granian' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split("\n")[:2] == ["[]", "False"]  # Granian only when `modelmesh serve` runs
