"""Writing a file so that readers see the old file or the whole new one, never a part.

The content goes to a temporary file beside the target (same folder, so the rename stays on one
file system), which is renamed onto the target once it is complete; on any error the temporary
file is removed. A job killed between the two leaves at most a ``.NAME.tmp<pid>…`` file, which
no reader takes for the output.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path to write to; renamed onto ``path`` when the block ends without error.

    The temporary name keeps the target's suffix (``np.savez`` and others look at it).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
