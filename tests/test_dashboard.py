"""The live view: `LiveView` kept from the events, `modelmesh status --watch` (from a config
or a running proxy), the proxy's /dashboard page and its data, and the page in a real
headless Chromium (Debian's chromium and chromedriver, driven by Selenium) showing every
pool and model and a standby within its refresh interval."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socketserver
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from test_proxy_app import call

import modelmesh
from modelmesh import cli
from modelmesh._live import LiveView, table
from modelmesh.proxy import create_app
from modelmesh.testing import Error, FakeClock, FakeUpstream

MASTER = "sk-dash-master-0123456789"


@pytest.fixture
def ups():
    with FakeUpstream("openai", name="a", models=["m1"]) as a, FakeUpstream("openai", name="b", models=["m2"]) as b:
        yield a, b


def cfg(a, b, **proxy):
    return {"secrets": {"store": "memory", "values": {"mk": MASTER}},
            "providers": {name: {"connector": "openai", "config": {
                "base_url": up.url, "auth": {"api_key": f"sk-{name}-0123456789"},
                "models": [{"id": m, "capabilities": ["chat-completion"]}]}} for name, up, m in
                (("a", a, "m1"), ("b", b, "m2"))},
            "pools": {"chat": {"models": ["a/m1", "b/m2"], "strategy": "priority",
                               "rotation": {"selection": {"model_priority": ["a/m1", "b/m2"]}}},
                      "backup": {"models": ["b/m2"]}},
            "routing": {"retry": {"same_model_retries": 0}},
            "proxy": {"auth": {"master_key": "${secrets:mk}"}, **proxy}}


def ask(client, model="chat"):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def test_the_live_view_counts_rates_errors_and_latency_per_member(ups):
    a, b = ups
    clock = FakeClock()
    with modelmesh.MeshClient(cfg(a, b), clock=clock, sleep=clock.sleep, environ={}) as client:
        view = LiveView(client, window=60)
        a.script(Error(500))
        for _ in range(4):
            ask(client)
        snap = view.snapshot()
        rows = {r["model"]: r for r in snap["pools"]["chat"]}
        assert rows["a/m1"]["rpm"] == 4 and rows["a/m1"]["error_rate"] == 0.25
        assert rows["b/m2"]["rpm"] == 1 and rows["b/m2"]["error_rate"] == 0.0 and rows["b/m2"]["p50"] is not None
        assert [e["type"] for e in snap["events"]].count("attempt_failed") == 1
        clock.advance(61)  # out of the window: the rates go, the totals stay
        rows = {r["model"]: r for r in view.snapshot()["pools"]["chat"]}
        assert rows["a/m1"]["rpm"] == 0 and rows["a/m1"]["error_rate"] is None and rows["a/m1"]["requests"] == 4
        client.deactivate("a/m1", until=clock() + 30)
        text = table(view.snapshot())
        assert "pool chat" in text and "pool backup" in text
        line = next(x for x in text.splitlines() if "a/m1" in x)
        assert "standby" in line and "30s" in line
    with pytest.raises(ValueError, match="window"):
        LiveView(client, window=0)


def test_status_watch_from_a_config_refreshes_the_table(ups, tmp_path, capsys):
    a, b = ups
    path = tmp_path / "mesh.json"
    path.write_text(json.dumps(cfg(a, b)))
    assert cli.main(["status", str(path), "--watch", "--count", "2", "--interval", "0.01"]) == 0
    out = capsys.readouterr().out
    assert out.count("pool chat") == 2 and "a/m1" in out and "req/min" in out


def test_status_needs_a_config_or_a_url(capsys):
    with pytest.raises(SystemExit, match="give a CONFIG file, or --url"):
        cli.main(["status"])


class _Threaded(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):  # noqa: D102 - the test output is not an access log
        pass


@contextlib.contextmanager
def serving(app):
    server = make_server("127.0.0.1", 0, app, server_class=_Threaded, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_dashboard_data_needs_the_master_key_and_the_page_loads_nothing_from_elsewhere(ups):
    a, b = ups
    app = create_app(cfg(a, b), access_log=None)
    try:
        status, headers, page = call(app, "GET", "/dashboard")
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in headers["content-security-policy"]
        assert b"http://" not in page and b"https://" not in page and b"<script src" not in page
        assert call(app, "GET", "/dashboard/data")[0] == 401
        assert call(app, "GET", "/dashboard/data", authorization="Bearer nope-0123456789")[0] == 401
        assert call(app, "POST", "/dashboard/data", authorization=f"Bearer {MASTER}")[0] == 405
        status, _, body = call(app, "GET", "/dashboard/data", authorization=f"Bearer {MASTER}")
        data = json.loads(body)
        assert status == 200 and set(data["pools"]) == {"chat", "backup"} and MASTER not in body.decode()
    finally:
        app.close()


def test_status_url_reads_a_running_proxy(ups, monkeypatch, capsys):
    a, b = ups
    app = create_app(cfg(a, b), access_log=None)
    try:
        with serving(app) as url:
            ask(app.mesh)
            monkeypatch.delenv("MODELMESH_PROXY_KEY", raising=False)
            assert cli.main(["status", "--url", url]) == 2
            assert "set MODELMESH_PROXY_KEY" in capsys.readouterr().err
            monkeypatch.setenv("MODELMESH_PROXY_KEY", MASTER)
            assert cli.main(["status", "--url", url, "--json"]) == 0
            snap = json.loads(capsys.readouterr().out)
            assert snap["pools"]["chat"][0]["rpm"] == 1
            assert cli.main(["status", "--url", url, "--watch", "--count", "2", "--interval", "0.01"]) == 0
            assert capsys.readouterr().out.count("pool backup") == 2
    finally:
        app.close()


# -- the page in a real browser -----------------------------------------------------------------

def _browser():
    chromium, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI"):
            pytest.fail("CI must have chromium and chromedriver (.ci/run installs them)")
        pytest.skip("no chromium/chromedriver on this machine (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,900"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


# The page re-renders its tables at every refresh, so an element found now may be gone a moment
# later: the page is read in one script run (the page's own script cannot run in between).
_READ_PAGE = """
const rows = [];
for (const t of document.querySelectorAll("table[data-pool]"))
  for (const r of t.querySelectorAll("tr[data-model]"))
    rows.push([t.dataset.pool, r.dataset.model, r.querySelector("td.state").textContent]);
