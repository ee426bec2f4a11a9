"""A soak: 8 threads for 60 simulated seconds against a primary that flaps (down 10 s, up 10 s).

Every request must be answered (by the fallback while the primary is down), and after each
recovery the primary must serve again within one probe interval: recovery found by probe,
not by making callers fail. Time is a FakeClock moved by the driver; probes are run by the
driver once per step, as the probe thread would.
"""
from __future__ import annotations

import threading

import modelmesh
from modelmesh.testing import Error, FakeClock, FakeUpstream, Reply

MSG = [{"role": "user", "content": "hi"}]
STEP = 0.5
THREADS = 8


def test_a_flapping_primary_costs_callers_nothing_and_is_back_within_a_probe_interval():
    clock = FakeClock()
    t0 = clock()

    primary_hits: list[float] = []

    def primary_step(req):
        down = int((clock() - t0) // 10) % 2 == 0  # down 0-10 s, up 10-20 s, down 20-30 s, ...
        if down:
            primary_hits.append(clock() - t0)
        return Error(503) if down else Reply()

    with FakeUpstream("openai", name="primary", models=["p"]) as primary, \
            FakeUpstream("openai", name="fallback", models=["f"]) as fallback:
        primary.always(primary_step)
        prov = {pid: {"connector": "openai", "config": {"base_url": up.url, "auth": {"api_key": "sk-soak-0123456789"},
                                                         "models": [{"id": m, "capabilities": ["chat-completion"]}]}}
                for pid, up, m in (("pri", primary, "p"), ("fb", fallback, "f"))}
        config = {"providers": prov, "pools": {"chat": {"models": ["pri/p", "fb/f"], "strategy": "priority",
                                                         "rotation": {"selection": {"model_priority": ["pri/p"]}}}}}
        served: list[tuple[float, str]] = []
        errors: list[BaseException] = []
        guard = threading.Lock()
        with modelmesh.MeshClient(config, clock=clock, sleep=clock.sleep, environ={},
                                  probe_check_interval=3600) as client:
            def one():
                try:
                    r = client.chat.completions.create(model="chat", messages=MSG)
                    with guard:
                        served.append((clock() - t0, r.mesh.provider))
                except BaseException as exc:  # noqa: BLE001 - counted below
                    with guard:
                        errors.append(exc)

            for _ in range(int(60 / STEP)):
                workers = [threading.Thread(target=one) for _ in range(THREADS)]
                for w in workers:
                    w.start()
                for w in workers:
                    w.join(timeout=30)
                client.run_probes()
                clock.advance(STEP)
    assert errors == [] and len(served) == THREADS * int(60 / STEP)
    for recovery in (10, 30, 50):
        back = [t for t, p in served if p == "pri" and t >= recovery]
        assert back and back[0] <= recovery + 10 + STEP, f"primary back at {back[:1]} after recovering at {recovery}"
    # a sick primary is not hammered: per 10 s down, at most the first wave of concurrent requests
    # (each retried once) and a few probes reach it, out of the 160 requests of those 10 s
    assert len(primary_hits) <= 3 * (2 * THREADS + 4), len(primary_hits)
