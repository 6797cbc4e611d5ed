"""Progress bars for long loops: silent by default, tqdm on stderr when asked.

Library code never prints. Functions with long loops (wild cluster bootstrap, Monte Carlo power
and payout simulations, report builds) take ``progress: bool | None = None``:

* ``False`` -- no bar;
* ``True`` -- a tqdm bar on ``sys.stderr`` (never stdout), e.g. from a notebook;
* ``None`` (the default) -- follow the ambient setting, which is off unless a caller opened
  :func:`progress_scope` (the report builder does, so the bootstrap and simulation loops of the
  designs it runs show nested bars when the report's own bar is on).

Bars never touch random number generators or results: output is identical with or without them.
If tqdm is not installed, bars are silently skipped.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterable, Iterator

__all__ = ["progress_bar", "progress_scope", "progress_enabled"]

_AMBIENT: ContextVar[bool] = ContextVar("evalkit_progress", default=False)


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether a loop should show a bar: ``progress`` if given, else the ambient setting."""
    return _AMBIENT.get() if progress is None else bool(progress)


@contextmanager
def progress_scope(enabled: bool) -> Iterator[None]:
    """Within the block, functions called with ``progress=None`` show bars iff ``enabled``."""
    token = _AMBIENT.set(bool(enabled))
    try:
        yield
    finally:
        _AMBIENT.reset(token)


class _NoBar:
    """The do-nothing stand-in for a tqdm bar (same methods the library uses)."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None):
        self.iterable = iterable
        self.total = total
        self.n = 0

    def __iter__(self):
        return iter(self.iterable if self.iterable is not None else ())

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_description_str(self, desc: str | None = None, refresh: bool = True) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str | None = None,
                 unit: str = "it", progress: bool | None = None, leave: bool = False) -> Any:
    """A tqdm bar on stderr when :func:`progress_enabled` (``progress``), else a no-op stand-in.

    Use as an iterable wrapper or as a context manager with ``update(n)``. Nested bars (a
    bootstrap inside a report step) stack below the outer bar and disappear when done
    (``leave=False``).
    """
    if not progress_enabled(progress):
        return _NoBar(iterable, total)
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a core dependency
        return _NoBar(iterable, total)
    width = _stderr_width()
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=leave, mininterval=0.1, disable=False,
                **({"dynamic_ncols": True} if width else {"ncols": 100, "nrows": 50}))


def _stderr_width() -> int:
    """Columns of the terminal on stderr; 0 when unknown (a pipe, or a pseudo-terminal without a size,
    where tqdm would draw nothing: no width, and no rows for the bar)."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0
