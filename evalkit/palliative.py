r"""Home palliative care evaluation: decedent cohorts, index dates, matched PMPM savings, ACO net benefit.

The case study follows the MGH home-based palliative care pilot presented with the Alternative
Quality Contract results: enrolled high-need ACO patients compared with matched controls, reporting
$1,351 per member per month (PMPM) savings in the last 6 months of life and a $2,696 net benefit per
patient to the ACO after program cost (about half covered by clinicians' fee-for-service billing)
and shared savings with the payer.

Four steps, each a function:

1. :func:`simulate_palliative` -- decedents with monthly spending (inpatient / hospice / other) in
   the last months of life, a home program enrolling high-need patients, confounding by illness
   severity and by the timing of enrollment relative to death, and a planted PMPM effect with the
   truth returned (``df, truth = simulate_palliative(seed=1)``).
2. :func:`assign_index_dates` and :func:`analysis_frame` -- the index-date design: controls get
   pseudo-enrollment dates drawn from the treated distribution of months before death; everything
   used for matching is measured *before* the (pseudo-)index; outcomes are measured *after* it,
   within the last ``window`` months of life.
3. :func:`palliative_evaluation` -- nearest-neighbour matching on the propensity score, exactly on
   the index month, with :mod:`evalkit.matching`; ATT on post-index PMPM with pair-clustered SEs and a
   matched difference-in-differences on pre/post PMPM.
4. :func:`net_benefit` (+ :func:`solve_net_benefit`, :func:`net_benefit_sensitivity`,
   :func:`plot_net_benefit_sensitivity`) -- the ACO's accounting identity with uncertainty.

>>> import evalkit as ek
>>> df, truth = ek.palliative.simulate_palliative(n_decedents=2_000, seed=1)
>>> ev = ek.palliative.palliative_evaluation(df, seed=1)                  # doctest: +SKIP
>>> ek.palliative.net_benefit(1351, months_enrolled=6, program_cost=2714, payer_share=0.5).estimate
2696.0
"""
from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ._validation import as_generator, check_columns_arg, check_option, check_scalar
from .errors import DataError, EvalkitWarning, SpecificationError
from .results import EffectResult, Summary, tidy_table

__all__ = [
    "PalliativeTruth",
    "SimulatedPalliative",
    "simulate_palliative",
    "assign_index_dates",
    "analysis_frame",
    "PalliativeEvaluation",
    "palliative_evaluation",
    "NetBenefitResult",
    "net_benefit",
    "solve_net_benefit",
    "net_benefit_sensitivity",
    "plot_net_benefit_sensitivity",
    "index_propensity",
    "PILOT",
    "DEFAULT_COVARIATES",
    "DEFAULT_PRE_COVARIATES",
]

logger = logging.getLogger(__name__)

#: The pilot's published figures and one set of contract terms that reproduces its net benefit
#: exactly: 0.5 x 1,351 x 6 - (1 - 0.5) x 2,714 = 4,053 - 1,357 = 2,696 (see :func:`net_benefit`).
PILOT: dict[str, float] = {
    "savings_pmpm": 1351.0,
    "net_benefit": 2696.0,
    "months_enrolled": 6.0,
    "payer_share": 0.5,
    "ffs_share": 0.5,
    "program_cost": 2714.0,
}

DIAGNOSES: tuple[str, ...] = ("cancer", "heart_failure", "copd", "dementia")
_DX_SHARES = np.array([0.40, 0.25, 0.15, 0.20])
_DX_LEVEL = np.array([0.15, 0.10, 0.0, -0.30])  # log spending level
_DX_ENROLL = np.array([0.8, 0.3, 0.0, -0.5])  # enrollment logit
_DX_TIMING = np.array([0.25, 0.05, 0.0, -0.10])  # per month of earlier enrollment
_DX_HOSPICE = np.array([0.8, 0.0, -0.2, 0.4])
COMPONENTS: tuple[str, ...] = ("spend_inpatient", "spend_hospice", "spend_other")

#: Static (baseline) covariates and pre-index covariates built by :func:`analysis_frame`.
DEFAULT_COVARIATES: tuple[str, ...] = ("age", "female", "diagnosis", "comorbidities", "frailty")
DEFAULT_PRE_COVARIATES: tuple[str, ...] = ("pre_pmpm", "pre_spend_inpatient_pmpm", "pre_spend_hospice_pmpm")


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


# ----------------------------------------------------------------------------------------------
# truth and simulation


@dataclass(frozen=True)
class PalliativeTruth:
    """Planted effects of a :func:`simulate_palliative` cohort, per enrolled patient.

    Attributes
    ----------
    per_patient : DataFrame
        One row per enrolled patient: ``patient_id``, ``enroll_month`` (months before death at
        enrollment; 1 = the month of death), ``months_in_program`` (program months within the last
        6 months of life), ``tau_total`` (sum over program months of spending with the program minus
        spending without it; negative = savings), ``tau_pmpm = tau_total / months_in_program``,
        ``tau_<component>`` totals (they sum to ``tau_total``) and ``counterfactual_total``.
    effect_pmpm : float
        The planted member-month PMPM effect; equals :meth:`pmpm` on all enrolled patients exactly.
    params : dict
        The arguments and calibrated constants (``inpatient_reduction``, ``enrollment_intercept``).
    """

    per_patient: pd.DataFrame = field(repr=False)
    effect_pmpm: float = 0.0
    params: dict = field(default_factory=dict)

    def _rows(self, patients) -> pd.DataFrame:
        pp = self.per_patient
        if patients is None:
            return pp
        ids = pd.Index(pd.unique(np.asarray(list(patients), dtype=object)))
        out = pp.loc[pp["patient_id"].isin(ids)]
        if len(out) != len(ids):
            raise DataError(f"{len(ids) - len(out)} of the patient ids given are not enrolled patients of this simulation.")
        return out

    def pmpm(self, patients=None) -> float:
        """Member-month PMPM effect: total effect over program months / program months (enrolled
        ``patients`` only, default all). This is the PMPM that times months gives gross savings."""
        r = self._rows(patients)
        return float(r["tau_total"].sum() / r["months_in_program"].sum())

    def pmpm_patient(self, patients=None) -> float:
        """Patient-average PMPM effect: mean over patients of ``tau_pmpm``."""
        return float(self._rows(patients)["tau_pmpm"].mean())

    def total_per_patient(self, patients=None) -> float:
        """Mean effect on spending per enrolled patient over the program months (gross savings, negated)."""
        return float(self._rows(patients)["tau_total"].mean())


@dataclass(frozen=True)
class SimulatedPalliative:
    """Result of :func:`simulate_palliative`; unpacks as ``df, truth``."""

    data: pd.DataFrame = field(repr=False)
    truth: PalliativeTruth = field(repr=False)

    def __iter__(self) -> Iterator[Any]:
        yield self.data
        yield self.truth

    def __repr__(self) -> str:
        d = self.data
        n = d["patient_id"].nunique()
        k = int(d.groupby("patient_id", sort=False)["enrolled"].first().sum())
        return f"SimulatedPalliative(decedents={n}, enrolled={k}, months={d['months_before_death'].max()}, effect_pmpm={self.truth.effect_pmpm!r})"


