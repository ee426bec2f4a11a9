"""Hostile upstreams at the HTTP level: redirects, huge or endless bodies, trickles, unsendable keys.

Each upstream is a small raw server on loopback that misbehaves in one way; a healthy
OpenAI fake stands behind it. The caller must get an answer from the fallback (or a clear
error), never a hang, a raw exception, a secret, or a request sent where it should not go.
"""
from __future__ import annotations

import json
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

import modelmesh
from modelmesh import errors as E
from modelmesh.testing import FakeUpstream

KEY = "sk-hostile-transport-0123456789"
MSG = [{"role": "user", "content": "hi"}]
OK = json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "hostile"},
                              "finish_reason": "stop"}]}).encode()


class _Server:
    """A loopback HTTP server whose POST handler is `answer(handler)`; counts what it saw."""

    def __init__(self, answer):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                seen.append((self.path, dict(self.headers)))
                self.rfile.read(int(self.headers.get("content-length") or 0))
                answer(self)

            do_GET = do_POST

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fallback():
    with FakeUpstream("openai", name="fallback", models=["f"]) as up:
        yield up


def _client(url, fallback, **provider):
    cfg = {"base_url": url, "auth": {"api_key": KEY}, "timeout": "2s",
           "models": [{"id": "m", "capabilities": ["chat-completion"]}], **provider}
    config = {"providers": {"bad": {"connector": "openai", "config": cfg},
                            "ok": {"connector": "openai", "config": {
                                "base_url": fallback.url, "auth": {"api_key": "sk-fallback-0123456789"},
                                "models": [{"id": "f", "capabilities": ["chat-completion"]}]}}},
              "pools": {"chat": {"models": ["bad/m", "ok/f"], "strategy": "priority",
                                 "rotation": {"selection": {"model_priority": ["bad/m", "ok/f"]}}}}}
    return modelmesh.MeshClient(config, environ={})


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_never_followed_and_take_the_provider_aside(fallback, status):
    elsewhere = _Server(lambda h: (h.send_response(200), h.send_header("content-length", str(len(OK))),
                                   h.end_headers(), h.wfile.write(OK)))

    def redirect(h):
        h.send_response(status)
        h.send_header("location", f"{elsewhere.url}/chat/completions")
        h.send_header("content-length", "0")
        h.end_headers()

    bad = _Server(redirect)
    try:
        with _client(bad.url, fallback) as client:
            r = client.chat.completions.create(model="chat", messages=MSG)
            assert r.mesh.provider == "ok" and r.choices[0].message.content == "Hello from fallback"
            first = r.mesh.attempts[0]
            assert first.outcome == "misconfigured" and first.status == status
            assert elsewhere.url.split("//")[1].split("/")[0] in first.message
            assert client.status()["providers"]["bad"]["up"] is False
            assert client.status()["providers"]["bad"]["reason"] == "misconfigured"
            assert client.chat.completions.create(model="chat", messages=MSG).mesh.provider == "ok"
        assert elsewhere.seen == [] and len(bad.seen) == 1  # one request, never a loop, the key never sent on
    finally:
        bad.close()
        elsewhere.close()


def test_a_body_larger_than_the_cap_is_malformed_and_fails_over(fallback):
    big = b'{"pad": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    bad = _Server(lambda h: (h.send_response(200), h.send_header("content-length", str(len(big))),
                             h.end_headers(), h.wfile.write(big)))
    try:
        with _client(bad.url, fallback, max_response_size=1024 * 1024) as client:
            r = client.chat.completions.create(model="chat", messages=MSG)
        assert r.mesh.provider == "ok" and r.mesh.attempts[0].outcome == "malformed"
        assert "larger than 1048576 bytes" in r.mesh.attempts[0].message
    finally:
        bad.close()


def test_a_gzip_bomb_counts_at_its_decompressed_size(fallback):
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    zeros = b"\0" * (1024 * 1024)
    bomb = b"".join(packer.compress(zeros) for _ in range(256)) + packer.flush()  # 256 MiB inside ~260 KB

    def answer(h):
        h.send_response(200)
        h.send_header("content-encoding", "gzip")
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(bomb)))
        h.end_headers()
        h.wfile.write(bomb)

    bad = _Server(answer)
    try:
        with _client(bad.url, fallback) as client:
            started = time.perf_counter()
            r = client.chat.completions.create(model="chat", messages=MSG)
        assert r.mesh.provider == "ok" and "larger than 33554432 bytes" in r.mesh.attempts[0].message
        assert time.perf_counter() - started < 10
    finally:
        bad.close()


