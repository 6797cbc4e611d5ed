"""Unit tests of evalkit.equity.payout_risk (analytic payout distribution, simulation cross-check, errors, plot)."""
import math

import numpy as np
import pytest
from scipy import integrate, stats

import evalkit as ek
from evalkit.errors import SpecificationError

ARGS = (4000, 1000, 0.708, 0.638)
GAP = 0.07


def _se(**kw):
    return math.sqrt(ek.power.disparity_variance(*ARGS, **kw))


def test_step_schedule_probabilities_closed_form():
    # pays 1 when the measured reduction >= 25% of the gap: P = 1 - Phi((0.25 G - change)/SE)
    r = ek.equity.payout_risk(*ARGS, rho=0.5, schedule=lambda x: (x >= 0.25).astype(float), reduction=0.5,
                              variance="null")
    se0 = _se(rho=0.5)
    t = r.table.set_index("scenario")
    assert r.false_payout_probability == pytest.approx(stats.norm.sf(0.25 * GAP / se0), abs=2e-5)
    assert t.loc["reduction 0.5", "p_payout_positive"] == pytest.approx(stats.norm.sf((0.25 - 0.5) * GAP / se0), abs=2e-5)
    assert t.loc["reduction 0.5", "expected_payout"] == pytest.approx(t.loc["reduction 0.5", "p_payout_positive"])
    assert t.loc["no change", "sd_measured"] == pytest.approx(se0 / GAP, rel=1e-12)


def test_linear_capped_mean_matches_quadrature_and_alternative_variance():
    sched = ek.equity.linear_schedule(0.1, 0.5, max_payout=2.0)
    r = ek.equity.payout_risk(*ARGS, rho=0.5, icc=0.02, cluster_size=25, schedule=sched, reduction=0.4, amount=3.0)
    row = r.table.set_index("scenario").loc["reduction 0.4"]
    se1 = math.sqrt(ek.power.disparity_variance(*ARGS, p_minority_post=0.638 + 0.4 * GAP, rho=0.5, icc=0.02, cluster_size=25))
    assert row.sd_measured == pytest.approx(se1 / GAP, rel=1e-12)
    f = lambda x: 3.0 * np.interp(x, [0.1, 0.5], [0.0, 2.0]) * stats.norm.pdf(x, 0.4, se1 / GAP)  # noqa: E731
    exact = integrate.quad(f, 0.4 - 12 * se1 / GAP, 0.4 + 12 * se1 / GAP, points=[0.1, 0.5], limit=200)[0]
    assert row.expected_payout == pytest.approx(exact, abs=1e-5)
    assert row.p_max_payout == pytest.approx(stats.norm.sf((0.5 - 0.4) * GAP / se1), abs=2e-5)
    assert row.q50 == pytest.approx(3.0 * 2.0 * (0.4 - 0.1) / 0.4, abs=1e-4)  # monotone: median payout = f(median)
    assert row.q95 == pytest.approx(6.0)


def test_pp_scale_dict_table_and_unvectorised_callable_agree():
    a = ek.equity.payout_risk(*ARGS, schedule={1.0: 0.0, 3.0: 1.0}, scale="pp", reduction=0.5)
    b = ek.equity.payout_risk(*ARGS, schedule=lambda x: min(max((x - 1.0) / 2.0, 0.0), 1.0), scale="pp", reduction=0.5)
    cols = ["expected_payout", "p_payout_positive", "q25", "q50", "q75"]
    np.testing.assert_allclose(a.table[cols].to_numpy(), b.table[cols].to_numpy(), atol=1e-12)
    assert a.table["mean_measured"].iloc[1] == pytest.approx(3.5)
    assert np.isnan(b.table["p_max_payout"]).all() and a.table["p_max_payout"].notna().all()


