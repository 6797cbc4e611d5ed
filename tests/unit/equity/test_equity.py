"""Unit tests of evalkit.equity: detectability, select_measures, stratified_gaps, example, plots."""
import numpy as np
import pandas as pd
import pytest

import evalkit as ek
from evalkit.errors import DataError


@pytest.fixture
def base():
    return ek.equity.example_baseline()


def test_example_baseline_shape_and_rates(base):
    assert base.shape == (36, 9)
    crc = base[(base.measure == "colorectal_cancer_screening") & (base.group == "Black")]
    assert (crc.rate == 0.638).all()
    assert not base[base.measure == "hba1c_poor_control"].higher_is_better.any()


def test_detectability_matches_mde_disparity(base):
    det = ek.equity.detectability(base, reduction=0.5)
    row = det[(det.system.str.startswith("System A")) & (det.measure == "controlling_blood_pressure") & (det.group == "Black")].iloc[0]
    b = base[(base.system == row.system) & (base.measure == row.measure)].set_index("group")
    r = ek.power.mde_disparity(b.loc["White", "denominator"], b.loc["Black", "denominator"], 0.747, 0.661, rho=0.5, icc=0.02,
                               cluster_size=(b.loc["White", "denominator"] / 120, b.loc["Black", "denominator"] / 120))
    assert row.mde_pp == pytest.approx(r.mde_pp)
    assert row.share_of_gap == pytest.approx(r.share_of_gap)
    assert row.baseline_gap_pp == pytest.approx(8.6)
    assert row.candidate and "power" in row.reason


def test_orientation_and_nan_share(base):
    det = ek.equity.detectability(base)
    asian_a1c = det[(det.measure == "hba1c_poor_control") & (det.group == "Asian")]
    assert (asian_a1c.baseline_gap_pp < 0).all()
    assert asian_a1c.share_of_gap.isna().all() and (~asian_a1c.candidate).all()
    assert asian_a1c.reason.str.contains("not disadvantaged").all()
    hisp = det[(det.measure == "hba1c_poor_control") & (det.group == "Hispanic")]
    assert np.allclose(hisp.baseline_gap_pp, 8.0)


def test_bigger_systems_detect_more(base):
    sel = ek.equity.select_measures(base, reduction=0.5)
    n_rec = sel.groupby("system")["recommended"].sum()
    assert n_rec.iloc[0] >= n_rec.iloc[1] >= n_rec.iloc[2]
    assert sel.groupby("system")["rank"].apply(lambda r: list(r) == list(range(1, len(r) + 1))).all()
    capped = ek.equity.select_measures(base, reduction=0.5, max_measures=1)
    assert capped.groupby("system")["recommended"].sum().max() <= 1


def test_suppression_and_reliability():
    b = pd.DataFrame(dict(system=["s1"] * 2 + ["s2"] * 2 + ["s3"] * 2, measure="m", group=["White", "Black"] * 3,
                          denominator=[5000, 8, 4000, 900, 3000, 700], rate=[0.7, 0.5, 0.72, 0.6, 0.68, 0.66],
                          higher_is_better=True))
    det = ek.equity.detectability(b, min_denominator=11)
    assert det.loc[0, "reason"].startswith("suppressed") and not det.loc[0, "candidate"]
    assert det.loc[1:, "reliability"].between(0, 1).all()
    det2 = ek.equity.detectability(b, between_system_variance=0.0004)
    se = det2.loc[1, "gap_se_pp"] / 100
    assert det2.loc[1, "reliability"] == pytest.approx(0.0004 / (0.0004 + se**2))


@pytest.mark.parametrize("mutate, match", [
    (lambda b: b.drop(columns="rate"), r"Column\(s\) \['rate'\] not found"),
    (lambda b: b.assign(rate=b.rate * 100), r"Column 'rate': \d+ value\(s\) outside \[0, 1\]"),
    (lambda b: pd.concat([b, b.head(1)]), r"1 duplicate \(system, measure, group\) rows"),
])
def test_detectability_errors(base, mutate, match):
    with pytest.raises(DataError, match=match):
        ek.equity.detectability(mutate(base))
    with pytest.raises(DataError, match=r"reference_group='Whites' is not in column 'group'"):
        ek.equity.detectability(base, reference_group="Whites")


def test_stratified_gaps_by_hand():
    rng = np.random.default_rng(3)
    n = {"White": 400, "Black": 150, "Asian": 6}
    df = pd.concat([pd.DataFrame(dict(sys="A", race=g, y=(rng.random(k) < p).astype(int)))
                    for (g, k), p in zip(n.items(), (0.7, 0.6, 0.5))], ignore_index=True)
    out = ek.equity.stratified_gaps(df, "y", "race", system="sys").set_index("race")
    pw, pb = df[df.race == "White"].y.mean(), df[df.race == "Black"].y.mean()
    assert out.loc["Black", "gap"] == pytest.approx(pw - pb)
    assert out.loc["Black", "gap_se"] == pytest.approx(np.sqrt(pw * (1 - pw) / 400 + pb * (1 - pb) / 150))
    assert out.loc["Asian", "suppressed"] and np.isnan(out.loc["Asian", "rate"])
    assert out.loc["White", "conf_low"] < pw < out.loc["White", "conf_high"]
    lo = ek.equity.stratified_gaps(df, "y", "race", higher_is_better=False).set_index("race")
    assert lo.loc["Black", "gap"] == pytest.approx(pb - pw)
    with pytest.raises(DataError, match="Column 'z' not found"):
        ek.equity.stratified_gaps(df, "z", "race")


def test_plots_return_axes(base):
    import matplotlib.axes

    ax = ek.equity.plot_power_curves(base, "System A (large, diverse urban)", group="Black", reductions=[0.25, 0.5, 0.75])
    assert isinstance(ax, matplotlib.axes.Axes) and len(ax.lines) >= 3
    ax2 = ek.equity.plot_mde(ek.equity.detectability(base), system="System B (mid-size suburban)")
    assert isinstance(ax2, matplotlib.axes.Axes)


def test_rate_error_prints_plain_float(base):
    with pytest.raises(DataError, match=r"\(e\.g\. 70\.8\); rates are proportions") as exc:
        ek.equity.detectability(base.assign(rate=base.rate * 100))
    assert "np.float64" not in str(exc.value)