def test_a_body_trickling_in_ends_at_the_timeout_not_when_it_finishes(fallback):
    def trickle(h):
        h.send_response(200)
        h.send_header("content-length", "1000")
        h.end_headers()
        try:
            for _ in range(1000):
                h.wfile.write(b" ")
                h.wfile.flush()
                time.sleep(0.02)  # the fake upstream is slow on purpose: a byte every 20 ms
        except OSError:
            pass  # the client hung up, as it should

    bad = _Server(trickle)
    try:
        with _client(bad.url, fallback, timeout="500ms") as client:
            started = time.perf_counter()
            r = client.chat.completions.create(model="chat", messages=MSG)
            took = time.perf_counter() - started
        assert r.mesh.provider == "ok" and r.mesh.attempts[0].outcome == "timeout"
        assert took < 3  # the whole body was due within 0.5s; it would have taken 20s
    finally:
        bad.close()


class _Unsendable(requests.Session):
    """A transport that cannot encode the request (as http.client refuses a non-latin-1 key)."""

    def request(self, method, url, **kw):
        if "bad" in url or "127.0.0.1:1/" in url:
            raise UnicodeEncodeError("latin-1", "Bearer sk-секрет", 10, 11, "ordinal not in range(256)")
        return super().request(method, url, **kw)


@pytest.mark.parametrize("by", ["urllib3", "a requests Session"])
def test_a_request_that_cannot_be_sent_is_a_misconfiguration_without_the_secret(fallback, by):
    with _client("http://bad.invalid:1/v1", fallback) as client:
        if by == "urllib3":  # http.client itself refuses the header: a key that slipped past validation
            client.core.set_api_keys("bad", ["sk-секрет-0123456789"], now=time.time())
        else:
            client.transport.http.session = _Unsendable()
        r = client.chat.completions.create(model="chat", messages=MSG)
        assert r.mesh.provider == "ok" and r.mesh.attempts[0].outcome == "misconfigured"
        assert "секрет" not in repr(r.mesh.attempts) and "UnicodeEncodeError" in r.mesh.attempts[0].message
        with pytest.raises(E.ModelMeshError):
            client.chat.completions.create(model="bad/m", messages=MSG)


def test_an_endless_stream_ends_at_the_size_cap(fallback):
    def endless(h):
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("transfer-encoding", "chunked")
        h.end_headers()
        piece = b": " + b"k" * 8000 + b"\n\n"  # an SSE comment: valid, empty, endless
        frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        try:
            for _ in range(100_000):
                h.wfile.write(frame)
        except OSError:
            pass  # the client hung up

    bad = _Server(endless)
    try:
        with _client(bad.url, fallback, max_response_size=256 * 1024, stream_first_chunk_timeout="2s") as client:
            s = client.chat.completions.create(model="chat", messages=MSG, stream=True)
            text = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
        assert text == "Hello from fallback" and s.mesh.attempts[0].outcome == "malformed"
        assert "stream larger than 262144 bytes" in s.mesh.attempts[0].message
    finally:
        bad.close()


def test_a_custom_session_whose_adapter_answers_without_a_socket_still_works():
    from requests.adapters import BaseAdapter
    from requests.structures import CaseInsensitiveDict

    class Canned(BaseAdapter):
        def send(self, request, **kwargs):
            r = requests.Response()
            r.status_code, r._content, r.encoding = 200, OK, "utf-8"
            r.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
            r.url, r.request = request.url, request
            return r

        def close(self):
            return None

    session = requests.Session()
    session.mount("http://", Canned())
    config = {"providers": {"c": {"connector": "openai", "config": {
        "base_url": "http://canned.invalid/v1", "auth": {"api_key": KEY},
        "models": [{"id": "m", "capabilities": ["chat-completion"]}]}}}}
    with modelmesh.MeshClient(config, environ={}, session=session) as client:
        assert client.chat.completions.create(model="c/m", messages=MSG).choices[0].message.content == "hostile"