def test_imputed_race_corrected_and_uncorrected():
    kw = dict(rho=0.5, race_accuracy=0.8, schedule=ek.equity.linear_schedule(0.1, 0.5), reduction=0.5)
    c = ek.equity.payout_risk(*ARGS, **kw)
    u = ek.equity.payout_risk(*ARGS, corrected=False, **kw)
    lam = c.attenuation
    assert lam == pytest.approx((1 - 1000 * 0.2 / 4000) + 0.8 - 1)
    rc, ru = c.table.iloc[1], u.table.iloc[1]
    assert rc.mean_measured == pytest.approx(0.5) and ru.mean_measured == pytest.approx(0.5 * lam)
    assert ru.sd_measured == pytest.approx(lam * rc.sd_measured)
    # corrected SE carries the 1/lambda variance inflation of evalkit.power
    known = ek.equity.payout_risk(*ARGS, rho=0.5, schedule=kw["schedule"], reduction=0.5, variance="null")
    c0 = ek.equity.payout_risk(*ARGS, variance="null", **kw)
    assert c0.table.sd_measured.iloc[0] ** 2 == pytest.approx(known.table.sd_measured.iloc[0] ** 2 / lam)


def test_simulation_cross_check_small():
    r = ek.equity.payout_risk(2000, 600, 0.70, 0.60, rho=0.5, icc=0.05, cluster_size=20,
                              schedule=ek.equity.linear_schedule(0.1, 0.5), reduction=0.5, n_sims=400, seed=11)
    t = r.table.set_index(["scenario", "method"])
    for sc in ("no change", "reduction 0.5"):
        a, s = t.loc[(sc, "analytic")], t.loc[(sc, "simulation")]
        p = a.p_payout_positive
        assert abs(s.p_payout_positive - p) < 4 * math.sqrt(p * (1 - p) / 400)
        assert abs(s.mean_measured - a.mean_measured) < 4 * a.sd_measured / math.sqrt(400)
    assert len(r.draws) == 800 and set(r.draws.columns) == {"scenario", "measured", "payout"}
    r2 = ek.equity.payout_risk(2000, 600, 0.70, 0.60, rho=0.5, icc=0.05, cluster_size=20,
                               schedule=ek.equity.linear_schedule(0.1, 0.5), reduction=0.5, n_sims=400, seed=11)
    assert r2.table.equals(r.table)


def test_plot_and_summary():
    import matplotlib.axes

    r = ek.equity.payout_risk(*ARGS, schedule=ek.equity.linear_schedule(0.1, 0.5), reduction=(0.25, 0.5), n_sims=50, seed=1)
    ax = r.plot()
    assert isinstance(ax, matplotlib.axes.Axes) and len(ax.lines) == 6
    assert "false payout" in repr(r) and "Payout risk" in str(r.summary())


@pytest.mark.parametrize("kwargs, match", [
    (dict(schedule="linear"), r"'schedule' must be a callable .* or a table"),
    (dict(schedule=((0.1, 0.0), (0.1, 1.0))), r"'schedule' table repeats a reduction \(0.1\)"),
    (dict(schedule=lambda x: np.full_like(x, np.nan)), r"returned a non-finite payout"),
    (dict(schedule=((0.1, 0.0), (0.5, 1.0)), scale="share"), r"The 'scale' parameter must be one of"),
    (dict(schedule=((0.1, 0.0), (0.5, 1.0)), reduction=20.0), r"Impossible scenario: reduction=20 .* outside \[0, 1\]"),
    (dict(schedule=((0.1, 0.0), (0.5, 1.0)), cluster_size=(10, 10), icc=0.01, n_sims=10),
     r"simulation cross-check covers separate practices of one common size"),
])
def test_payout_errors(kwargs, match):
    with pytest.raises(SpecificationError, match=match):
        ek.equity.payout_risk(*ARGS, **kwargs)


def test_no_gap_error():
    with pytest.raises(SpecificationError, match=r"oriented baseline gap is -2 pp .* not disadvantaged"):
        ek.equity.payout_risk(1000, 500, 0.70, 0.72, schedule=((0.1, 0.0), (0.5, 1.0)))
    with pytest.raises(SpecificationError, match=r"linear_schedule needs full > start"):
        ek.equity.linear_schedule(0.5, 0.1)