def simulate_palliative(
    *,
    n_decedents: int = 4000,
    enrollment_share: float = 0.15,
    seed: int | np.random.Generator | None = None,
    effect_pmpm: float = -1351.0,
    hospice_increase_pmpm: float = 250.0,
    lookback_months: int = 6,
    window: int = 6,
    unobserved_confounding: float = 0.0,
) -> SimulatedPalliative:
    r"""Simulate decedents' monthly spending at the end of life and a home palliative care program.

    Parameters
    ----------
    n_decedents : int, default=4000
        Patients who died (all observed to death: a decedent cohort).
    enrollment_share : float, default=0.15
        Target share enrolled in the program (the enrollment intercept is solved so the expected
        share equals it; the realised share varies by sampling).
    seed : int or Generator, default=None
    effect_pmpm : float, default=-1351.0
        Planted change in total monthly spending per month in the program (negative = savings).
        Exact in the realised sample as a member-month average over enrolled patients' program
        months (``truth.pmpm() == effect_pmpm``).
    hospice_increase_pmpm : float, default=250.0
        Hospice spending added per program month (the program moves care to hospice); inpatient and
        other spending fall by more, so the total changes by ``effect_pmpm``.
    lookback_months : int, default=6
        Months observed before the last ``window`` months (the look-back for pre-index covariates).
    window : int, default=6
        Outcome window: the last ``window`` months of life. Enrollment happens within it.
    unobserved_confounding : float, default=0.0
        Log-odds of enrollment per SD of an unobserved severity component that also raises spending.
        0 makes selection ignorable given the observed covariates (the matched ATT is then
        unbiased); positive values bias it (a sensitivity knob).

    Returns
    -------
    SimulatedPalliative
        ``data``: one row per patient-month, sorted by ``patient_id`` and calendar order
        (``months_before_death`` from ``lookback_months + window`` down to 1, the month of death):
        ``patient_id``, ``months_before_death``, ``in_window`` (within the last ``window`` months),
        ``age``, ``female``, ``diagnosis`` (categorical: cancer, heart_failure, copd, dementia),
        ``comorbidities``, ``frailty`` (a standardised frailty index), ``enrolled`` (0/1),
        ``enroll_month`` (months before death at enrollment, 1..window; NaN if never enrolled),
        ``in_program`` (0/1 row), ``spend_inpatient``, ``spend_hospice``, ``spend_other`` and
        ``spending`` (their sum, dollars per month). ``truth``: :class:`PalliativeTruth`.

    Notes
    -----
    Illness severity :math:`s_i = 0.8 f_i + 0.6 u_i` combines the observed frailty index
    :math:`f_i` and an unobserved part :math:`u_i`. Every patient has a potential enrollment month
    :math:`E_i \in \{1..window\}` (Gumbel-max over scores favouring earlier enrollment for cancer
    and later for frail patients), and enrolls with probability
    :math:`\mathrm{logit}^{-1}(\alpha + 0.7 f + 0.25 (c - 2) + \delta_{dx} - 0.02 (age - 77)
    + 0.15 (E - 3.5) + \gamma u)`; only the enrolled patients' :math:`E_i` is observed.
    Untreated spending in month :math:`m` before death rises steeply toward death
    (profile :math:`\exp(1.6 e^{-(m-1)/2.5})` for other spending; admission and hospice
    probabilities rise too) and with severity, so (i) high-need patients enroll and spend more
    (confounding by severity) and (ii) a post-enrollment window of :math:`E` months has higher PMPM
    the later the enrollment (confounding by timing): controls must be compared over the same
    months before death. In program months, inpatient spending falls by a proportion :math:`a`,
    other spending by :math:`0.3a`, hospice rises by ``hospice_increase_pmpm``; :math:`a` is
    solved on the realised sample so the member-month effect is exactly ``effect_pmpm``
    (heterogeneous per patient: larger savings for high spenders). Potential outcomes share their
    random draws, so the truth per patient is exact. Vectorised; deterministic given ``seed``.

    Examples
    --------
    >>> df, truth = simulate_palliative(n_decedents=500, seed=3)
    >>> round(truth.pmpm(), 6)
    -1351.0
    """
    check_scalar(n_decedents, "n_decedents", Integral, min_val=20)
    check_scalar(enrollment_share, "enrollment_share", Real, min_val=0, max_val=0.9, include_min=False)
    check_scalar(effect_pmpm, "effect_pmpm", Real)
    check_scalar(hospice_increase_pmpm, "hospice_increase_pmpm", Real, min_val=0)
    check_scalar(lookback_months, "lookback_months", Integral, min_val=1, max_val=36)
    check_scalar(window, "window", Integral, min_val=1, max_val=24)
    check_scalar(unobserved_confounding, "unobserved_confounding", Real)
    seed_stored = seed if not isinstance(seed, np.random.Generator) else "Generator"
    rng = as_generator(seed)
    n, M = int(n_decedents), int(lookback_months + window)

    # -- patients -------------------------------------------------------------------------------
    age = np.clip(np.round(rng.normal(77.0, 9.0, n)), 50, 100)
    female = (rng.random(n) < 0.52).astype(np.int64)
    dx = rng.choice(len(DIAGNOSES), size=n, p=_DX_SHARES)
    comorb = rng.poisson(np.exp(0.7 + 0.15 * (age - 77) / 9), n)
    frailty = rng.normal(0.0, 1.0, n) + 0.25 * (comorb - 2.0) / 1.4
    u = rng.normal(0.0, 1.0, n)
    sev = 0.8 * frailty + 0.6 * u

    # potential enrollment month: Gumbel-max over k = 1..window (months before death)
    k = np.arange(1, window + 1, dtype=float)
    score = k[None, :] * (_DX_TIMING[dx] - 0.10 * frailty)[:, None] + rng.gumbel(size=(n, window))
    E = score.argmax(axis=1) + 1

    lin = 0.7 * frailty + 0.25 * (comorb - 2.0) + _DX_ENROLL[dx] - 0.02 * (age - 77) + 0.15 * (E - 3.5) + unobserved_confounding * u
    alpha = optimize.brentq(lambda a: _expit(a + lin).mean() - enrollment_share, -30, 30, xtol=1e-12)
    D = (rng.random(n) < _expit(alpha + lin)).astype(np.int64)
    if D.sum() < 2 or D.sum() > n - 2:
        raise DataError(f"Only {int(D.sum())} of {n} decedents enrolled; raise n_decedents or enrollment_share.")

    # -- untreated monthly spending (n x M; column j is months_before_death M - j) ----------------
    m = np.arange(M, 0, -1, dtype=float)
    near = np.exp(-(m - 1) / 2.5)[None, :]
    base = np.exp(7.25 + 0.35 * sev + _DX_LEVEL[dx] + 0.05 * (comorb - 2) - 0.006 * (age - 77))[:, None]
    other0 = base * np.exp(1.6 * near) * rng.lognormal(-0.18, 0.6, (n, M))
    p_adm = _expit(-2.6 + 0.5 * sev[:, None] + 1.6 * near)
    inp0 = (rng.random((n, M)) < p_adm) * rng.gamma(3.0, 5500.0, (n, M)) * np.exp(0.15 * sev)[:, None]
    p_hos = _expit(-4.0 + 3.0 * np.exp(-(m - 1) / 2.0)[None, :] + _DX_HOSPICE[dx][:, None] + 0.3 * sev[:, None])
    hos0 = (rng.random((n, M)) < p_hos) * rng.gamma(4.0, 1100.0, (n, M))

    # -- program effect -------------------------------------------------------------------------
    prog = (D[:, None] == 1) & (m[None, :] <= E[:, None])
    n_prog = int(prog.sum())
    denom = float((inp0 + 0.3 * other0)[prog].sum())
    a = (-float(effect_pmpm) + hospice_increase_pmpm) * n_prog / denom
    if not (-3.0 < a < 1.0):
        raise SpecificationError(
            f"effect_pmpm={effect_pmpm} with hospice_increase_pmpm={hospice_increase_pmpm} needs inpatient spending to change by "
            f"{-100 * a:.0f}% in program months, outside what the simulated spending allows; use a smaller effect."
        )
    inp1 = np.where(prog, (1 - a) * inp0, inp0)
    oth1 = np.where(prog, (1 - 0.3 * a) * other0, other0)
    hos1 = np.where(prog, hos0 + hospice_increase_pmpm, hos0)
    tot0 = inp0 + hos0 + other0
    tot1 = inp1 + hos1 + oth1

    # -- long panel -----------------------------------------------------------------------------
    width = max(5, len(str(n)))
    ids = np.array([f"P{i:0{width}d}" for i in range(1, n + 1)], dtype=object)
    rep = lambda x: np.repeat(x, M)  # noqa: E731
    enroll_month = np.where(D == 1, E, np.nan)
    data = pd.DataFrame({
        "patient_id": pd.array(rep(ids), dtype="string"),
        "months_before_death": np.tile(np.arange(M, 0, -1), n).astype(np.int64),
        "in_window": np.tile(np.arange(M, 0, -1) <= window, n),
        "age": rep(age).astype(np.int64),
        "female": rep(female),
        "diagnosis": pd.Categorical.from_codes(rep(dx), categories=list(DIAGNOSES)),
        "comorbidities": rep(comorb).astype(np.int64),
        "frailty": rep(np.round(frailty, 4)),
        "enrolled": rep(D),
        "enroll_month": rep(enroll_month),
        "in_program": prog.ravel().astype(np.int64),
        "spend_inpatient": inp1.ravel(),
        "spend_hospice": hos1.ravel(),
        "spend_other": oth1.ravel(),
    })
    data["spending"] = tot1.ravel()

    t = D == 1
    months = np.minimum(E[t], window)
    pp = pd.DataFrame({
        "patient_id": ids[t].astype(object),
        "enroll_month": E[t].astype(np.int64),
        "months_in_program": months.astype(np.int64),
        "tau_total": np.where(prog, tot1 - tot0, 0.0)[t].sum(axis=1),
        "tau_spend_inpatient": np.where(prog, inp1 - inp0, 0.0)[t].sum(axis=1),
        "tau_spend_hospice": np.where(prog, hos1 - hos0, 0.0)[t].sum(axis=1),
        "tau_spend_other": np.where(prog, oth1 - other0, 0.0)[t].sum(axis=1),
        "counterfactual_total": np.where(prog, tot0, 0.0)[t].sum(axis=1),
    })
    pp["tau_pmpm"] = pp["tau_total"] / pp["months_in_program"]
    params = {
        "n_decedents": n, "enrollment_share": enrollment_share, "seed": seed_stored, "effect_pmpm": float(effect_pmpm),
        "hospice_increase_pmpm": float(hospice_increase_pmpm), "lookback_months": int(lookback_months), "window": int(window),
        "unobserved_confounding": float(unobserved_confounding), "inpatient_reduction": a, "other_reduction": 0.3 * a,
        "enrollment_intercept": alpha, "realised_enrollment_share": float(D.mean()),
    }
    truth = PalliativeTruth(per_patient=pp, effect_pmpm=float(effect_pmpm), params=params)
    return SimulatedPalliative(data=data, truth=truth)


