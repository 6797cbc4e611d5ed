"""Reference test: HonestDiD's relative-magnitudes (Delta^RM) intervals of the Medicaid-expansion example,
by the ARP conditional-least-favourable hybrid (evalkit's default ``rm_method="hybrid"``).

Data and event study as in ``test_reference_staggered_extra.py`` (ehec_data, years <= 2015, 2015
cohort dropped, reference 2013; 5 pre- and 2 post-period coefficients, theta = effect in 2014).
Published output:

* Stata (honestdid 0.4.5, README): ``honestdid, pre(1/5) post(7/8) mvec(0.5(0.5)2)`` (C-LF, DeltaRM)
  .5 [0.024, 0.067]; 1 [0.017, 0.072]; 1.5 [0.008, 0.080]; 2 [-0.001, 0.088]
* R (HonestDiD README): ``createSensitivityResults_relativeMagnitudes(betahat, sigma, 5, 2,
  Mbarvec = seq(0.5, 2, by = 0.5))`` prints .5 [0.0240, 0.0672]; 1 [0.0170, 0.0720];
  1.5 [0.00824, 0.0797]; 2 [-0.000916, 0.0881].

HonestDiD reports the smallest / largest accepted point of the grid ``seq(-20 sd, 20 sd, length.out =
1000)`` (sd = SE of theta; step 3.7e-4 here); evalkit refines the endpoints. Tolerances: Stata's 3
decimals 5.5e-4; evalkit's endpoints snapped onto HonestDiD's grid (first grid point inside the
interval) print R's digits; raw endpoints within one grid step (+ rounding) of R's. HonestDiD's
least-favourable critical value uses 1,000 draws (R's RNG, seed 0), evalkit's 10,000 seeded draws.
"""
from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

import evalkit as ek

pytestmark = pytest.mark.reference

_spec = importlib.util.spec_from_file_location(
    "_evalkit_ref_ehec", pathlib.Path(__file__).with_name("test_reference_staggered_extra.py"))
_ehec_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ehec_mod)

MBAR = [0.5, 1, 1.5, 2]
STATA = np.array([[0.024, 0.067], [0.017, 0.072], [0.008, 0.080], [-0.001, 0.088]])
R_PUB = np.array([[0.0240, 0.0672], [0.0170, 0.0720], [0.00824, 0.0797], [-0.000916, 0.0881]])


@pytest.fixture(scope="module")
def es():
    return _ehec_mod._event_study()


def test_clf_hybrid_matches_honestdid_medicaid(es):
    res = ek.staggered.honest_sensitivity(es, method="relative_magnitude", M=MBAR)
    fr = res.to_frame()
    assert (fr["method"] == "C-LF").all() and (fr["delta"] == "DeltaRM").all()
    ours = fr[["conf_low", "conf_high"]].to_numpy()
    np.testing.assert_allclose(ours, STATA, atol=5.5e-4)
    sd = (res.original[1] - res.original[0]) / (2 * 1.959963984540054)
    grid = np.linspace(-20 * sd, 20 * sd, 1000)
    step = grid[1] - grid[0]
    snapped = np.array([[grid[grid >= lo].min(), grid[grid <= hi].max()] for lo, hi in ours])
    for (lo, hi), (plo, phi) in zip(snapped, R_PUB):
        assert float(f"{lo:.3g}") == pytest.approx(plo, abs=1e-12)
        assert float(f"{hi:.3g}") == pytest.approx(phi, abs=1e-12)
    assert (np.abs(ours - R_PUB) <= step + 5e-5).all()
    assert res.breakdown() == 2.0  # README: breakdown Mbar = 2


def test_conditional_close_and_projection_contains(es):
    hyb = ek.staggered.honest_sensitivity(es, M=MBAR).to_frame()[["conf_low", "conf_high"]].to_numpy()
    cond = ek.staggered.honest_sensitivity(es, M=MBAR, rm_method="conditional").to_frame()
    assert (cond["method"] == "Conditional").all()
    assert np.abs(cond[["conf_low", "conf_high"]].to_numpy() - hyb).max() < 1e-3
    proj = ek.staggered.honest_sensitivity(es, M=MBAR, rm_method="projection").to_frame()
    assert (proj["conf_low"].to_numpy() <= STATA[:, 0] + 5e-4).all()
    assert (proj["conf_high"].to_numpy() >= STATA[:, 1] - 5e-4).all()
    assert ((proj["conf_high"] - proj["conf_low"]).to_numpy() > (hyb[:, 1] - hyb[:, 0])).all()
