"""A sink that holds a `modelmesh serve` worker in its start: its constructor, run while the
worker builds its client, marks the worker as starting (a file named by its pid in
$HELD_START_DIR) and waits until a file `go` appears there. The parent's own check of the
configuration (before it hands MODELMESH_SERVE to the workers) passes straight through."""
from __future__ import annotations

import os
import pathlib
import time

from modelmesh import cdk


class HeldSink(cdk.BaseObservability):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "MODELMESH_SERVE" not in os.environ:
            return
        where = pathlib.Path(os.environ["HELD_START_DIR"])
        (where / str(os.getpid())).write_text("starting", encoding="utf-8")
        deadline = time.monotonic() + 60
        while not (where / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.02)  # the test's signal, not a cooldown: a signal handler runs between sleeps

    def _write(self, record: dict) -> None:
        pass