# ----------------------------------------------------------------------------------------------
# index-date design


def _require_columns(data: pd.DataFrame, cols: Mapping[str, str]) -> None:
    if not isinstance(data, pd.DataFrame):
        raise SpecificationError(f"'data' must be a pandas DataFrame. Got {type(data).__name__}.")
    for role, c in cols.items():
        if not isinstance(c, str):
            raise SpecificationError(f"The {role!r} parameter must be a column name (str). Got {c!r}.")
        if c not in data.columns:
            raise DataError(f"Column {c!r} ({role}=) not found in data. Available columns: {list(data.columns)[:20]}.")


def _unit_table(data: pd.DataFrame, unit: str, cols: Sequence[str]) -> pd.DataFrame:
    """One row per unit (first appearance order); checks the columns are constant within units."""
    g = data.groupby(unit, sort=False, observed=True)
    first = g[list(cols)].first()
    nun = g[list(cols)].nunique(dropna=False)
    bad = [c for c in cols if (nun[c] > 1).any()]
    if bad:
        raise DataError(f"Column(s) {bad} vary within {unit!r}; they must be constant per patient (baseline characteristics).")
    return first


def assign_index_dates(
    data: pd.DataFrame,
    *,
    unit: str = "patient_id",
    treatment: str = "enrolled",
    index: str = "enroll_month",
    by: str | Sequence[str] | None = None,
    seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Index dates for every patient: enrollment for the enrolled, a pseudo-enrollment date for controls.

    Controls' pseudo-index months are drawn with replacement from the enrolled patients' index
    months (months before death at enrollment), within the strata ``by`` if given, so the
    distribution of index months is the same in both groups and each control's covariates and
    outcomes can be measured relative to its own index date.

    Parameters
    ----------
    data : DataFrame
        Patient-month panel or one row per patient.
    unit, treatment, index : str
        Patient id, 0/1 enrollment and the index month (months before death at enrollment; may be
        missing for controls, and is ignored for them).
    by : str or list of str, default=None
        Draw within strata of these baseline columns (e.g. ``"diagnosis"``). Every stratum with
        controls needs enrolled patients.
    seed : int or Generator, default=None
        The draws follow sorted patient ids (strata, donor pools and controls), so a seed gives the
        same index months whatever the row order of ``data``.

    Returns
    -------
    DataFrame
        Indexed by ``unit`` (first-appearance order): ``index_month`` (int) and ``pseudo_index``
        (True for controls).
    """
    by_cols = check_columns_arg(by, "by")
    _require_columns(data, {"unit": unit, "treatment": treatment, "index": index, **{f"by[{i}]": c for i, c in enumerate(by_cols)}})
    rng = as_generator(seed)
    pt = _unit_table(data, unit, [treatment, *by_cols])
    idx_first = data.groupby(unit, sort=False, observed=True)[index].first()
    d = pt[treatment]
    if d.isna().any() or not set(pd.unique(d)) <= {0, 1, True, False}:
        raise DataError(f"Column {treatment!r} must be 0/1 for every patient; recode it first.")
    d = d.astype(int).to_numpy()
    ix = pd.to_numeric(idx_first, errors="coerce").to_numpy(dtype=float)
    bad = (d == 1) & ~(np.isfinite(ix) & (ix >= 1) & (ix == np.round(ix)))
    if bad.any():
        raise DataError(f"Column {index!r}: {int(bad.sum())} enrolled patients lack a valid index month (an integer >= 1 months before death).")
    if d.sum() == 0 or d.sum() == len(d):
        raise DataError(f"Column {treatment!r}: {int(d.sum())} enrolled of {len(d)} patients; the design needs enrolled patients and controls.")
    out = np.where(d == 1, ix, np.nan)
    # Draw in sorted patient-id order (strata, pools and controls), so the same seed gives the same
    # pseudo-index months whatever the row order of the panel; ids that cannot be sorted fall back
    # to first-appearance order.
    try:
        perm = np.asarray(pt.index.argsort(kind="stable"))
    except TypeError:
        perm = np.arange(len(d))
    strata = pt[list(by_cols)].astype(object).apply(tuple, axis=1).to_numpy() if by_cols else np.zeros(len(d), dtype=object)
    codes_sorted, uniq = pd.factorize(strata[perm])
    d_sorted, ix_sorted = d[perm], ix[perm]
    for s in range(len(uniq)):
        ctrl = (codes_sorted == s) & (d_sorted == 0)
        if not ctrl.any():
            continue
        pool = ix_sorted[(codes_sorted == s) & (d_sorted == 1)]
        if pool.size == 0:
            raise DataError(f"Stratum {dict(zip(by_cols, uniq[s]))} has {int(ctrl.sum())} controls and no enrolled patients; "
                            f"coarsen or drop by=, or drop those controls.")
        out[perm[ctrl]] = rng.choice(pool, size=int(ctrl.sum()), replace=True)
    return pd.DataFrame({"index_month": out.astype(np.int64), "pseudo_index": d == 0}, index=pt.index)


def analysis_frame(
    data: pd.DataFrame,
    *,
    unit: str = "patient_id",
    time: str = "months_before_death",
    treatment: str = "enrolled",
    index: str = "enroll_month",
    covariates: Sequence[str] | None = DEFAULT_COVARIATES,
    outcome: str = "spending",
    components: Sequence[str] | None = COMPONENTS,
    window: int = 6,
    lookback: int = 6,
    index_dates: pd.DataFrame | None = None,
    by: str | Sequence[str] | None = None,
    seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Per-patient analysis frame of the index-date design.

    Parameters
    ----------
    data : DataFrame
        Patient-month panel: ``time`` counts months before death (1 = the month of death).
    unit, time, treatment, index : str
        Columns: patient id, months before death, 0/1 enrollment, index month (months before death
        at enrollment; ignored for controls).
    covariates : list of str, default=DEFAULT_COVARIATES
        Baseline columns carried over (constant within patient).
    outcome : str, default="spending"
        Monthly spending column.
    components : list of str, default=("spend_inpatient", "spend_hospice", "spend_other")
        Spending components summarised like ``outcome`` (``None`` for none).
    window : int, default=6
        Outcome window: the last ``window`` months of life.
    lookback : int, default=6
        Pre-index look-back months for the pre-index covariates.
    index_dates : DataFrame, default=None
        From :func:`assign_index_dates`; drawn here (with ``by`` and ``seed``) if not given.

    Returns
    -------
    DataFrame
        One row per patient: ``unit``, ``treatment``, the covariates, ``index_month``,
        ``pseudo_index``, ``months_in_program`` (= min(index, window): program months within the
        window, or the control's months after its pseudo-index), pre-index ``pre_pmpm`` and
        ``pre_<component>_pmpm`` (mean monthly spending over months ``index + 1 .. index + lookback``
        before death), post-index ``post_pmpm``, ``post_total`` and ``post_<component>_pmpm`` (the
        months from the index to death within the window), and ``window_pmpm`` (the whole last
        ``window`` months; what a naive, index-free analysis compares).

    Notes
    -----
    Nothing measured on or after the index month enters a ``pre_*`` column, and the outcome window
    starts at the index month for both groups, so neither group's outcome counts time before its
    index (no immortal-time bias) and no covariate looks past the index (no look-back bias).
    """
    check_scalar(window, "window", Integral, min_val=1)
    check_scalar(lookback, "lookback", Integral, min_val=1)
    covs = check_columns_arg(covariates, "covariates")
    comps = check_columns_arg(components, "components")
    _require_columns(data, {"unit": unit, "time": time, "treatment": treatment, "index": index, "outcome": outcome,
                            **{f"covariates[{i}]": c for i, c in enumerate(covs)}, **{f"components[{i}]": c for i, c in enumerate(comps)}})
    if index_dates is None:
        index_dates = assign_index_dates(data, unit=unit, treatment=treatment, index=index, by=by, seed=seed)
    elif not {"index_month", "pseudo_index"} <= set(index_dates.columns):
        raise SpecificationError("index_dates must come from assign_index_dates() (columns 'index_month', 'pseudo_index').")
    base = _unit_table(data, unit, [treatment, *covs])
    missing = base.index.difference(index_dates.index)
    if len(missing):
        raise DataError(f"index_dates lacks {len(missing)} patients of data (e.g. {list(missing[:3])}); rebuild it from the same data.")
    idx = index_dates.loc[base.index, "index_month"].to_numpy(dtype=np.int64)
    tm = pd.to_numeric(data[time], errors="coerce")
    if tm.isna().any() or (tm < 1).any() or (tm != np.round(tm)).any():
        raise DataError(f"Column {time!r} must count whole months before death (1 = month of death) with no missing values.")
    if data.duplicated([unit, time]).any():
        raise DataError(f"Column {time!r}: {int(data.duplicated([unit, time]).sum())} duplicate ({unit}, {time}) rows; aggregate to one row per patient-month.")
    T = int(tm.max())
    need = np.maximum(idx + lookback, window)
    if need.max() > T:
        raise DataError(f"Column {time!r}: the design needs {int(need.max())} months before death (index + lookback) but data have {T}; shorten lookback.")
    ui = pd.Index(base.index).get_indexer(data[unit])
    tj = tm.to_numpy(dtype=np.int64) - 1
    out = base.copy()
    out["index_month"] = idx
    out["pseudo_index"] = index_dates.loc[base.index, "pseudo_index"].to_numpy(dtype=bool)
    months = np.minimum(idx, window)
    out["months_in_program"] = months
    mm = np.arange(1, T + 1)[None, :]
    pre_mask = (mm > idx[:, None]) & (mm <= (idx + lookback)[:, None])
    post_mask = mm <= months[:, None]
    win_mask = mm <= window
    n_units = len(base)
    for col, name in [(outcome, ""), *[(c, c) for c in comps]]:
        y = pd.to_numeric(data[col], errors="coerce").to_numpy(dtype=float)
        W = np.full((n_units, T), np.nan)
        W[ui, tj] = y
        for lab, mask in (("pre", pre_mask), ("post", post_mask), ("window", win_mask)):
            holes = (mask & np.isnan(W)).any(axis=1)
            if holes.any():
                raise DataError(f"Column {col!r}: {int(holes.sum())} patients miss months needed for the {lab}-index window "
                                f"(e.g. {list(base.index[holes][:3])}); every patient needs months 1..index+lookback.")
            s = np.where(mask, W, 0.0).sum(axis=1)
            key = f"{lab}_{name}_pmpm" if name else f"{lab}_pmpm"
            out[key] = s / mask.sum(axis=1)
            if lab == "post" and not name:
                out["post_total"] = s
    return out.reset_index()


# ----------------------------------------------------------------------------------------------
# matched analysis


def _logit_fit(X: np.ndarray, y: np.ndarray, ridge: float = 1e-8, max_iter: int = 50) -> np.ndarray:
    """Logistic regression by Newton-Raphson (a tiny ridge keeps near-separated strata finite);
    returns the fitted probabilities."""
    beta = np.zeros(X.shape[1])
    pen = np.full(X.shape[1], ridge)
    pen[0] = 0.0
    for _ in range(max_iter):
        eta = np.clip(X @ beta, -30, 30)
        mu = _expit(eta)
        W = mu * (1 - mu)
        H = X.T @ (X * W[:, None]) + np.diag(pen * len(y))
        step = np.linalg.solve(H, X.T @ (y - mu) - pen * len(y) * beta)
        beta += step
        if np.max(np.abs(step)) < 1e-9:
            break
    return _expit(np.clip(X @ beta, -30, 30))


def index_propensity(frame: pd.DataFrame, *, treatment: str, covariates: Sequence[str], strata: str = "index_month",
                     min_treated: int | None = None) -> np.ndarray:
    r"""Propensity score fitted separately within each index month (logit, factors as dummies).

    Within an index month the enrollment odds depend on the covariates differently than in other
    months (enrollment timing itself depends on diagnosis and frailty), so one additive logit with
    the index month as a covariate leaves covariates unbalanced *within* index months; matching
    exactly on the index month needs a score that balances within it. Strata with fewer than
    ``min_treated`` treated patients (default: 5 + number of model columns) use a pooled logit with
    index-month dummies and their interactions left out.
    """
    X = pd.get_dummies(frame[list(covariates)], drop_first=True, dtype=float).to_numpy(dtype=float)
    sd = X.std(axis=0)
    keep = sd > 0
    X = (X[:, keep] - X[:, keep].mean(axis=0)) / sd[keep]
    X = np.column_stack([np.ones(len(X)), X])
    y = frame[treatment].to_numpy(dtype=float)
    g = frame[strata].to_numpy()
    dummies = pd.get_dummies(pd.Series(g), drop_first=True, dtype=float).to_numpy()
    ps = _logit_fit(np.column_stack([X, dummies]), y)
    k = X.shape[1] + 5 if min_treated is None else int(min_treated)
    for v in pd.unique(g):
        rows = g == v
        if y[rows].sum() >= k and (1 - y[rows]).sum() >= k:
            ps[rows] = _logit_fit(X[rows], y[rows])
    return ps


@dataclass(frozen=True, repr=False)
class PalliativeEvaluation:
    """Everything :func:`palliative_evaluation` computed.

    Attributes
    ----------
    frame : DataFrame
        The per-patient analysis frame (:func:`analysis_frame`).
    matched : MatchResult
        Nearest-neighbour matching result (``balance()``, ``plot()``, ``matched_data()``).
    pmpm : EffectResult
        Member-month PMPM effect: ATT on post-index total spending divided by the matched treated
        patients' mean program months (its SE scaled the same way). Negative = savings.
    pmpm_patient : EffectResult
        ATT on each patient's post-index PMPM (patients weighted equally).
    did : EffectResult
        Matched DiD: ATT on ``post_pmpm - pre_pmpm``.
    months_enrolled : float
        Mean program months of the matched treated patients.
    net : NetBenefitResult or None
        :func:`net_benefit` of the savings when ``program_cost`` was given.
    """

    frame: pd.DataFrame
    matched: Any
    pmpm: EffectResult
    pmpm_patient: EffectResult
    did: EffectResult
    total: EffectResult
    months_enrolled: float
    net: Any = None

    def to_frame(self) -> pd.DataFrame:
        """The three effect estimates in one tidy table (``analysis`` column first)."""
        rows = []
        for lab, r in (("PMPM (member-month)", self.pmpm), ("PMPM (patient average)", self.pmpm_patient),
                       ("PMPM matched DiD", self.did), ("Total per patient", self.total)):
            t = r.to_frame().iloc[[0]].copy()
            t.insert(0, "analysis", lab)
            rows.append(t)
        return pd.concat(rows, ignore_index=True)

    def summary(self) -> Summary:
        ss = self.matched.sample_sizes()
        header = [("Design", "index-date (pseudo-enrollment months for controls), matched on pre-index covariates"),
                  ("Matched (control / treated)", f"{ss.loc['Matched', 'control']:.0f} / {ss.loc['Matched', 'treated']:.0f}"),
                  ("Mean program months (matched treated)", f"{self.months_enrolled:.4g}"),
                  ("Standard errors", self.pmpm.vcov_type)]
        notes = ["Negative estimates are savings. Member-month PMPM = ATT(post-index total) / mean program months."]
        return Summary("Home palliative care: matched PMPM effects", self.to_frame(), header, notes)

    def __repr__(self) -> str:
        return f"<PalliativeEvaluation: PMPM {self.pmpm.estimate:.6g} (SE {self.pmpm.std_error:.6g}), months {self.months_enrolled:.4g}>"

    def _repr_html_(self) -> str:
        return self.summary().as_html()


def _rescale(res: EffectResult, scale: float, term: str, note: str) -> EffectResult:
    t = res.to_frame()
    tab = tidy_table([term], t["estimate"].to_numpy() * scale, t["std_error"].to_numpy() * abs(scale), res.conventions.df,
                     res.conventions.level)
    conv = dataclasses.replace(res.conventions, estimator=f"{term}: {note}", notes=tuple(res.conventions.notes) + (note,))
    return EffectResult(tab, np.asarray(res.vcov) * scale**2, conv, res.sample, dict(res.extra, scale=scale))


def palliative_evaluation(
    data: pd.DataFrame,
    *,
    unit: str = "patient_id",
    time: str = "months_before_death",
    treatment: str = "enrolled",
    index: str = "enroll_month",
    covariates: Sequence[str] | None = DEFAULT_COVARIATES,
    pre_covariates: Sequence[str] | None = DEFAULT_PRE_COVARIATES,
    outcome: str = "spending",
    components: Sequence[str] | None = COMPONENTS,
    window: int = 6,
    lookback: int = 6,
    by: str | Sequence[str] | None = None,
    caliper: float | None = 0.2,
    ratio: int = 1,
    propensity: str = "by_index",
    level: float = 0.95,
    program_cost: float | None = None,
    net_benefit_kwargs: Mapping[str, Any] | None = None,
    seed: int | np.random.Generator | None = None,
) -> PalliativeEvaluation:
    r"""Index-date matched evaluation of a palliative program's PMPM savings (and, optionally, net benefit).

    Steps: :func:`analysis_frame` (pseudo-index months for controls, pre-index covariates,
    post-index spending), :func:`evalkit.matching.match` (nearest neighbour 1:``ratio`` on a logit
    propensity score of the baseline and pre-index covariates and the index month, ``caliper`` in
    SD of the score, *exactly* on the index month), then :func:`evalkit.matching.estimate_effect`
    (pair-clustered SEs, MatchIt's guidance) on post-index total spending, post-index PMPM and the
    pre/post PMPM change (matched DiD).

    Parameters
    ----------
    data : DataFrame
        Patient-month panel (see :func:`simulate_palliative`).
    covariates, pre_covariates : list of str
        Baseline columns, and pre-index columns of :func:`analysis_frame`, in the propensity model.
    outcome, components : str, list of str
        Monthly spending column and its components (as in :func:`analysis_frame`); the default
        ``pre_covariates`` use the components ``spend_inpatient`` and ``spend_hospice``, so pass
        matching ``pre_covariates`` with other components.
    caliper : float, default=0.2
        In SD of the propensity score (MatchIt); ``None`` for none.
    propensity : {"by_index", "pooled"}, default="by_index"
        ``"by_index"``: a logit fitted within each index month (:func:`index_propensity`), which
        balances the covariates within index months (enrollment timing depends on the covariates);
        ``"pooled"``: MatchIt's single logit with the index month as a covariate (biased here: see
        the Monte Carlo study in ``docs/palliative.md``).
    program_cost : float, default=None
        Program cost per enrolled patient; if given, :func:`net_benefit` is computed from the
        member-month PMPM savings with ``months_enrolled`` = the matched treated mean, plus
        ``net_benefit_kwargs`` (e.g. ``payer_share``, ``ffs_share``, ``seed``).
    seed : int or Generator, default=None
        Draws the controls' pseudo-index months.

    Returns
    -------
    PalliativeEvaluation

    Notes
    -----
    Member-month PMPM :math:`= \widehat{ATT}(\text{post-index total}) / \bar m_T`, with
    :math:`\bar m_T` the matched treated patients' mean program months. Because pairs share the
    index month, this is total savings over total program months, the PMPM whose product with
    months gives gross savings per patient. SE: pair-clustered (CR1, ``sandwich::vcovCL``
    defaults), t(n - 2), the propensity score treated as known (MatchIt).
    """
    from . import matching

    check_option(propensity, "propensity", ("by_index", "pooled"), "palliative_evaluation")
    frame = analysis_frame(data, unit=unit, time=time, treatment=treatment, index=index, covariates=covariates,
                           outcome=outcome, components=components, window=window, lookback=lookback, by=by, seed=seed)
    covs = list(check_columns_arg(covariates, "covariates")) + list(check_columns_arg(pre_covariates, "pre_covariates")) + ["index_month"]
    frame_m = frame.assign(**{treatment: frame[treatment].astype(int)})
    if propensity == "by_index":
        frame_m["pscore"] = index_propensity(frame_m, treatment=treatment, covariates=covs[:-1])
        m = matching.match(frame_m, treatment=treatment, covariates=covs, method="nearest", distance="pscore", m_order="largest",
                           ratio=ratio, caliper=caliper, exact=["index_month"])
    else:
        m = matching.match(frame_m, treatment=treatment, covariates=covs, method="nearest", ratio=ratio, caliper=caliper,
                           exact=["index_month"])
    total = matching.estimate_effect(m, "post_total", level=level)
    per_patient = matching.estimate_effect(m, "post_pmpm", level=level)
    did = matching.estimate_effect(m, "post_pmpm", pre="pre_pmpm", level=level)
    treated = m.matched & (m.treat == 1)
    months = float(frame["months_in_program"].to_numpy()[treated].mean())
    pmpm = _rescale(total, 1.0 / months, "PMPM (member-month)",
                    f"PMPM = ATT on post-index total spending / mean program months of matched treated ({months:.6g}).")
    net = None
    if program_cost is not None:
        kw = dict(net_benefit_kwargs or {})
        net = net_benefit(pmpm, months_enrolled=months, program_cost=program_cost, **kw)
    elif net_benefit_kwargs:
        warnings.warn("net_benefit_kwargs ignored: pass program_cost= to compute the net benefit.", UserWarning, stacklevel=2)
    return PalliativeEvaluation(frame=frame, matched=m, pmpm=pmpm, pmpm_patient=per_patient, did=did, total=total,
                                months_enrolled=months, net=net)


# ----------------------------------------------------------------------------------------------
# ACO financial model


@dataclass(frozen=True, repr=False)
class NetBenefitResult:
    """Net benefit per patient to the ACO, its components and an interval.

    Attributes
    ----------
    estimate : float
        Net benefit per enrolled patient at the point values.
    std_error : float
        Delta-method SE (``method="delta"``) or the SD of the simulation draws.
    conf_low, conf_high : float
        Normal (delta) or percentile (simulation) interval at ``level``.
    components : DataFrame
        ``gross_savings``, ``retained_savings``, ``payer_savings``, ``ffs_revenue``, ``net_program_cost``,
        ``net_benefit`` at the point values.
    params : dict
        Every input, including the contract terms and the SE of the savings.
    draws : ndarray or None
        Simulated net benefits (``method="simulation"``).
    """

    estimate: float
    std_error: float
    conf_low: float
    conf_high: float
    components: pd.DataFrame
    params: dict
    method: str
    level: float
    draws: np.ndarray | None = None
    notes: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"term": ["net_benefit"], "estimate": [self.estimate], "std_error": [self.std_error],
                             "conf_low": [self.conf_low], "conf_high": [self.conf_high]})

    def summary(self) -> Summary:
        p = self.params
        header = [("Savings PMPM", f"{p['savings_pmpm']:.6g} (SE {p['savings_se']:.6g})" if p["savings_se"] else f"{p['savings_pmpm']:.6g}"),
                  ("Months in program", f"{p['months_enrolled']:.6g}"), ("Program cost per patient", f"{p['program_cost']:.6g}"),
                  ("FFS share of cost", f"{p['ffs_share']:.6g}"), ("Payer share of savings", f"{p['payer_share']:.6g}"),
                  ("Minimum savings rate", "none" if p["min_savings_rate"] is None else f"{p['min_savings_rate']:.6g} of {p['benchmark_pmpm']:.6g} PMPM"),
                  ("Interval", f"{self.level:.0%} {self.method}" + (f" ({p['n_draws']} draws, seed {p['seed']})" if self.method == "simulation" else ""))]
        tab = self.components.T.reset_index()
        tab.columns = ["component", "per_patient"]
        tab = pd.concat([tab, pd.DataFrame({"component": ["net_benefit conf_low", "net_benefit conf_high"],
                                            "per_patient": [self.conf_low, self.conf_high]})], ignore_index=True)
        notes = ["gross = savings PMPM x months; retained = (1 - payer share) x gross (0 if the savings rate is below the MSR); "
                 "net program cost = cost x (1 - FFS share); net benefit = retained - net program cost."] + list(self.notes)
        return Summary("ACO net benefit per enrolled patient", tab, header, notes)

    def __repr__(self) -> str:
        return f"<NetBenefitResult: {self.estimate:.6g} per patient ({self.level:.0%} CI {self.conf_low:.6g} to {self.conf_high:.6g}, {self.method})>"

    def _repr_html_(self) -> str:
        return self.summary().as_html()


