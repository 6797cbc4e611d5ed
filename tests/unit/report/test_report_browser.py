"""The demo report rendered by a real headless browser (Debian's chromium): layout and figures.

Marked ``slow`` (not in the CI suite): run with ``pytest -m slow`` on a machine with
``apt-get install chromium``. The screenshot is kept next to the report for a human look.
"""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from evalkit.cli import main

pytestmark = pytest.mark.slow

_BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _browser() -> str:
    for name in _BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless browser found (apt-get install chromium)")


def test_demo_report_renders_with_figures(tmp_path):
    browser = _browser()
    from PIL import Image

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--members", "1500", "--quiet"]) == 0
    shot = out / "screenshot.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--window-size=1100,4000", f"--screenshot={shot}", (out / "index.html").as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.exists(), "chromium wrote no screenshot"
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[0] >= 4000 and img.shape[1] >= 1000
    non_white = (img < 245).any(axis=2).mean()
    assert 0.02 < non_white < 0.6, f"page looks blank or broken ({non_white:.3f} non-white)"
    # Okabe-Ito vermillion (#D55E00) appears only inside the figures: they were decoded and drawn.
    verm = (np.abs(img - np.array([0xD5, 0x5E, 0x00])).sum(axis=2) < 40).sum()
    assert verm > 200, "no figure pixels found: inline SVG figures did not render"


def test_palliative_report_renders_with_figures(tmp_path):
    """The example palliative spec (matched design, net benefit tables and tornado) in a real browser."""
    browser = _browser()
    from pathlib import Path

    from PIL import Image

    spec = Path(__file__).resolve().parents[3] / "reports" / "examples" / "palliative.yaml"
    out = tmp_path / "pal"
    assert main(["run", str(spec), "--out", str(out), "--quiet"]) == 0
    shot = out / "screenshot.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--window-size=1100,6000", f"--screenshot={shot}", (out / "index.html").as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.exists(), "chromium wrote no screenshot"
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    top = img[:3000]  # summary and figures
    non_white = (top < 245).any(axis=2).mean()
    assert 0.02 < non_white < 0.6, f"page looks blank or broken ({non_white:.3f} non-white)"
    verm = (np.abs(top - np.array([0xD5, 0x5E, 0x00])).sum(axis=2) < 40).sum()
    assert verm > 200, "no figure pixels found: inline SVG figures did not render"
