"""The evalkit command line: exit codes, one-line errors, outputs written only where asked."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import evalkit as ek
from evalkit.cli import DEFAULT_DEMO_OUT, build_parser, main


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def data_and_spec(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    df = ek.datasets.load_mpdta()
    df["d"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    df.to_csv(d / "panel.csv", index=False)
    spec = {"title": "CLI test", "data": {"path": "panel.csv"},
            "columns": {"unit": "countyreal", "time": "year", "treatment": "d"},
            "designs": [{"name": "lemp", "design": "twfe", "outcome": "lemp"}]}
    (d / "spec.yaml").write_text(yaml.safe_dump(spec))
    return d


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("demo", "run", "validate", "exit codes", "reports/demo/"):
        assert word in out
    for sub in ("demo", "run", "validate"):
        with pytest.raises(SystemExit) as exc:
            main([sub, "--help"])
        assert exc.value.code == 0
        assert "usage: evalkit " + sub in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    code, out, _ = run([], capsys)
    assert code == 2 and "usage:" in out


def test_demo_defaults_to_reports_demo_but_tests_use_out():
    args = build_parser().parse_args(["demo"])
    assert args.out == DEFAULT_DEMO_OUT == Path("reports/demo")
    assert args.seed == 20240101 and args.members == 20000


def test_demo_writes_report_to_out(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    code, out, err = run(["demo", "--out", out_dir, "--members", "800", "--seed", "5"], capsys)
    assert code == 0, err
    for name in ("index.html", "results.json", "results.csv", "manifest.json", "spec.yaml"):
        assert (out_dir / name).is_file(), name
    assert "Report written to" in out and "estimating spending" in err  # progress on stderr
    res = json.loads((out_dir / "results.json").read_text())
    names = [d["name"] for d in res["designs"]]
    assert names[0] == "spending" and "hba1c_test" in names
    sp = res["designs"][0]
    assert sp["conventions"]["cluster"] == ["org_id"]
    assert {e["term"] for e in sp["estimates"]} >= {"aqc", "age", "female", "risk_score"}
    assert "truth" in sp
    m = json.loads((out_dir / "manifest.json").read_text())
    assert m["spec"]["data"]["params"] == {"seed": 5, "n_members": 800}
    html = (out_dir / "index.html").read_text()
    assert html.count("data:image/svg+xml;base64,") >= 3


def test_run_spec(data_and_spec, tmp_path, capsys):
    code, out, err = run(["run", data_and_spec / "spec.yaml", "--out", tmp_path / "r", "--quiet"], capsys)
    assert code == 0, err
    assert err == "" and (tmp_path / "r" / "index.html").exists()


@pytest.mark.parametrize(
    "content, match",
    [
        ("data: {dataset: mpdta}\ndesigns: [{name: a, design: nope, outcome: y}]\n", "design must be one of"),
        ("title: !!python/object/apply:os.system ['echo hi']\n", "is not allowed"),
        ("designs: [oops\n", "invalid YAML"),
        ("bogus: 1\n", "unknown key"),
    ],
)
def test_bad_spec_exits_2_with_one_line(tmp_path, capsys, content, match):
    p = tmp_path / "bad.yaml"
    p.write_text(content)
    code, out, err = run(["run", p, "--out", tmp_path / "o"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evalkit: error: ") and match in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_missing_files_exit_2(tmp_path, capsys, data_and_spec):
    code, _, err = run(["run", tmp_path / "nope.yaml"], capsys)
    assert code == 2 and "not found" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["validate", tmp_path / "nope.csv", "--spec", data_and_spec / "spec.yaml"], capsys)
    assert code == 2 and "Data file not found" in err


def test_path_traversal_in_spec_exits_2(data_and_spec, tmp_path, capsys):
    spec = yaml.safe_load((data_and_spec / "spec.yaml").read_text())
    spec["data"]["path"] = str(data_and_spec / "panel.csv")
    spec["outputs"] = {"html": "../../escape.html"}
    p = tmp_path / "trav.yaml"
    p.write_text(yaml.safe_dump(spec))
    code, _, err = run(["run", p, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "outside the output folder" in err
    assert not (tmp_path.parent / "escape.html").exists()


def test_validate_ok_and_errors_listed(data_and_spec, tmp_path, capsys):
    code, out, err = run(["validate", data_and_spec / "panel.csv", "--spec", data_and_spec / "spec.yaml"], capsys)
    assert code == 0, err
    assert "ok     lemp: 2,500 rows" in out and "pass the data contract" in out
    df = pd.read_csv(data_and_spec / "panel.csv")
    bad = pd.concat([df, df.head(2)], ignore_index=True)
    bad.to_csv(tmp_path / "dup.csv", index=False)
    code, out, err = run(["validate", tmp_path / "dup.csv", "--spec", data_and_spec / "spec.yaml"], capsys)
    assert code == 1
    assert "ERROR  lemp:" in out and "one row per unit-period" in out
    assert "fail the data contract" in err
    df.drop(columns="lemp").to_csv(tmp_path / "nocol.csv", index=False)
    code, out, _ = run(["validate", tmp_path / "nocol.csv", "--spec", data_and_spec / "spec.yaml"], capsys)
    assert code == 1 and "'lemp'" in out


def test_bad_argument_values_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--members", "0"])
    assert exc.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_python_m_evalkit_reports_user_errors_without_traceback(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("data: !!python/name:os.system\n")
    proc = subprocess.run([sys.executable, "-m", "evalkit", "run", str(p), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("evalkit: error: ")


def test_validate_lists_all_missing_columns(data_and_spec, tmp_path, capsys):
    df = pd.read_csv(data_and_spec / "panel.csv")
    df.drop(columns=["lemp", "d"]).to_csv(tmp_path / "two.csv", index=False)
    code, out, _ = run(["validate", tmp_path / "two.csv", "--spec", data_and_spec / "spec.yaml"], capsys)
    assert code == 1
    assert "'lemp' (the outcome)" in out and "'d' (the treatment)" in out


# security/robustness review: user errors are one line with exit 2 (checked before estimating),
# -q is silent, the input data are never overwritten


def one_line_error(code, err, match):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("evalkit: error: ") and match in lines[0], err
    assert "Traceback" not in err


def _spec_file(data_and_spec, tmp_path, name="s.yaml", **over):
    spec = yaml.safe_load((data_and_spec / "spec.yaml").read_text())
    spec["data"]["path"] = str(data_and_spec / "panel.csv")
    spec.update(over)
    p = tmp_path / name
    p.write_text(yaml.safe_dump(spec))
    return p


@pytest.fixture
def no_estimation(monkeypatch):
    from evalkit.report import build

    def fail(*a, **k):
        raise AssertionError("estimated before checking the outputs")

    monkeypatch.setattr(build, "_run_design", fail)


def test_user_errors_before_estimation_exit_2(data_and_spec, tmp_path, capsys, no_estimation):
    spec = _spec_file(data_and_spec, tmp_path)
    existing = tmp_path / "a_file"
    existing.write_text("keep")
    code, _, err = run(["run", spec, "--out", existing, "-q"], capsys)
    one_line_error(code, err, "is an existing file, not a folder")
    assert existing.read_text() == "keep"
    loop = tmp_path / "loop"
    loop.mkdir()
    (loop / "index.html").symlink_to(loop / "index.html")
    code, _, err = run(["run", spec, "--out", loop, "-q"], capsys)
    one_line_error(code, err, "cannot be resolved")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("title: caf\xe9\n".encode("latin-1"))
    code, _, err = run(["run", latin1, "--out", tmp_path / "o", "-q"], capsys)
    one_line_error(code, err, "not UTF-8 text")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("title: [" + ", ".join(["&l0 [x,x,x,x,x,x,x,x,x]"] + [f"&l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]"
                                                                      for i in range(1, 9)]) + "]\n")
    code, _, err = run(["run", bomb, "--out", tmp_path / "o", "-q"], capsys)
    one_line_error(code, err, "too large")
    assert len(err) < 600
    assert not (tmp_path / "o").exists()


def test_run_refuses_to_overwrite_its_input_data(data_and_spec, tmp_path, capsys, no_estimation):
    d = tmp_path / "data"
    d.mkdir()
    (d / "panel.csv").write_bytes((data_and_spec / "panel.csv").read_bytes())
    spec = yaml.safe_load((data_and_spec / "spec.yaml").read_text())
    spec["outputs"] = {"csv": "panel.csv"}
    (d / "spec.yaml").write_text(yaml.safe_dump(spec))
    code, _, err = run(["run", d / "spec.yaml", "--out", d, "-q"], capsys)
    one_line_error(code, err, "is the input data file")
    assert (d / "panel.csv").read_bytes() == (data_and_spec / "panel.csv").read_bytes()


def test_bad_data_and_option_values_exit_2(data_and_spec, tmp_path, capsys):
    pytest.importorskip("pyarrow")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1garbagePAR1")
    spec = _spec_file(data_and_spec, tmp_path, "pq.yaml")
    s = yaml.safe_load(spec.read_text())
    s["data"]["path"] = str(bad)
    spec.write_text(yaml.safe_dump(s))
    code, _, err = run(["run", spec, "--out", tmp_path / "o", "-q"], capsys)
    one_line_error(code, err, "could not be read as Parquet")
    code, _, err = run(["validate", bad, "--spec", spec], capsys)
    one_line_error(code, err, "could not be read as Parquet")
    es = _spec_file(data_and_spec, tmp_path, "es.yaml",
                    designs=[{"name": "es", "design": "event_study", "outcome": "lemp", "options": {"leads": "x"}}])
    s = yaml.safe_load(es.read_text())
    s["columns"]["cohort"] = "first.treat"
    es.write_text(yaml.safe_dump(s))
    code, _, err = run(["run", es, "--out", tmp_path / "o", "-q"], capsys)
    one_line_error(code, err, "Design 'es' (event_study): The 'leads' parameter must be int")
    assert not (tmp_path / "o").exists()


def test_quiet_silences_stray_warnings(data_and_spec, tmp_path, capsys, caplog, monkeypatch):
    import warnings

    from evalkit.report import build

    real = build._versions

    def noisy():
        warnings.warn("stray library warning", UserWarning, stacklevel=1)
        return real()

    monkeypatch.setattr(build, "_versions", noisy)
    spec = _spec_file(data_and_spec, tmp_path)
    code, _, err = run(["run", spec, "--out", tmp_path / "q", "-q"], capsys)
    assert code == 0 and err == ""
    assert not any("stray library warning" in r.getMessage() for r in caplog.records)
    with caplog.at_level("WARNING"):
        code, _, err = run(["run", spec, "--out", tmp_path / "v"], capsys)
    assert code == 0 and "stray library warning" not in err  # a logging record (one line), not a raw warning
    assert [r.getMessage() for r in caplog.records if "stray" in r.getMessage()] == ["UserWarning: stray library warning"]


def test_quiet_run_with_matplotlib_warnings_prints_nothing(data_and_spec, tmp_path):
    """End to end: a CJK title (glyphs missing from DejaVu Sans) makes matplotlib warn; under -q
    nothing reaches stderr."""
    df = pd.read_csv(data_and_spec / "panel.csv")
    df["ever"] = (df["first.treat"] > 0).astype(int)
    df.to_csv(tmp_path / "p.csv", index=False)
    spec = _spec_file(data_and_spec, tmp_path, figures=[
        {"type": "group_means", "outcome": "lemp", "time": "year", "group": "ever", "title": "漢字 $5-$10"}])
    s = yaml.safe_load(spec.read_text())
    s["data"]["path"] = str(tmp_path / "p.csv")
    spec.write_text(yaml.safe_dump(s, allow_unicode=True))
    proc = subprocess.run([sys.executable, "-m", "evalkit", "run", str(spec), "--out", str(tmp_path / "o"), "-q"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