def _nb_formula(s, m, cost, ffs, payer, msr, bench):
    gross = s * m
    retained = (1.0 - payer) * gross
    if msr is not None:
        retained = np.where(s / bench >= msr, retained, 0.0)
    net_cost = cost * (1.0 - ffs)
    return gross, retained, net_cost, retained - net_cost


def _savings_input(savings_pmpm, savings_se):
    if isinstance(savings_pmpm, EffectResult):
        if savings_se is not None:
            raise SpecificationError("Give savings_se only with a number for savings_pmpm; an EffectResult carries its SE.")
        # an effect on spending: negative = savings
        return -savings_pmpm.estimate, savings_pmpm.std_error, "EffectResult (sign flipped: savings = -effect on spending)"
    if isinstance(savings_se, EffectResult):
        return float(savings_pmpm), savings_se.std_error, "SE from EffectResult"
    check_scalar(savings_pmpm, "savings_pmpm", Real)
    if savings_se is not None:
        check_scalar(savings_se, "savings_se", Real, min_val=0)
    return float(savings_pmpm), (None if savings_se is None else float(savings_se)), "number"


def net_benefit(
    savings_pmpm: float | EffectResult,
    *,
    months_enrolled: float | Sequence[float],
    program_cost: float,
    ffs_share: float = 0.5,
    payer_share: float = 0.5,
    min_savings_rate: float | None = None,
    benchmark_pmpm: float | None = None,
    savings_se: float | EffectResult | None = None,
    program_cost_se: float = 0.0,
    method: str = "auto",
    n_draws: int = 10_000,
    level: float = 0.95,
    seed: int | np.random.Generator | None = None,
) -> NetBenefitResult:
    r"""Net benefit per enrolled patient to an ACO from a palliative program's PMPM savings.

    Parameters
    ----------
    savings_pmpm : float or EffectResult
        Savings per member per month (positive = savings), or the estimated *effect on spending*
        (an :class:`~evalkit.results.EffectResult`, negative = savings; its SE is used).
    months_enrolled : float or array-like
        Months in the program within the last 6 months of life, per patient; an array is averaged
        (and resampled in the simulation).
    program_cost : float
        Program cost per enrolled patient (over the program months).
    ffs_share : float, default=0.5
        Share of the program cost recovered by the program clinicians' fee-for-service billing
        (about half in the MGH pilot).
    payer_share : float, default=0.5
        Share of gross savings kept by the payer under the shared-savings contract.
    min_savings_rate : float, default=None
        Minimum savings rate: no shared savings unless ``savings_pmpm / benchmark_pmpm`` reaches it
        (then first-dollar sharing). Needs ``benchmark_pmpm`` (counterfactual spending PMPM).
    savings_se : float or EffectResult, default=None
        SE of ``savings_pmpm`` when it is a number.
    program_cost_se : float, default=0.0
        Uncertainty in the cost per patient (independent of the savings).
    method : {"auto", "delta", "simulation"}, default="auto"
        ``"delta"``: normal interval with the delta-method SE (exact: the identity is linear in
        the savings and cost). ``"simulation"``: seeded parametric draws of the savings
        (normal), the cost (normal) and the mean months (bootstrap of ``months_enrolled`` if an
        array), percentile interval. ``"auto"``: simulation when a minimum savings rate makes the
        identity non-linear or months are an array, delta otherwise.
    n_draws : int, default=10000
    level : float, default=0.95
    seed : int or Generator, default=None

    Returns
    -------
    NetBenefitResult

    Notes
    -----
    Accounting identity (per enrolled patient):

    .. math::

        G = s \cdot m, \quad R = (1 - p)\,G\,\mathbb{1}[s / B \ge \mathrm{MSR}], \quad
        C_{net} = C (1 - f), \quad NB = R - C_{net},

    with savings PMPM :math:`s`, months in program :math:`m`, payer share :math:`p`, benchmark
    PMPM :math:`B`, program cost :math:`C` and FFS share :math:`f`. Delta method:
    :math:`\mathrm{Var}(NB) = ((1-p) m)^2 \mathrm{SE}(s)^2 + (1-f)^2 \mathrm{SE}(C)^2`.

    **The pilot's $2,696.** The identity is one equation in five terms, so many contracts
    reproduce it; with $1,351 PMPM and FFS covering half the cost, one natural set is ``months
    = 6`` (savings measured over the whole last 6 months), ``payer_share = 0.5`` and
    ``program_cost = 2,714`` per patient ($452 per month): :math:`0.5 \times 1351 \times 6 -
    0.5 \times 2714 = 4053 - 1357 = 2696` (:data:`PILOT`). Each extra program month adds
    $675.50, each 10 points of payer share moves it by $810.60, each $1,000 of cost by $500; use
    :func:`solve_net_benefit` for the value of any one term that reproduces a target and
    :func:`net_benefit_sensitivity` for the table.

    Examples
    --------
    >>> r = net_benefit(1351, months_enrolled=6, program_cost=2714, payer_share=0.5, savings_se=400)
    >>> r.estimate, round(r.std_error, 6)
    (2696.0, 1200.0)
    """
    check_option(method, "method", ("auto", "delta", "simulation"), "net_benefit")
    s, se, src = _savings_input(savings_pmpm, savings_se)
    m_arr = np.atleast_1d(np.asarray(months_enrolled, dtype=float))
    if m_arr.size == 0 or not np.isfinite(m_arr).all() or (m_arr < 0).any():
        raise SpecificationError(f"The 'months_enrolled' parameter must be non-negative finite number(s). Got {months_enrolled!r}.")
    m = float(m_arr.mean())
    check_scalar(program_cost, "program_cost", Real, min_val=0)
    check_scalar(ffs_share, "ffs_share", Real, min_val=0, max_val=1)
    check_scalar(payer_share, "payer_share", Real, min_val=0, max_val=1)
    check_scalar(program_cost_se, "program_cost_se", Real, min_val=0)
    check_scalar(level, "level", Real, min_val=0, max_val=1, include_min=False, include_max=False)
    check_scalar(n_draws, "n_draws", Integral, min_val=100)
    if min_savings_rate is not None:
        check_scalar(min_savings_rate, "min_savings_rate", Real, min_val=0, max_val=1)
        if benchmark_pmpm is None:
            raise SpecificationError("min_savings_rate needs benchmark_pmpm= (counterfactual spending PMPM) to compute the savings rate.")
        check_scalar(benchmark_pmpm, "benchmark_pmpm", Real, min_val=0, include_min=False)
    elif benchmark_pmpm is not None:
        warnings.warn("benchmark_pmpm ignored: it is only used with min_savings_rate=.", UserWarning, stacklevel=2)
    nonlinear = min_savings_rate is not None or m_arr.size > 1
    if method == "auto":
        method = "simulation" if nonlinear else "delta"
    gross, retained, net_cost, nb = _nb_formula(s, m, float(program_cost), float(ffs_share), float(payer_share), min_savings_rate, benchmark_pmpm)
    se_s = 0.0 if se is None else se
    notes: list[str] = []
    draws = None
    seed_stored = seed if not isinstance(seed, np.random.Generator) else "Generator"
    z = stats.norm.ppf(0.5 + level / 2)
    if method == "delta":
        if min_savings_rate is not None:
            warnings.warn("The delta method ignores the minimum-savings-rate threshold (a step); use method='simulation'.",
                          EvalkitWarning, stacklevel=2)
        if m_arr.size > 1:
            notes.append("Delta method: months fixed at their mean (no sampling variability).")
        share = 1.0 - payer_share if (min_savings_rate is None or s / benchmark_pmpm >= min_savings_rate) else 0.0
        sd = float(np.sqrt((share * m * se_s) ** 2 + ((1 - ffs_share) * program_cost_se) ** 2))
        lo, hi = float(nb) - z * sd, float(nb) + z * sd
        notes.append("Delta method, normal interval; savings SE" + (f" {se_s:.6g}" if se is not None else " not given (0)") + ".")
    else:
        rng = as_generator(seed)
        sd_draw = rng.normal(s, se_s, n_draws) if se_s > 0 else np.full(n_draws, s)
        c_draw = rng.normal(program_cost, program_cost_se, n_draws) if program_cost_se > 0 else np.full(n_draws, float(program_cost))
        if m_arr.size > 1:
            m_draw = m_arr[rng.integers(0, m_arr.size, (n_draws, m_arr.size))].mean(axis=1)
        else:
            m_draw = np.full(n_draws, m)
        draws = _nb_formula(sd_draw, m_draw, c_draw, float(ffs_share), float(payer_share), min_savings_rate, benchmark_pmpm)[3]
        draws = np.asarray(draws, dtype=float)
        sd = float(draws.std(ddof=1))
        lo, hi = (float(q) for q in np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2]))
        notes.append(f"Parametric simulation ({n_draws} draws): savings ~ normal(estimate, SE), cost ~ normal, "
                     f"months {'bootstrapped' if m_arr.size > 1 else 'fixed'}; percentile interval.")
    comp = pd.DataFrame({"gross_savings": [float(gross)], "retained_savings": [float(retained)],
                         "payer_savings": [float(gross) - float(retained)], "ffs_revenue": [float(program_cost) * ffs_share],
                         "net_program_cost": [float(net_cost)], "net_benefit": [float(nb)]})
    params = {"savings_pmpm": s, "savings_se": se, "savings_source": src, "months_enrolled": m, "n_patients_months": int(m_arr.size),
              "program_cost": float(program_cost), "program_cost_se": float(program_cost_se), "ffs_share": float(ffs_share),
              "payer_share": float(payer_share), "min_savings_rate": min_savings_rate, "benchmark_pmpm": benchmark_pmpm,
              "n_draws": int(n_draws), "seed": seed_stored}
    return NetBenefitResult(estimate=float(nb), std_error=sd, conf_low=lo, conf_high=hi, components=comp, params=params,
                            method=method, level=float(level), draws=draws, notes=tuple(notes))


