"""Real processes sharing a store: counters and deadlines from 4 processes at once, and a writer
killed with SIGKILL in the middle of its saves, 100 times, for every connector shared between
processes (file, SQLite, Redis)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from storage_worker import check_payload

from modelmesh.connectors.storage import make_storage

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "storage_worker.py")
SHARED = ["file", "sqlite", "redis"]


@pytest.fixture(params=SHARED)
def config(request, tmp_path):
    if request.param == "file":
        return "file", {"path": str(tmp_path / "files")}
    if request.param == "sqlite":
        return "sqlite", {"path": str(tmp_path / "store.db")}
    return "redis", {"url": request.getfixturevalue("redis_url"), "prefix": f"test-{uuid.uuid4().hex}:"}


def run_together(connector, options, tmp_path, jobs):
    """Start one worker per job, let them all go at once, and return what each printed last."""
    go = tmp_path / f"go-{uuid.uuid4().hex}"
    procs = [subprocess.Popen([sys.executable, WORKER, connector, json.dumps(options), *job, str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for job in jobs]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        go.touch()
        outputs = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    return [float(out.split()[-1]) for out, _ in outputs]


def test_four_processes_adding_250_times_each_count_exactly_1000(config, tmp_path):
    connector, options = config
    with make_storage(connector, options):  # created before the race, as a deployment would
        pass
    finals = run_together(connector, options, tmp_path, [("add", "hits", "250")] * 4)
    assert max(finals) == 1000
    with make_storage(connector, options) as store:
        assert store.load("hits") == b"1000"


def test_four_processes_racing_raise_to_end_at_the_maximum(config, tmp_path):
    connector, options = config
    with make_storage(connector, options):
        pass
    # interleaved ascending and descending runs, so that every process both raises and is refused
    values = [[str(v) for v in range(start, 4000, 4)][:: 1 if start % 2 else -1] for start in range(4)]
    finals = run_together(connector, options, tmp_path, [("raise", "deadline", ",".join(v)) for v in values])
    assert all(final <= 3999 for final in finals) and 3999 in finals
    with make_storage(connector, options) as store:
        assert store.load("deadline") == b"3999"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the writer is forked so that killing it 100 times stays quick")
@pytest.mark.parametrize("connector", ["file", "sqlite"])
def test_a_writer_killed_mid_save_leaves_the_old_or_the_new_value_never_a_torn_one(connector, tmp_path):
    options = {"path": str(tmp_path / ("files" if connector == "file" else "store.db"))}
    proc = subprocess.run([sys.executable, WORKER, connector, json.dumps(options), "killsave", "state", "100", "7"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr  # each of the 100 loads after a kill found a whole payload
    report = json.loads(proc.stdout)
    assert report["rounds"] == 100
    assert report["changed"] == report["rounds"] - 1, report  # every round wrote before it was killed
    with make_storage(connector, options) as store:
        check_payload(store.load("state"))
        assert store.list() == ["state"]
    if connector == "file":  # temporary files of the killed writers never count as entries
        leftovers = [n for n in os.listdir(tmp_path / "files" / "data") if n.startswith(".tmp-")]
        assert len(leftovers) <= 100
