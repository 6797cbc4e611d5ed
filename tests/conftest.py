"""Shared test setup (keep minimal).

* Matplotlib draws with the non-interactive Agg backend, and figures are closed after each test.
* Optional dependencies: ``require("module")`` (also the ``optional_import`` fixture) skips a test
  when the module is missing -- except under ``CI=true``, where a missing optional dependency
  fails the test (a skipped check cannot fail). The same rule is applied to
  ``pytest.importorskip`` skips, in tests and at module level.
"""
from __future__ import annotations

import importlib
import os
import sys

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
try:
    import matplotlib

    matplotlib.use("Agg", force=True)
except ImportError:  # pragma: no cover - matplotlib is a core dependency
    pass


def in_ci() -> bool:
    """True when the environment says CI (``CI=true``/``1``/``yes``)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(module: str, reason: str = ""):
    """Import an optional dependency: skip if missing locally, fail if missing under CI=true."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = f"optional dependency {module!r} is not installed ({exc})" + (f": {reason}" if reason else "")
    if in_ci():
        pytest.fail(f"CI=true: {msg}. Install it in .ci/run instead of skipping.", pytrace=False)
    pytest.skip(msg)


@pytest.fixture
def optional_import():
    """The :func:`require` helper as a fixture: ``mod = optional_import("pyarrow")``."""
    return require


def _is_missing_import_skip(excinfo) -> bool:
    return excinfo is not None and excinfo.errisinstance(pytest.skip.Exception) and "could not import" in str(excinfo.value)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if in_ci() and rep.skipped and _is_missing_import_skip(call.excinfo):
        rep.outcome = "failed"
        rep.longrepr = f"CI=true: optional dependency missing, the test must not skip: {call.excinfo.value}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    rep = outcome.get_result()
    if in_ci() and rep.skipped and "could not import" in str(rep.longrepr):
        rep.outcome = "failed"
        rep.longrepr = f"CI=true: optional dependency missing, the module must not skip: {rep.longrepr}"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