const providers = {};
for (const r of document.querySelectorAll("tr[data-provider]")) providers[r.dataset.provider] = r.textContent;
return {rows: rows, providers: providers, events: document.getElementById("events").textContent,
        login: getComputedStyle(document.getElementById("login")).display !== "none"};
"""


def _page(browser):
    return browser.execute_script(_READ_PAGE)


def _state(browser, pool, model):
    return next((state for p, m, state in _page(browser)["rows"] if (p, m) == (pool, model)), None)


def test_the_dashboard_shows_every_pool_and_model_and_a_standby_within_its_refresh(ups):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    a, b = ups
    browser = _browser()
    app = create_app(cfg(a, b), access_log=None)
    try:
        with serving(app) as url:
            ask(app.mesh)
            browser.get(f"{url}/dashboard?refresh=300")
            wait = WebDriverWait(browser, 10, poll_frequency=0.1)
            wait.until(lambda d: _page(d)["login"])
            browser.find_element(By.ID, "key").send_keys(MASTER)
            browser.find_element(By.CSS_SELECTOR, "#login button").click()
            wait.until(lambda d: _state(d, "chat", "a/m1") == "active")
            page = _page(browser)
            assert {(p, m) for p, m, _ in page["rows"]} == {("chat", "a/m1"), ("chat", "b/m2"), ("backup", "b/m2")}
            assert page["providers"]["a"].startswith("aup")  # the cells' text, run together
            app.mesh.deactivate("a/m1", pool="chat")
            WebDriverWait(browser, 2.0, poll_frequency=0.05).until(lambda d: _state(d, "chat", "a/m1") == "standby")
            assert "model_deactivated" in _page(browser)["events"]
            artifacts = Path(os.environ.get("MODELMESH_ARTIFACTS", ".ci-artifacts"))
            artifacts.mkdir(parents=True, exist_ok=True)
            assert browser.save_screenshot(str(artifacts / "dashboard.png"))
    finally:
        browser.quit()
        app.close()