_SOLVABLE = ("program_cost", "months_enrolled", "payer_share", "savings_pmpm", "ffs_share")


def solve_net_benefit(target: float = PILOT["net_benefit"], *, solve_for: str = "program_cost", **terms: float) -> float:
    r"""The value of one term that makes the net benefit equal ``target`` (no minimum savings rate).

    The identity :math:`NB = (1 - p)\, s\, m - C (1 - f)` is linear in each term, so the solution is
    closed form. The other terms default to :data:`PILOT`.

    >>> solve_net_benefit(2696, solve_for="program_cost")
    2714.0
    >>> solve_net_benefit(2696, solve_for="program_cost", payer_share=0.0, months_enrolled=4)
    5416.0
    """
    check_option(solve_for, "solve_for", _SOLVABLE, "solve_net_benefit")
    bad = set(terms) - set(_SOLVABLE)
    if bad:
        raise SpecificationError(f"Unknown term(s) {sorted(bad)}; expected some of {list(_SOLVABLE)}.")
    if solve_for in terms:
        raise SpecificationError(f"{solve_for!r} is the unknown; do not also pass it.")
    v = {k: float(terms.get(k, PILOT[k])) for k in _SOLVABLE if k != solve_for}
    target = float(target)
    if solve_for == "program_cost":
        out = ((1 - v["payer_share"]) * v["savings_pmpm"] * v["months_enrolled"] - target) / (1 - v["ffs_share"])
    elif solve_for == "ffs_share":
        out = 1 - ((1 - v["payer_share"]) * v["savings_pmpm"] * v["months_enrolled"] - target) / v["program_cost"]
    else:
        rest = target + v["program_cost"] * (1 - v["ffs_share"])
        if solve_for == "months_enrolled":
            out = rest / ((1 - v["payer_share"]) * v["savings_pmpm"])
        elif solve_for == "savings_pmpm":
            out = rest / ((1 - v["payer_share"]) * v["months_enrolled"])
        else:  # payer_share
            out = 1 - rest / (v["savings_pmpm"] * v["months_enrolled"])
    return float(np.round(out, 10))


