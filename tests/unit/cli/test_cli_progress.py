"""CLI progress: bars on stderr with --progress, never on stdout; results byte-identical."""
from __future__ import annotations

import pytest
import yaml

import evalkit as ek

from evalkit.cli import build_parser, main


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cliprog")
    df = ek.datasets.load_mpdta()
    df["d"] = ((df["first.treat"] > 0) & (df["year"] >= df["first.treat"])).astype(int)
    df.to_csv(d / "panel.csv", index=False)
    spec = {"title": "CLI progress", "data": {"path": "panel.csv"}, "seed": 5,
            "columns": {"unit": "countyreal", "time": "year", "treatment": "d", "cluster": "countyreal"},
            "designs": [{"name": "lemp", "design": "twfe", "outcome": "lemp", "also_vcov": ["wild"],
                         "options": {"n_boot": 199}}],
            "figures": [{"type": "group_means", "outcome": "lemp", "group": "first.treat"}]}
    path = d / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_progress_flags_parse():
    p = build_parser()
    assert p.parse_args(["run", "x.yaml"]).progress is None
    assert p.parse_args(["run", "x.yaml", "--progress"]).progress is True
    assert p.parse_args(["demo", "--no-progress"]).progress is False


def test_progress_bar_on_stderr_and_identical_results(spec_file, tmp_path, capsys):
    assert main(["run", str(spec_file), "--out", str(tmp_path / "bar"), "--progress"]) == 0
    out_bar, err_bar = capsys.readouterr()
    assert "%|" in err_bar and "estimating lemp" in err_bar  # a tqdm bar of the report steps
    assert "%|" not in out_bar and "\r" not in out_bar
    assert main(["run", str(spec_file), "--out", str(tmp_path / "plain"), "--no-progress"]) == 0
    out_plain, err_plain = capsys.readouterr()
    assert "%|" not in err_plain and "] estimating lemp" in err_plain  # timed step messages instead
    assert out_bar.replace(str(tmp_path / "bar"), "D").split("\n")[1:] == out_plain.replace(str(tmp_path / "plain"), "D").split("\n")[1:]
    for name in ("results.json", "results.csv", "index.html", "spec.yaml"):
        assert (tmp_path / "bar" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes(), name


def test_default_is_no_bar_when_stderr_is_not_a_terminal_and_quiet_is_silent(spec_file, tmp_path, capsys):
    assert main(["run", str(spec_file), "--out", str(tmp_path / "a")]) == 0
    _, err = capsys.readouterr()
    assert "%|" not in err and "estimating lemp" in err
    assert main(["run", str(spec_file), "--out", str(tmp_path / "q"), "-q"]) == 0
    assert capsys.readouterr().err == ""
