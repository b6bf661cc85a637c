"""Ctrl-C and SIGTERM for the commands that start brokers and workers (``demo``, ``bench``).

Python turns SIGINT into ``KeyboardInterrupt`` at whatever bytecode runs next. Raised inside a weakref
or ``__del__`` callback (an import's module-lock callback is one) it is printed as "Exception ignored"
and lost, and the command goes on as if never interrupted, with its broker and worker running. So the
handler also records the request, and the commands' progress reports and wait loops call ``check()``,
which raises it again: a lost interrupt costs at most one progress interval.
"""

from __future__ import annotations

import signal
from types import FrameType

_requested = False


def install() -> None:
    """Make SIGINT and SIGTERM interrupt this process, even where it was started with SIGINT ignored
    (a background job of a non-interactive shell inherits that)."""
    global _requested
    _requested = False
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


def requested() -> bool:
    return _requested


def check() -> None:
    """Raise ``KeyboardInterrupt`` if the process was interrupted, in case the first one was lost."""
    if _requested:
        raise KeyboardInterrupt
