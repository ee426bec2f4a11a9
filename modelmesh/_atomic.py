"""Writing a file all at once: readers see the old content or the new, never a part.

The data goes to a temporary file beside the target, is flushed to disk (fsync), and is
renamed over the target (`os.replace`, atomic on POSIX and Windows). If anything fails,
the temporary file is removed and the target is left as it was.
"""
from __future__ import annotations

import contextlib
import os
import tempfile

__all__ = ["write_atomically"]


def write_atomically(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None,
                     prefix: str | None = None) -> None:
    """Replace the file at `path` with `data`. `mode` sets the new file's permissions (before
    any byte is written); `prefix` names the temporary file (default `.<name>.`)."""
    target = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(target)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix or f".{name}.", suffix=".tmp")
    try:
        if mode is not None and hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
