"""evalkit.report: spec handling, escaping, safe YAML, output paths, determinism, manifest."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import DataError, SpecificationError
from evalkit.report import build_report, demo_spec, load_spec, normalize_spec, register_design, validate_data
from evalkit.report.build import DESIGNS



def make_spec(path: Path, **over) -> dict:
    spec = {
        "title": "Minimum wage and teen employment",
        "data": {"path": str(path)},
        "columns": {"unit": "countyreal", "time": "year", "treatment": "d", "cohort": "first.treat", "group": "ever"},
        "designs": [
            {"name": "lemp", "design": "twfe", "outcome": "lemp", "label": "Log teen employment",
             "options": {"vcov": "CR1"}, "relative": "pre_mean"},
            {"name": "lemp_es", "design": "event_study", "outcome": "lemp", "options": {"warn_staggered": False}},
        ],
        "figures": [
            {"type": "group_means", "outcome": "lemp", "title": "Means"},
            {"type": "coefficients", "designs": ["lemp"]},
            {"type": "event_study", "design": "lemp_es"},
        ],
    }
    spec.update(over)
    return spec


@pytest.fixture(scope="module")
def built(panel_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("rep")
    return build_report(make_spec(panel_csv), out)


def test_writes_every_output(built):
    names = {p.name for p in built.files.values()}
    assert names == {"index.html", "results.json", "results.csv", "manifest.json", "spec.yaml"}
    for p in built.files.values():
        assert p.exists() and p.stat().st_size > 0


def test_results_json_and_csv_hold_every_estimate(built):
    res = json.loads(built.files["json"].read_text())
    d0 = res["designs"][0]
    assert d0["name"] == "lemp" and d0["estimates"][0]["term"] == "d"
    direct = ek.did.twfe(pd.read_csv(built.manifest["input"]["path"]), outcome="lemp", unit="countyreal",
                         time="year", treatment="d")
    assert d0["estimates"][0]["estimate"] == pytest.approx(direct.estimate, rel=1e-10)
    assert d0["estimates"][0]["std_error"] == pytest.approx(direct.std_error, rel=1e-10)
    assert d0["conventions"]["vcov_type"] == "CR1" and d0["conventions"]["cluster"] == ["countyreal"]
    assert [x["name"] for x in d0["derived"]] == ["relative_effect"]
    assert "pretrend_test" in res["designs"][1]
    csv = pd.read_csv(built.files["csv"])
    n_est = sum(len(d["estimates"]) + sum(len(x["estimates"]) for x in d["derived"]) for d in res["designs"])
    assert len(csv) == n_est
    assert set(csv["design"]) == {"lemp", "lemp_es"}
    es = csv[csv["design"] == "lemp_es"]
    assert es["event_time"].notna().all()


def test_html_is_self_contained_with_figures_and_conventions(built):
    html = built.files["html"].read_text()
    assert html.count('<img src="data:image/svg+xml;base64,') == 3
    assert "http://" not in html.replace("http://www.w3.org", "") and "<script" not in html
    assert "Standard errors" in html and "CR1" in html and "t(499)" in html
    assert built.manifest["input"]["file_sha256"] in html  # data hash in the report header
    assert "created_utc" not in html and built.manifest["created_utc"] not in html


def test_manifest_records_provenance(built, panel_csv):
    m = json.loads(built.files["manifest"].read_text())
    import hashlib

    assert m["input"]["file_sha256"] == hashlib.sha256(panel_csv.read_bytes()).hexdigest()
    assert len(m["input"]["frame_sha256"]) == 64
    for pkg in ("evalkit", "numpy", "pandas", "scipy", "statsmodels", "matplotlib"):
        assert m["versions"][pkg]
    assert m["versions"]["evalkit"] == ek.__version__
    assert m["spec"]["designs"][0]["name"] == "lemp" and "seeds" in m
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", m["created_utc"])
    assert m["outputs"]["json"]["sha256"] == hashlib.sha256(built.files["json"].read_bytes()).hexdigest()


def test_same_spec_twice_gives_identical_results(panel_csv, tmp_path):
    a = build_report(make_spec(panel_csv), tmp_path / "a")
    b = build_report(make_spec(panel_csv), tmp_path / "b")
    for kind in ("json", "csv", "html", "spec"):
        assert a.files[kind].read_bytes() == b.files[kind].read_bytes(), kind
    ma, mb = (json.loads(x.files["manifest"].read_text()) for x in (a, b))
    ma.pop("created_utc"), mb.pop("created_utc")
    assert ma == mb  # the timestamp is the only difference


def test_spec_yaml_reruns_to_identical_results(built, tmp_path):
    again = build_report(built.files["spec"], tmp_path / "again")
    assert again.files["json"].read_bytes() == built.files["json"].read_bytes()


def test_user_strings_are_escaped(panel_csv, tmp_path):
    evil = "<script>alert(1)</script>"
    df = pd.read_csv(panel_csv)
    df[evil] = df["lpop"]
    df["grp"] = np.where(df["ever"] == 1, "<b>treated</b>", "ctl")
    path = tmp_path / "evil.csv"
    df.to_csv(path, index=False)
    spec = make_spec(path, title=f"Report {evil}", description=f"About {evil}")
    spec["designs"] = [{"name": "x", "design": "twfe", "outcome": "lemp", "label": f"Label {evil}", "units": evil,
                        "columns": {"covariates": [evil]}, "options": {"vcov": "CR1"}}]
    spec["figures"] = [{"type": "group_means", "outcome": "lemp", "group": "grp", "title": evil, "caption": evil}]
    rep = build_report(spec, tmp_path / "out")
    html = rep.files["html"].read_text()
    assert "<script" not in html.lower()
    assert "<b>treated" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # the covariate named <script> is in the results, escaped in the HTML
    assert evil in rep.files["json"].read_text()


def test_yaml_python_tags_are_rejected(tmp_path):
    marker = tmp_path / "pwned"
    spec = tmp_path / "spec.yaml"
    spec.write_text(f'title: !!python/object/apply:os.system ["touch {marker}"]\ndata: {{dataset: mpdta}}\n')
    with pytest.raises(SpecificationError, match=r"tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed"):
        load_spec(spec)
    assert not marker.exists()
    spec.write_text("data: !!python/name:os.system\n")
    with pytest.raises(SpecificationError, match="safe_load"):
        build_report(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_invalid_yaml_and_non_mapping(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("designs: [unclosed\n")
    with pytest.raises(SpecificationError, match=r"line 2.*invalid YAML"):
        load_spec(p)
    p.write_text("- a\n- b\n")
    with pytest.raises(SpecificationError, match="must be a mapping"):
        load_spec(p)
    with pytest.raises(FileNotFoundError, match="Spec file not found"):
        load_spec(tmp_path / "missing.yaml")


@pytest.mark.parametrize("name", ["../evil.html", "sub/../../evil.html", "/tmp/evil.html", "~/evil.html", "a\\..\\b.html", ".."])
def test_output_names_cannot_escape_out_dir(panel_csv, tmp_path, name):
    spec = make_spec(panel_csv, outputs={"html": name})
    with pytest.raises(SpecificationError, match="outside the output folder|plain relative|file name"):
        build_report(spec, tmp_path / "out")
    assert not (tmp_path / "evil.html").exists() and not (tmp_path / "out").exists()


def test_output_in_subfolder_is_allowed(panel_csv, tmp_path):
    spec = make_spec(panel_csv, outputs={"html": "html/report.html"}, figures=[])
    rep = build_report(spec, tmp_path / "out")
    assert rep.files["html"] == (tmp_path / "out" / "html" / "report.html").resolve()


def test_toml_spec(panel_csv, tmp_path):
    p = tmp_path / "spec.toml"
    p.write_text(
        f'title = "TOML"\n[data]\npath = "{panel_csv.as_posix()}"\n'
        '[columns]\nunit = "countyreal"\ntime = "year"\ntreatment = "d"\n'
        '[[designs]]\nname = "a"\ndesign = "twfe"\noutcome = "lemp"\n'
    )
    rep = build_report(p, tmp_path / "out")
    assert rep.results["designs"][0]["estimates"][0]["term"] == "d"


def test_relative_data_path_is_relative_to_spec_file(panel_csv, tmp_path):
    import shutil
    import yaml

    shutil.copy(panel_csv, tmp_path / "p.csv")
    spec = make_spec(Path("p.csv"), figures=[])
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    rep = build_report(tmp_path / "s.yaml", tmp_path / "out")
    assert rep.manifest["input"]["path"] == "p.csv"


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda s: s.update(bogus=1), r"unknown key\(s\) \['bogus'\]"),
        (lambda s: s["designs"][0].update(design="magic"), r"design must be one of \["),
        (lambda s: s["designs"][0]["options"].update(vcovv="CR1"), r"unknown option\(s\) \['vcovv'\] for design 'twfe'"),
        (lambda s: s["designs"][0]["options"].update(unit="x"), "Column roles go under columns"),
        (lambda s: s["designs"][1].update(name="lemp"), "used twice"),
        (lambda s: s["designs"][0].update(name="../x"), "name must be letters"),
        (lambda s: s.update(data={"dataset": "nope"}), "data.dataset must be one of"),
        (lambda s: s.update(data={"path": "x.xlsx"}), ".csv or .parquet"),
        (lambda s: s["columns"].pop("treatment"), r"needs the column role\(s\) \['treatment'\]"),
        (lambda s: s["designs"][0].update(scale=0), "scale must be a non-zero number"),
        (lambda s: s["figures"].append({"type": "pie"}), "type: one of"),
        (lambda s: s.update(outputs={"json": None}), "cannot be switched off"),
        (lambda s: s.update(designs=[]), "non-empty list"),
    ],
)
def test_spec_errors_name_the_key(panel_csv, mutate, match):
    spec = make_spec(panel_csv)
    mutate(spec)
    with pytest.raises(SpecificationError, match=match):
        normalize_spec(spec)


def test_missing_data_file_and_bad_data(panel_csv, tmp_path):
    with pytest.raises(FileNotFoundError, match="Data file not found"):
        build_report(make_spec(tmp_path / "nope.csv"), tmp_path / "out")
    spec = make_spec(panel_csv)
    spec["designs"][0]["outcome"] = "no_such_column"
    with pytest.raises(DataError, match="no_such_column"):
        build_report(spec, tmp_path / "out")


def test_validate_data_lists_every_failing_design(panel_csv):
    df = pd.read_csv(panel_csv)
    spec = normalize_spec(make_spec(panel_csv))
    checks = validate_data(df, spec)
    assert all(c.ok for c in checks) and "2,500 rows" in checks[0].message
    bad = pd.concat([df, df.head(3)], ignore_index=True)  # duplicate unit-periods
    bad["lemp"] = bad["lemp"].astype(object)
    bad.loc[5, "lemp"] = "oops"
    checks = validate_data(bad, spec)
    assert [c.ok for c in checks] == [False, False]
    assert all("lemp" in c.message or "duplicate" in c.message for c in checks)


def test_subset_and_scale_are_counted_and_applied(panel_csv, tmp_path):
    df = pd.read_csv(panel_csv)
    df["bin"] = (df["lemp"] > df["lemp"].median()).astype(float)
    df.loc[df.index % 7 == 0, "bin"] = np.nan
    path = tmp_path / "q.csv"
    df.to_csv(path, index=False)
    spec = make_spec(path, figures=[])
    spec["designs"] = [{"name": "q", "design": "twfe", "outcome": "bin", "scale": 100, "units": "percentage points",
                        "subset": "nonmissing"}]
    rep = build_report(spec, tmp_path / "out")
    d = rep.results["designs"][0]
    n_missing = int(df["bin"].isna().sum())
    assert d["sample"]["n_obs"] == len(df) - n_missing
    assert any(f"{n_missing:,} of {len(df):,} rows" in n for n in d["notes"])
    sub = df[df["bin"].notna()].assign(bin=lambda x: x["bin"] * 100)
    direct = ek.did.twfe(sub, outcome="bin", unit="countyreal", time="year", treatment="d")
    assert d["estimates"][0]["estimate"] == pytest.approx(direct.estimate, rel=1e-10)


def test_register_custom_design(panel_csv, tmp_path):
    def my_design(data, *, outcome, unit, time, treatment, cluster=None, covariates=(), weights=None, scale_se=1.0):
        r = ek.did.twfe(data, outcome=outcome, unit=unit, time=time, treatment=treatment)
        return r

    register_design("my_design", my_design, roles=("unit", "time", "treatment", "cluster", "covariates", "weights"),
                    required=("unit", "time", "treatment"), contract=DESIGNS["twfe"].contract, title="Custom")
    try:
        assert DESIGNS["my_design"].options == ("scale_se",)
        spec = make_spec(panel_csv, figures=[])
        spec["designs"] = [{"name": "c", "design": "my_design", "outcome": "lemp", "options": {"scale_se": 2.0}}]
        rep = build_report(spec, tmp_path / "out")
        assert rep.results["designs"][0]["design"] == "my_design"
    finally:
        DESIGNS.pop("my_design")


def test_builtin_dataset_with_truth(tmp_path):
    spec = demo_spec(n_members=600, seed=3)
    spec["designs"] = [d for d in spec["designs"] if d["name"] in ("spending", "hba1c_test")]
    spec["designs"][0].pop("also_vcov")
    spec["figures"] = [spec["figures"][0]]
    rep = build_report(spec, tmp_path / "out")
    d = rep.results["designs"][0]
    _, truth = ek.datasets.simulate_aqc(seed=3, n_members=600)
    assert d["truth"]["terms"]["aqc"] == pytest.approx(truth.att("spending"), rel=1e-9)
    assert rep.results["designs"][1]["truth"]["terms"]["aqc"] == pytest.approx(100 * truth.att("hba1c_test"), rel=1e-9)
    assert rep.manifest["input"]["kind"] == "dataset" and rep.manifest["seeds"]["data"] == 3


def test_demo_spec_is_valid():
    s = normalize_spec(demo_spec())
    names = [d["name"] for d in s["designs"]]
    assert names[0] == "spending" and {"hba1c_test", "ldl_screen", "crc_screen", "bp_control"} <= set(names)
    assert s["data"]["params"] == {"seed": 20240101, "n_members": 20000}


@pytest.mark.filterwarnings("ignore::evalkit.errors.SingletonWarning")
def test_csv_period_strings_parsed_with_data_periods(tmp_path):
    df, _ = ek.datasets.simulate_aqc(seed=2, n_members=300)
    path = tmp_path / "claims.csv"
    df[["member_id", "org_id", "quarter", "aqc", "spending", "contract"]].to_csv(path, index=False)
    assert pd.read_csv(path)["quarter"].iloc[0] == "2006Q1"  # CSV has no Period type
    spec = {"data": {"path": str(path), "periods": {"quarter": "Q"}},
            "columns": {"unit": "member_id", "time": "quarter", "treatment": "aqc", "cluster": "org_id", "group": "contract"},
            "designs": [{"name": "s", "design": "twfe", "outcome": "spending"}],
            "figures": [{"type": "group_means", "outcome": "spending", "entry": "2009Q1"}]}
    rep = build_report(spec, tmp_path / "out")
    direct = ek.did.twfe(df, outcome="spending", unit="member_id", time="quarter", treatment="aqc", cluster="org_id")
    assert rep.results["designs"][0]["estimates"][0]["estimate"] == pytest.approx(direct.estimate, rel=1e-9)
    bad = dict(spec, data={"path": str(path), "periods": {"quarter": "Q", "nope": "Q"}})
    with pytest.raises(DataError, match="data.periods: column 'nope'"):
        build_report(bad, tmp_path / "out2")


def test_parquet_source(panel_csv, tmp_path):
    """Parquet is read with pandas (pyarrow); without pyarrow the error says how to fix it."""
    path = tmp_path / "panel.parquet"
    spec = make_spec(path, figures=[])
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        path.write_bytes(b"PAR1 not really parquet")
        with pytest.raises(DataError, match="pip install pyarrow"):
            build_report(spec, tmp_path / "out")
        return
    pd.read_csv(panel_csv).to_parquet(path)
    rep = build_report(spec, tmp_path / "out")
    assert rep.manifest["input"]["format"] == "parquet"
