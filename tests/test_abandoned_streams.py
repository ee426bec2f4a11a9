"""Streams abandoned without close(): no finaliser path takes a lock, nothing leaks.

`for chunk in stream: break` leaves the stream to the garbage collector. The cyclic GC may
run it at any allocation, including one made while the same thread holds the core's lock;
a finaliser that then waited for that lock would block every thread for ever (it did: 4 of
4 runs within 241 iterations). Here thousands of abandoned streams are left in reference
cycles with the collector made eager, under a timeout.
"""
from __future__ import annotations

import gc
import threading

import modelmesh
from modelmesh.testing import FakeUpstream

MSG = [{"role": "user", "content": "hi"}]


def test_thousands_of_abandoned_streams_in_cycles_neither_hang_nor_hold_trials():
    with FakeUpstream("openai", name="a", models=["m"]) as up:
        config = {"providers": {"a": {"connector": "openai", "config": {
            "base_url": up.url, "auth": {"api_key": "sk-abandon-0123456789"},
            "models": [{"id": "m", "capabilities": ["chat-completion"]}]}}}}
        errors: list[BaseException] = []
        done = threading.Event()
        with modelmesh.MeshClient(config, environ={}) as client:
            def loop():
                try:
                    for _ in range(3000):
                        stream = client.chat.completions.create(model="a/m", messages=MSG, stream=True)
                        it = iter(stream)
                        next(it)
                        cycle: dict = {"it": it, "stream": stream}
                        cycle["self"] = cycle  # only the cyclic collector can free it, whenever it runs
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)
                finally:
                    done.set()

            old = gc.get_threshold()
            gc.set_threshold(100, 5, 5)  # collect often: inside locked regions too
            try:
                worker = threading.Thread(target=loop, daemon=True)
                worker.start()
                finished = done.wait(timeout=120)
            finally:
                gc.set_threshold(*old)
            assert finished, "the abandoned-stream loop hung (a finaliser waiting on a lock?)"
            assert errors == []
            gc.collect()
            r = client.chat.completions.create(model="a/m", messages=MSG)  # the client is still usable
            assert r.choices[0].message.content
            row = client.status()["pools"]["a/m"][0]
            assert row["status"] == "active" and row["failures"] == 0  # abandoning is no verdict
