"""evalkit.report robustness (security review): mathtext, failed runs, CSV formulas, YAML alias
bombs, overwriting the input data, user errors raised before estimation."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit.errors import DataError, SpecificationError
from evalkit.report import build as report_build
from evalkit.report import build_report, load_spec



def small_spec(path: Path, **over) -> dict:
    spec = {"title": "Robustness", "data": {"path": str(path)},
            "columns": {"unit": "countyreal", "time": "year", "treatment": "d", "group": "ever"},
            "designs": [{"name": "a", "design": "twfe", "outcome": "lemp"}], "figures": []}
    spec.update(over)
    return spec


def svgs(html: str) -> list[str]:
    return [base64.b64decode(u).decode("utf-8") for u in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)]


# 1. mathtext ------------------------------------------------------------------------------------


def test_dollar_signs_in_user_strings_are_drawn_as_typed(panel_csv, tmp_path):
    import matplotlib as mpl

    df = pd.read_csv(panel_csv)
    df["grp"] = np.where(df["ever"] == 1, r"$\undefinedmacro$", "Price $5-$10")
    path = tmp_path / "dollar.csv"
    df.to_csv(path, index=False)
    spec = small_spec(path, title=r"Spend $\x$")
    spec["designs"][0]["label"] = r"$\frac{$"
    spec["figures"] = [{"type": "group_means", "outcome": "lemp", "group": "grp", "title": "a $^$ b", "ylabel": "$_$"},
                       {"type": "coefficients", "designs": ["a"], "xlabel": "Price $5-$10"}]
    rep = build_report(spec, tmp_path / "out")  # raised ParseFatalException/ParseSyntaxException before
    text = "\n".join(svgs(rep.files["html"].read_text()))
    for s in ("Price $5-$10", "a $^$ b", "$_$", r"$\undefinedmacro$"):
        assert s in text, s  # the literal text, not italic mathtext fragments
    assert mpl.rcParams["text.parse_math"] is True  # the report does not change global state


# 2. a failed run leaves the previous report intact -----------------------------------------------


def test_failed_run_leaves_previous_report_intact(panel_csv, tmp_path):
    out = tmp_path / "out"
    good = small_spec(panel_csv, figures=[{"type": "coefficients", "designs": ["a"]}])
    build_report(good, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # different results (another outcome) and a figure that fails only when drawn
    bad = small_spec(panel_csv, figures=[{"type": "coefficients", "designs": ["a"], "terms": ["nope"]}])
    bad["designs"][0]["outcome"] = "lpop"
    with pytest.raises(SpecificationError, match="nope"):
        build_report(bad, out)
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before  # no new results.json beside the old index.html/manifest.json, no temp files
    m = json.loads(after["manifest.json"])
    import hashlib

    for kind, o in m["outputs"].items():
        assert hashlib.sha256(after[o["file"]]).hexdigest() == o["sha256"], kind


def test_failed_run_creates_nothing(panel_csv, tmp_path):
    bad = small_spec(panel_csv, figures=[{"type": "coefficients", "designs": ["a"], "terms": ["nope"]}])
    with pytest.raises(SpecificationError):
        build_report(bad, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_write_failure_removes_temporary_files(panel_csv, tmp_path, monkeypatch):
    out = tmp_path / "out"
    build_report(small_spec(panel_csv), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_build.os, "replace", failing_replace)
    spec = small_spec(panel_csv)
    spec["designs"][0]["outcome"] = "lpop"
    with pytest.raises(OSError):
        build_report(spec, out)
    monkeypatch.setattr(report_build.os, "replace", real_replace)
    assert calls and {p.name: p.read_bytes() for p in out.iterdir()} == before


# 3. CSV formula injection ----------------------------------------------------------------------


def test_results_csv_neutralises_formulas_but_keeps_numbers(panel_csv, tmp_path):
    df = pd.read_csv(panel_csv)
    df["=cmd|' /C calc'!A0"] = df["lpop"] + np.random.default_rng(1).normal(size=len(df))
    df["-2+3"] = df["lpop"] * 0.5 + np.random.default_rng(2).normal(size=len(df))
    path = tmp_path / "evil.csv"
    df.to_csv(path, index=False)
    spec = small_spec(path)
    spec["designs"][0].update(label='=HYPERLINK("http://x","L")', units="@SUM(1+1)",
                              columns={"covariates": ["=cmd|' /C calc'!A0", "-2+3"]})
    rep = build_report(spec, tmp_path / "out")
    lines = rep.files["csv"].read_text().splitlines()
    for line in lines[1:]:
        cells = next(iter(pd.read_csv(io.StringIO(lines[0] + "\n" + line), dtype=str, keep_default_na=False)
                          .itertuples(index=False)))
        for c in cells:
            assert not c.startswith(("=", "+", "@", "\t", "\r")), c
            assert not c.startswith("-") or re.fullmatch(r"-[0-9.e+-]+", c), c  # only negative numbers
    csv = pd.read_csv(rep.files["csv"])
    assert set(csv["label"]) == {"'=HYPERLINK(\"http://x\",\"L\")"} and set(csv["units"]) == {"'@SUM(1+1)"}
    assert {"'=cmd|' /C calc'!A0", "'-2+3"} <= set(csv["term"])
    assert pd.api.types.is_float_dtype(csv["estimate"]) and (csv["conf_low"] < 0).any()  # numbers stay numbers
    # results.json keeps the strings as given
    res = json.loads(rep.files["json"].read_text())
    assert res["designs"][0]["label"] == '=HYPERLINK("http://x","L")'
    assert "-2+3" in {e["term"] for e in res["designs"][0]["estimates"]}


def test_csv_safe_helper():
    f = pd.DataFrame({"s": ["=1+1", "+1", "-x", "@a", "\tt", "\rr", "ok", None, "a=b"], "n": [-1.5] * 9,
                      "i": [-3] * 9, "=name": ["x"] * 9})
    g = report_build._csv_safe(f)
    got = g["s"].tolist()
    assert got[:7] + got[8:] == ["'=1+1", "'+1", "'-x", "'@a", "'\tt", "'\rr", "ok", "a=b"] and pd.isna(got[7])
    assert g["n"].tolist() == [-1.5] * 9 and g["i"].tolist() == [-3] * 9
    assert list(g.columns) == ["s", "n", "i", "'=name"]
    assert f["s"].iloc[0] == "=1+1"  # the input is not modified
    clean = pd.DataFrame({"a": ["x", "y"], "b": [1.0, -2.0]})
    assert report_build._csv_safe(clean) is clean


# 4. YAML alias bomb and long error messages -----------------------------------------------------


def test_yaml_alias_bomb_is_rejected_quickly(tmp_path):
    levels = ["&l0 [x,x,x,x,x,x,x,x,x]"] + [f"&l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)]
    p = tmp_path / "bomb.yaml"
    p.write_text("title: [" + ", ".join(levels) + "]\ndata: {dataset: mpdta}\n")
    assert p.stat().st_size < 500
    t0 = time.perf_counter()
    with pytest.raises(SpecificationError, match="too large") as exc:
        build_report(p, tmp_path / "out")
    assert time.perf_counter() - t0 < 10 and len(str(exc.value)) < 500
    assert not (tmp_path / "out").exists()
    # a recursive alias is caught too
    p.write_text("title: &a [*a]\ndata: {dataset: mpdta}\n")
    with pytest.raises(SpecificationError, match="too large"):
        load_spec(p)


def test_ordinary_yaml_aliases_still_work(panel_csv, tmp_path):
    p = tmp_path / "alias.yaml"
    p.write_text(f"data: {{path: {panel_csv}}}\ncolumns: &cols {{unit: countyreal, time: year, treatment: d}}\n"
                 "designs:\n  - {name: a, design: twfe, outcome: lemp, columns: *cols}\nfigures: []\n")
    rep = build_report(p, tmp_path / "out")
    assert rep.results["designs"][0]["estimates"][0]["term"] == "d"


def test_error_messages_truncate_big_values(panel_csv):
    spec = small_spec(panel_csv, title=["x" * 1000] * 1000)
    with pytest.raises(SpecificationError, match="title must be a non-empty string") as exc:
        report_build.normalize_spec(spec)
    assert len(str(exc.value)) < 1000


# 5. outputs never overwrite the input data -----------------------------------------------------


def test_output_cannot_overwrite_input_data(panel_csv, tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    data = d / "panel.csv"
    data.write_bytes(panel_csv.read_bytes())
    spec = small_spec(data, outputs={"csv": "panel.csv"})
    with pytest.raises(SpecificationError, match="is the input data file"):
        build_report(spec, d)
    assert data.read_bytes() == panel_csv.read_bytes() and sorted(os.listdir(d)) == ["panel.csv"]
    # a relative data path (relative to the spec file) and a hard link are recognised too
    import yaml

    (d / "s.yaml").write_text(yaml.safe_dump(small_spec(Path("panel.csv"), outputs={"json": "panel.csv"})))
    with pytest.raises(SpecificationError, match="is the input data file"):
        build_report(d / "s.yaml", d)
    os.link(data, d / "link.csv")
    with pytest.raises(SpecificationError, match="is the input data file"):
        build_report(small_spec(data, outputs={"csv": "link.csv"}), d)
    assert data.read_bytes() == panel_csv.read_bytes()


# 6. user errors, raised before estimating -----------------------------------------------------


@pytest.fixture
def no_estimation(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("estimated before checking the outputs")

    monkeypatch.setattr(report_build, "_run_design", fail)


def test_out_dir_that_is_a_file_fails_before_estimating(panel_csv, tmp_path, no_estimation):
    f = tmp_path / "file"
    f.write_text("keep")
    with pytest.raises(SpecificationError, match="is an existing file, not a folder"):
        build_report(small_spec(panel_csv), f)
    with pytest.raises(SpecificationError, match="is an existing file, not a folder"):
        build_report(small_spec(panel_csv), f / "sub")
    assert f.read_text() == "keep"


def test_symlink_loop_and_folder_outputs_fail_before_estimating(panel_csv, tmp_path, no_estimation):
    out = tmp_path / "loop"
    out.mkdir()
    (out / "index.html").symlink_to(out / "index.html")
    with pytest.raises(SpecificationError, match="cannot be resolved"):
        build_report(small_spec(panel_csv), out)
    out2 = tmp_path / "o2"
    (out2 / "results.json").mkdir(parents=True)
    with pytest.raises(SpecificationError, match="is an existing folder"):
        build_report(small_spec(panel_csv), out2)
    for outputs, match in (({"html": "."}, "output folder itself"), ({"html": "sub", "json": "sub/r.json"}, "both a file")):
        with pytest.raises(SpecificationError, match=match):
            build_report(small_spec(panel_csv, outputs=outputs), tmp_path / "o3")
    assert not (tmp_path / "o3").exists()


def test_non_utf8_spec(tmp_path):
    for suffix, text in ((".yaml", "title: caf\xe9\ndata: {dataset: mpdta}\n"), (".toml", 'title = "caf\xe9"\n')):
        p = tmp_path / f"latin1{suffix}"
        p.write_bytes(text.encode("latin-1"))
        with pytest.raises(SpecificationError, match="not UTF-8 text"):
            load_spec(p)


def test_corrupt_parquet_is_a_data_error(tmp_path):
    pytest.importorskip("pyarrow")
    p = tmp_path / "bad.parquet"
    p.write_bytes(b"PAR1garbagePAR1")
    spec = {"data": {"path": str(p)}, "columns": {"unit": "u", "time": "t", "treatment": "d"},
            "designs": [{"name": "a", "design": "twfe", "outcome": "y"}]}
    with pytest.raises(DataError, match="could not be read as Parquet"):
        build_report(spec, tmp_path / "out")


def test_unusable_option_value_is_a_specification_error(panel_csv, tmp_path):
    spec = small_spec(panel_csv)
    spec["columns"]["cohort"] = "first.treat"
    spec["designs"] = [{"name": "es", "design": "event_study", "outcome": "lemp", "options": {"leads": "x"}}]
    with pytest.raises(SpecificationError, match=r"Design 'es' \(event_study\).*check its options"):
        build_report(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# 7. figure warnings go to logging ----------------------------------------------------------


def test_figure_warnings_are_logged_not_printed(panel_csv, tmp_path, monkeypatch, capsys, caplog):
    import warnings

    from evalkit import plots

    real = plots.plot_group_means

    def noisy(*a, **k):
        warnings.warn("a matplotlib-style warning", UserWarning, stacklevel=1)
        return real(*a, **k)

    monkeypatch.setattr(plots, "plot_group_means", noisy)
    spec = small_spec(panel_csv, figures=[{"type": "group_means", "outcome": "lemp"}])
    with caplog.at_level("INFO", logger="evalkit"), warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning escaping the report would raise here
        build_report(spec, tmp_path / "out")
    assert capsys.readouterr().err == ""
    assert any("a matplotlib-style warning" in r.getMessage() for r in caplog.records)