def net_benefit_sensitivity(
    savings_pmpm: float | EffectResult = PILOT["savings_pmpm"],
    *,
    months_enrolled: float = PILOT["months_enrolled"],
    program_cost: float = PILOT["program_cost"],
    ffs_share: float = PILOT["ffs_share"],
    payer_share: float = PILOT["payer_share"],
    savings_se: float | None = None,
    vary: Mapping[str, Sequence[float]] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """One-way sensitivity of the net benefit: each term varied over a grid, the others at base values.

    Parameters
    ----------
    vary : dict, default=None
        Term -> values. Default: ``payer_share`` 0..1 by 0.1, ``months_enrolled`` 1..6,
        ``program_cost`` 0..10,000 by 1,000, ``ffs_share`` 0..1 by 0.1, ``savings_pmpm`` 0..2,500
        by 250 (only when ``savings_pmpm`` is a number), each with the base value added.

    Returns
    -------
    DataFrame
        ``parameter, value, net_benefit, std_error, conf_low, conf_high, is_base`` (delta-method
        interval from the savings SE; 0 width without one).
    """
    s, se, _ = _savings_input(savings_pmpm, savings_se)
    base = {"savings_pmpm": s, "months_enrolled": float(months_enrolled), "program_cost": float(program_cost),
            "ffs_share": float(ffs_share), "payer_share": float(payer_share)}
    if vary is None:
        vary = {"payer_share": np.round(np.arange(0, 1.01, 0.1), 2), "months_enrolled": np.arange(1, 7, dtype=float),
                "program_cost": np.arange(0, 10_001, 1000, dtype=float), "ffs_share": np.round(np.arange(0, 1.01, 0.1), 2)}
        if not isinstance(savings_pmpm, EffectResult):
            vary["savings_pmpm"] = np.arange(0, 2501, 250, dtype=float)
        vary = {k: np.unique(np.append(v, base[k])) for k, v in vary.items()}  # the base case is on every grid
    rows = []
    for k, vals in vary.items():
        check_option(k, "vary key", _SOLVABLE, "net_benefit_sensitivity")
        for v in np.asarray(vals, dtype=float):
            p = dict(base, **{k: float(v)})
            r = net_benefit(p["savings_pmpm"], months_enrolled=p["months_enrolled"], program_cost=p["program_cost"],
                            ffs_share=p["ffs_share"], payer_share=p["payer_share"], savings_se=se, method="delta", level=level)
            rows.append((k, float(v), r.estimate, r.std_error, r.conf_low, r.conf_high, bool(np.isclose(v, base[k]))))
    return pd.DataFrame(rows, columns=["parameter", "value", "net_benefit", "std_error", "conf_low", "conf_high", "is_base"])


_LABELS = {"payer_share": "Payer share of savings", "months_enrolled": "Months in program", "program_cost": "Program cost per patient ($)",
           "ffs_share": "FFS share of cost", "savings_pmpm": "Savings PMPM ($)"}


def plot_net_benefit_sensitivity(table: pd.DataFrame, *, parameter: str | None = None, ax=None):
    """Plot :func:`net_benefit_sensitivity`: a tornado chart (range of net benefit over each term's
    grid, base value marked), or with ``parameter=`` net benefit vs that term with its interval.
    Returns the Axes."""
    from .plots.style import PALETTE, finish_axes, house_style, new_axes

    need = {"parameter", "value", "net_benefit", "conf_low", "conf_high", "is_base"}
    if not isinstance(table, pd.DataFrame) or not need <= set(table.columns):
        raise SpecificationError("table must come from net_benefit_sensitivity().")
    with house_style():
        ax = new_axes(ax)
        if parameter is not None:
            check_option(parameter, "parameter", sorted(table["parameter"].unique()), "plot_net_benefit_sensitivity")
            t = table.loc[table["parameter"] == parameter].sort_values("value")
            ax.fill_between(t["value"], t["conf_low"], t["conf_high"], color=PALETTE["sky"], alpha=0.3, linewidth=0, label="95% interval")
            ax.plot(t["value"], t["net_benefit"], color=PALETTE["blue"], marker="o", label="Net benefit")
            b = t.loc[t["is_base"]]
            if len(b):
                ax.plot(b["value"], b["net_benefit"], linestyle="none", marker="D", color=PALETTE["vermillion"], label="Base case")
            ax.axhline(0, color="#555555", linewidth=0.8)
            ax.legend()
            finish_axes(ax, title="Net benefit per patient", xlabel=_LABELS.get(parameter, parameter), ylabel="Net benefit per patient ($)")
        else:
            g = table.groupby("parameter", sort=False)["net_benefit"].agg(["min", "max"])
            g = g.assign(span=g["max"] - g["min"]).sort_values("span")
            base_nb = table.loc[table["is_base"], "net_benefit"]
            yy = np.arange(len(g))
            ax.barh(yy, g["max"] - g["min"], left=g["min"], color=PALETTE["blue"], alpha=0.7, height=0.6)
            if len(base_nb):
                ax.axvline(float(base_nb.iloc[0]), color=PALETTE["vermillion"], linestyle="--", linewidth=1.0, label="Base case")
                ax.legend(loc="lower right")
            ax.axvline(0, color="#555555", linewidth=0.8)
            ax.set_yticks(yy)
            ax.set_yticklabels([_LABELS.get(p, p) for p in g.index])
            lo_hi = table.groupby("parameter")["value"].agg(["min", "max"])
            for y, p in zip(yy, g.index):
                ax.annotate(f"{lo_hi.loc[p, 'min']:g} to {lo_hi.loc[p, 'max']:g}", (g.loc[p, "max"], y), xytext=(4, 0),
                            textcoords="offset points", va="center", fontsize=8)
            finish_axes(ax, title="Sensitivity of net benefit per patient", xlabel="Net benefit per patient ($)")
            ax.grid(True, axis="x", color="#d9d9d9", linewidth=0.6)
    return ax
