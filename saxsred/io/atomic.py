"""Atomic writes: write to a temporary name in the same folder, then rename.

A crash or an exception while writing leaves no half-written output behind.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

_COUNTER = itertools.count()


def _temp_name(path: Path) -> Path:
    # Unique per process and call (pid, counter), so concurrent writers never collide;
    # cheaper than tempfile.mkstemp, whose random names need no secrecy here.
    return path.with_name(f".{path.name}.{os.getpid()}.{next(_COUNTER)}.part")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    Example
    -------
    >>> with atomic_path("out.h5") as tmp:          # doctest: +SKIP
    ...     write_something(tmp)
    """
    path = Path(path)
    while True:
        tmp_path = _temp_name(path)
        try:
            # 0o666 less the umask: the permissions a plain open() would give
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # left over by a killed process that had this pid
            continue
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
    os.close(fd)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8, '\\n' line ends)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
