"""A re-run removes the previous run's outputs that it no longer writes, and nothing else."""
from __future__ import annotations

import json
from pathlib import Path


from evalkit.report import build_report



def spec(path: Path, **outputs) -> dict:
    return {"title": "Stale", "data": {"path": str(path)},
            "columns": {"unit": "countyreal", "time": "year", "treatment": "d", "group": "ever"},
            "designs": [{"name": "a", "design": "twfe", "outcome": "lemp"}], "figures": [], "outputs": outputs}


def test_switched_off_output_is_removed(panel_csv, tmp_path):
    out = tmp_path / "out"
    first = build_report(spec(panel_csv), out)
    assert (out / "index.html").is_file() and (out / "spec.yaml").is_file()
    (out / "notes.txt").write_text("mine")
    second = build_report(spec(panel_csv, html=None, spec=None), out)
    assert not (out / "index.html").exists() and not (out / "spec.yaml").exists()
    m = json.loads((out / "manifest.json").read_text())
    assert set(m["outputs"]) == {"json", "csv"} and set(second.files) == {"json", "csv", "manifest"}
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "notes.txt", "results.csv", "results.json"]
    assert "html" in first.files


def test_renamed_output_removes_the_old_name(panel_csv, tmp_path):
    out = tmp_path / "out"
    build_report(spec(panel_csv), out)
    build_report(spec(panel_csv, html="report.html"), out)
    assert (out / "report.html").is_file() and not (out / "index.html").exists()


def test_edited_or_unlisted_files_are_kept(panel_csv, tmp_path):
    out = tmp_path / "out"
    build_report(spec(panel_csv), out)
    (out / "index.html").write_text("edited by hand")  # no longer the file evalkit wrote
    build_report(spec(panel_csv, html=None), out)
    assert (out / "index.html").read_text() == "edited by hand"


def test_manifest_entries_outside_the_folder_are_never_removed(panel_csv, tmp_path):
    import hashlib

    out = tmp_path / "out"
    build_report(spec(panel_csv), out)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    m = json.loads((out / "manifest.json").read_text())
    m["outputs"]["html"] = {"file": "../victim.txt", "sha256": hashlib.sha256(b"keep me").hexdigest()}
    (out / "manifest.json").write_text(json.dumps(m))
    build_report(spec(panel_csv, html=None), out)
    assert victim.read_text() == "keep me"
