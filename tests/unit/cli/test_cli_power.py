"""`evalkit power BASELINE_CSV`: the detectability table, exit codes and one-line errors."""
from __future__ import annotations

import pandas as pd
import pytest

import evalkit as ek
from evalkit.cli import main


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def baseline_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("power") / "baseline.csv"
    ek.equity.example_baseline().to_csv(path, index=False)
    return path


def test_power_prints_table(baseline_csv, capsys):
    code, out, err = run(["power", baseline_csv, "--reduction", "0.5", "--post-years", "2"], capsys)
    assert code == 0, err
    assert "Detectability of a 50% gap reduction" in out
    assert "colorectal_cancer_screening" in out and "share_of_gap" in out
    expected = ek.equity.detectability(ek.equity.example_baseline(), reduction=0.5, post_years=2)
    assert f"{int(expected['candidate'].sum())} candidate(s)" in out


def test_power_writes_csv_equal_to_library(baseline_csv, tmp_path, capsys):
    out_file = tmp_path / "det.csv"
    code, out, _ = run(["power", baseline_csv, "--reduction", "0.25", "--alpha", "0.1", "--power", "0.9", "--out", out_file],
                       capsys)
    assert code == 0 and f"Table written to {out_file}" in out
    got = pd.read_csv(out_file)
    exp = ek.equity.detectability(ek.equity.example_baseline(), reduction=0.25, alpha=0.1, power=0.9)
    assert list(got.columns) == list(exp.columns)
    pd.testing.assert_series_equal(got["mde_pp"], exp["mde_pp"], rtol=1e-8, check_names=False)
    pd.testing.assert_series_equal(got["power"], exp["power"], rtol=1e-8, check_names=False)
    assert got["candidate"].tolist() == exp["candidate"].tolist()
    # deterministic: same input, same bytes
    first = out_file.read_bytes()
    run(["power", baseline_csv, "--reduction", "0.25", "--alpha", "0.1", "--power", "0.9", "--out", out_file], capsys)
    assert out_file.read_bytes() == first


def test_power_accepts_text_booleans(tmp_path, capsys):
    b = ek.equity.example_baseline()
    b["higher_is_better"] = b["higher_is_better"].map({True: "yes", False: "No"})
    path = tmp_path / "b.csv"
    b.to_csv(path, index=False)
    code, out, err = run(["power", path], capsys)
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--alpha", "1.5"], r"--alpha must be in \(0, 0.5\)\. Got 1.5\."),
        (["--power", "0"], r"--power must be in \(0, 1\)"),
        (["--power", "0.04"], r"--power \(0.04\) must exceed --alpha \(0.05\)"),
        (["--reduction", "-0.2"], r"--reduction must be a positive share"),
        (["--icc", "1.2"], r"--icc must be in \[0, 1\)"),
        (["--reference-group", "Martian"], r"reference_group='Martian' is not in column 'group'"),
    ],
)
def test_power_bad_options_one_line_exit_2(baseline_csv, capsys, args, message):
    import re

    code, out, err = run(["power", baseline_csv, *args], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evalkit: error: ") and re.search(message, lines[0]), err
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("system,measure,group,denominator,rate,higher_is_better\nA,m,White,100,70,true\nA,m,Black,100,0.6,true\n",
         r"Column 'rate': 1 value\(s\) outside \[0, 1\]"),
        ("system,measure,group\nA,m,White\n", r"not found in 'baseline'"),
        ("system,measure,group,denominator,rate,higher_is_better\nA,m,White,100,0.7,maybe\nA,m,Black,100,0.6,true\n",
         r"Column 'higher_is_better' must be true/false"),
        ("", r"could not be read as CSV"),
        ("system,measure,group,denominator,rate,higher_is_better\nA,m,White,100,0.7,true\nA,m,White,90,0.6,true\n",
         r"duplicate \(system, measure, group\)"),
    ],
)
def test_power_bad_csv_one_line_exit_2(tmp_path, capsys, content, message):
    import re

    path = tmp_path / "bad.csv"
    path.write_text(content)
    code, out, err = run(["power", path], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), err


def test_power_missing_file_and_bad_out(baseline_csv, tmp_path, capsys):
    code, _, err = run(["power", tmp_path / "nope.csv"], capsys)
    assert code == 2 and "No such file or directory" in err and "nope.csv" in err
    code, _, err = run(["power", baseline_csv, "--out", tmp_path / "missing_dir" / "x.csv"], capsys)
    assert code == 2 and "No such directory" in err
    code, _, err = run(["power", baseline_csv, "--out", baseline_csv], capsys)
    assert code == 2 and "is the input file" in err


def test_power_non_numeric_option_is_usage_error(baseline_csv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["power", str(baseline_csv), "--alpha", "abc"])
    assert exc.value.code == 2
    assert "expected a number, got 'abc'" in capsys.readouterr().err


def test_power_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["power", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: evalkit power" in out and "--reduction" in out and "higher_is_better" in out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "power" in capsys.readouterr().out


def test_power_csv_neutralises_spreadsheet_formulas(tmp_path, capsys):
    """Text cells from the baseline that start with = + - @ (OWASP CSV injection) get a leading
    quote in --out; numeric columns (negative gaps included) are written as numbers."""
    b = ek.equity.example_baseline()
    b["group"] = b["group"].replace({"Black": "=HYPERLINK(\"http://x\",\"B\")", "Asian": "@SUM(1+1)"})
    b["system"] = b["system"].replace({"System C (small, mostly White)": "-2+3"})
    b["measure"] = b["measure"].replace({"controlling_blood_pressure": "+cmd|' /C calc'!A0"})
    src = tmp_path / "b.csv"
    b.to_csv(src, index=False)
    out_file = tmp_path / "det.csv"
    code, _, err = run(["power", src, "--out", out_file], capsys)
    assert code == 0, err
    got = pd.read_csv(out_file)
    assert set(got["group"]) == {"'=HYPERLINK(\"http://x\",\"B\")", "Hispanic", "'@SUM(1+1)"}
    assert "'-2+3" in set(got["system"]) and "'+cmd|' /C calc'!A0" in set(got["measure"])
    exp = ek.equity.detectability(b)
    for c in ("baseline_gap_pp", "mde_pp", "power"):
        pd.testing.assert_series_equal(got[c], exp[c], rtol=1e-8, check_names=False)
    num = exp.select_dtypes("number").columns
    assert all(pd.api.types.is_numeric_dtype(got[c]) for c in num)  # numbers are never quoted
