"""A synthetic, AQC-shaped member-quarter claims panel with planted, exactly known effects.

The data-generating process is stylised after the evaluations of the Blue Cross Blue Shield of
Massachusetts Alternative Quality Contract (AQC) by Song et al. (NEJM 2011, 2012, 2014): provider
organisations entered a global-budget contract in 2009, 2010, 2011 and 2012; enrollees of
organisations that never contracted are the comparison group; the outcome is spending per
enrollee per quarter; savings grow with years in the contract and come partly from lower prices
(referrals shifted to cheaper providers) and partly from lower utilisation; quality improves.

Nothing here is estimated from real claims: the numbers are plausible orders of magnitude chosen
so that estimators can be checked against a truth that is known row by row.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd

from .._validation import as_generator, check_option, check_scalar
from ..errors import EvalkitWarning, SpecificationError

__all__ = ["AQCTruth", "SimulatedAQC", "simulate_aqc"]

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------
# fixed design constants (documented in simulate_aqc's Notes)

#: Spending categories, in column order (``spend_<category>``).
CATEGORIES: tuple[str, ...] = ("inpatient", "outpatient", "professional", "imaging", "pharmacy")
#: Approximate mean share of each category in total spending (also the split of a constant effect).
_CATEGORY_SHARES = np.array([0.20, 0.22, 0.30, 0.08, 0.20])
#: Non-inpatient spending is split by normalised lognormal weights with these locations and
#: log-scale dispersions (outpatient, professional, imaging, pharmacy).
_OTHER_WEIGHTS = np.array([0.22, 0.30, 0.08, 0.20])
_OTHER_SIGMA = np.array([1.0, 0.7, 1.2, 1.0])
#: Quality measures, in column order.
MEASURES: tuple[str, ...] = ("hba1c_test", "ldl_screen", "crc_screen", "bp_control")
#: Baseline logits of the quality measures (before the cap, org, member and trend terms).
_MEASURE_LOGIT = np.array([2.0, 1.5, 0.6, 0.5])
#: Counterfactual quality probabilities are capped at this value, so p0 + effect stays < 1.
_QUALITY_CAP = 0.94
_RACE_LEVELS = ("White", "Black", "Hispanic", "Asian", "Other")
_RACE_SHARES = np.array([0.72, 0.07, 0.11, 0.06, 0.04])
#: Quality logit offsets by race/ethnicity (a stylised disparity; the planted effect is the same).
_RACE_QUALITY = np.array([0.0, -0.35, -0.25, 0.05, -0.10])
#: Spending-intensity log offsets by race/ethnicity.
_RACE_SPENDING = np.array([0.0, 0.05, -0.05, -0.15, 0.0])

#: Growing effect, by years in contract 1, 2, 3, 4 (later years repeat the last value):
#: savings as a share of the member-quarter's counterfactual spending,
_GROWING_SAVINGS = (0.019, 0.033, 0.068, 0.090)
#: the share of those savings that comes from lower prices (the rest: lower utilisation),
_GROWING_PRICE_SHARE = (0.50, 0.50, 0.45, 0.40)
#: and the quality gain in probability points.
_GROWING_QUALITY = (0.02, 0.03, 0.04, 0.05)
#: Constant effect: price share of the dollar effect and the quality gain.
_CONSTANT_PRICE_SHARE = 0.45
_CONSTANT_QUALITY = 0.03

#: Calibration constants (chosen by simulation: 2009 mean spending ~ $850, ~20% zero quarters,
#: mean risk score ~1.10).
_USE_INTERCEPT = 1.75
_INTENSITY_INTERCEPT = 5.735
_RISK_INTERCEPT = -0.123
_ADMIT_INTERCEPT = -4.3
_INPATIENT_INTERCEPT = 8.83
_ANNUAL_GROWTH = 0.06
_SEASON = np.array([-0.03, 0.0, -0.02, 0.05])

_ORG_WIDTH = 3
_MEMBER_WIDTH = 6


# ----------------------------------------------------------------------------------------------
# truth

#: Key columns of ``AQCTruth.per_row`` (integer codes used to group the truth).
_KEY_COLUMNS = ("unit", "t", "year", "entry_year", "cohort_t", "aqc")


@dataclass(frozen=True)
class AQCTruth:
    """The planted effects of a :func:`simulate_aqc` panel, row by row and aggregated.

    Every helper computes its truth **on the realised sample** (the rows actually in ``data``),
    so it is the exact value an unbiased estimator of that estimand targets in this sample, with
    no sampling error in the truth itself.

    Attributes
    ----------
    per_row : pandas.DataFrame
        Aligned with ``data.index`` (same index, same order). Key columns (integer codes, for
        grouping): ``unit`` (member code 0..n-1), ``t``, ``year``, ``entry_year`` (NaN never),
        ``cohort_t`` (NaN never), ``aqc`` (0/1). Truth columns, each ``outcome_with_effect -
        outcome_without_effect`` for that row (0 on untreated rows):

        * ``tau_spending`` : effect on ``spending`` in dollars (exact:
          ``spending == counterfactual_spending + tau_spending``);
        * ``tau_spending_price``, ``tau_spending_utilization`` : its price and utilisation parts
          (they sum to ``tau_spending``);
        * ``tau_spending_std`` : effect on ``spending_std`` (the utilisation part, valued at
          standard prices);
        * ``tau_spend_<category>`` : effect on each category column (they sum to
          ``tau_spending``);
        * ``tau_quality_<measure>`` : effect on the *probability* that the binary measure is met
          (an expectation-level truth; NaN where the member is not eligible);
        * ``counterfactual_spending``, ``counterfactual_spending_std`` : the untreated outcomes.
    per_cell : pandas.DataFrame
        One row per (contracting cohort ``entry_year``, ``quarter``) cell present in the sample,
        pre-entry cells included: ``entry_year``, ``quarter``, ``t``, ``event_time`` (quarters
        since the entry quarter), ``post``, ``n`` (rows = members observed in the cell), then the
        mean of every ``tau_*`` column over the cell's rows (quality: over eligible rows), and
        ``n_<measure>`` (eligible rows).
    params : dict
        The arguments of :func:`simulate_aqc` and the effect schedules used.
    """

    per_row: pd.DataFrame = field(repr=False)
    per_cell: pd.DataFrame = field(repr=False)
    params: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ helpers
    def _tau_column(self, outcome: str) -> str:
        for name in (f"tau_{outcome}", f"tau_quality_{outcome}", outcome):
            if name.startswith("tau_") and name in self.per_row.columns:
                return name
        options = [c[len("tau_quality_"):] if c.startswith("tau_quality_") else c[len("tau_"):]
                   for c in self.per_row.columns if c.startswith("tau_")]
        raise SpecificationError(
            f"The 'outcome' parameter must be one of {options}. Got {outcome!r} instead."
        )

    def _rows(self, outcome: str) -> tuple[str, pd.DataFrame]:
        """Rows of contracting members with a defined truth for ``outcome``."""
        col = self._tau_column(outcome)
        pr = self.per_row
        keep = pr["entry_year"].notna().to_numpy() & pr[col].notna().to_numpy()
        return col, pr[[*_KEY_COLUMNS, col]].loc[keep]

    @staticmethod
    def _check_time(unit: str, name: str) -> str:
        return check_option(unit, name, ["quarter", "year"])

    def cohort_sizes(self, outcome: str = "spending") -> pd.Series:
        """Number of distinct members per cohort (``entry_year``) with at least one row for ``outcome``.

        These are the :math:`N_g` of the ``"cells"`` weighting and of :meth:`simple_att`.
        """
        _, rows = self._rows(outcome)
        out = rows.groupby("entry_year")["unit"].nunique()
        out.name = "n_units"
        return out

    def att(self, outcome: str = "spending") -> float:
        r"""Average effect on the treated: mean of the per-row effect over treated-post rows.

        .. math:: \mathrm{ATT} = \frac{1}{|\{it: aqc_{it}=1\}|} \sum_{it:\, aqc_{it}=1} \tau_{it}

        over rows with ``aqc == 1`` (quality: eligible rows only). This is the estimand of a
        two-way fixed-effects regression on ``aqc`` when effects are homogeneous, and of the
        imputation estimator (Borusyak, Jaravel & Spiess) with equal row weights under any
        heterogeneity. With ``effect="constant"`` it equals ``constant_effect`` exactly.
        """
        col, rows = self._rows(outcome)
        post = rows["aqc"].to_numpy() == 1
        return float(rows[col].to_numpy()[post].mean()) if post.any() else float("nan")

    def att_by_cohort(self, outcome: str = "spending", *, weighting: str = "rows",
                      time: str = "quarter") -> pd.Series:
        """Effect on each contracting cohort (index ``entry_year``), post-entry only.

        Parameters
        ----------
        outcome : str, default="spending"
            A data column with a planted effect (``spending``, ``spending_std``,
            ``spend_<category>``, a quality measure) or ``spending_price`` /
            ``spending_utilization``.
        weighting : {"rows", "cells"}, default="rows"
            ``"rows"``: mean of the per-row effect over the cohort's treated-post rows.
            ``"cells"``: Callaway–Sant'Anna "group" aggregation: the plain (unweighted) mean of
            the cohort's post-entry cell effects ``ATT(g, t)`` from :meth:`att_gt`.
        time : {"quarter", "year"}, default="quarter"
            Period of the cells when ``weighting="cells"``.
        """
        check_option(weighting, "weighting", ["rows", "cells"])
        self._check_time(time, "time")
        if weighting == "rows":
            col, rows = self._rows(outcome)
            rows = rows.loc[rows["aqc"].to_numpy() == 1]
            out = rows.groupby("entry_year")[col].mean()
        else:
            gt = self.att_gt(outcome, time=time)
            out = gt.loc[gt["post"]].groupby("entry_year")["att"].mean()
        out.name = "att"
        return out

    def att_by_event_time(self, outcome: str = "spending", *, unit: str = "year",
                          weighting: str = "rows") -> pd.Series:
        """Effect by event time ``e`` (0 = the entry year/quarter), index ``event_time``.

        Event time is ``year - entry_year`` (``unit="year"``) or ``t - cohort_t``
        (``unit="quarter"``), so ``e = 0`` is the first year (quarter) in the contract. Negative
        event times (pre-entry rows of contracting members) are included; their truth is 0 by
        construction (no anticipation).

        Parameters
        ----------
        outcome : str, default="spending"
            As in :meth:`att_by_cohort`.
        unit : {"year", "quarter"}, default="year"
            Unit of event time (and of the cells when ``weighting="cells"``).
        weighting : {"rows", "cells"}, default="rows"
            ``"rows"``: mean of the per-row effect over contracting members' rows at event time
            ``e`` (the target of an event-study regression with equal row weights).
            ``"cells"``: Callaway–Sant'Anna "dynamic" aggregation: cells ``ATT(g, g+e)`` averaged
            with weights :math:`N_g` (:meth:`cohort_sizes`) over the cohorts observed at ``e``.
        """
        self._check_time(unit, "unit")
        check_option(weighting, "weighting", ["rows", "cells"])
        if weighting == "rows":
            col, rows = self._rows(outcome)
            if unit == "year":
                e = rows["year"].to_numpy() - rows["entry_year"].to_numpy()
            else:
                e = rows["t"].to_numpy() - rows["cohort_t"].to_numpy()
            out = rows[col].groupby(e.astype(np.int64)).mean()
        else:
            gt = self.att_gt(outcome, time=unit)
            ng = self.cohort_sizes(outcome)
            w = gt["entry_year"].map(ng).to_numpy(dtype=float)
            num = pd.Series(w * gt["att"].to_numpy()).groupby(gt["event_time"].to_numpy()).sum()
            den = pd.Series(w).groupby(gt["event_time"].to_numpy()).sum()
            out = num / den
        out.index = out.index.astype(np.int64)
        out.index.name = "event_time"
        out.name = "att"
        return out

    def att_gt(self, outcome: str = "spending", *, time: str = "quarter") -> pd.DataFrame:
        """Group-time effects ``ATT(g, t)``: the mean per-row effect in each cohort × period cell.

        The cell truth is the mean over the rows observed in the cell (members of cohort ``g``
        enrolled in period ``t``; quality: eligible rows), which is what Callaway–Sant'Anna's
        ``ATT(g, t)`` targets on the observed rows. Pre-entry cells are included (truth 0).

        Parameters
        ----------
        outcome : str, default="spending"
            As in :meth:`att_by_cohort`.
        time : {"quarter", "year"}, default="quarter"
            Cell period: quarter ``t`` (cohort = entry quarter) or calendar ``year``
            (cohort = entry year; cell = all of the cohort's rows in that year).

        Returns
        -------
        pandas.DataFrame
            Columns ``entry_year``, ``t`` (or ``year``), ``event_time`` (``t - cohort_t`` or
            ``year - entry_year``), ``post`` (event_time >= 0), ``n`` (rows), ``att``.
        """
        self._check_time(time, "time")
        col, rows = self._rows(outcome)
        key, cohort = ("t", "cohort_t") if time == "quarter" else ("year", "entry_year")
        grp = rows.groupby(["entry_year", key], sort=True)
        out = grp[col].agg(["size", "mean"]).rename(columns={"size": "n", "mean": "att"})
        g = grp[cohort].first().to_numpy()
        out = out.reset_index()
        out.insert(2, "event_time", (out[key].to_numpy() - g).astype(np.int64))
        out.insert(3, "post", out["event_time"].to_numpy() >= 0)
        return out

    def simple_att(self, outcome: str = "spending", *, time: str = "quarter") -> float:
        r"""Callaway–Sant'Anna "simple" aggregation of :meth:`att_gt`.

        .. math::
            \theta_S = \frac{\sum_{g}\sum_{t \ge g} N_g \, ATT(g,t)}{\sum_{g}\sum_{t \ge g} N_g}

        over the post-entry cells present in the sample, where :math:`N_g` is the number of
        distinct members of cohort ``g`` in the sample (:meth:`cohort_sizes`; R ``did`` uses the
        cohort's share of units, which is the same up to a constant). For a balanced panel every
        cell of cohort ``g`` has :math:`N_g` rows, so :math:`\theta_S` equals :meth:`att`; with
        churn the two differ (``att`` weights cells by their realised row counts).
        """
        gt = self.att_gt(outcome, time=time)
        gt = gt.loc[gt["post"]]
        if gt.empty:
            return float("nan")
        w = gt["entry_year"].map(self.cohort_sizes(outcome)).to_numpy(dtype=float)
        return float(np.sum(w * gt["att"].to_numpy()) / np.sum(w))


@dataclass(frozen=True)
class SimulatedAQC:
    """Result of :func:`simulate_aqc`: the panel and its truth.

    Unpacks as a pair: ``df, truth = simulate_aqc(seed=1)``.

    Attributes
    ----------
    data : pandas.DataFrame
        The member-quarter panel (see :func:`simulate_aqc`).
    truth : AQCTruth
        The planted effects.
    """

    data: pd.DataFrame = field(repr=False)
    truth: AQCTruth = field(repr=False)

    def __iter__(self) -> Iterator[Any]:
        yield self.data
        yield self.truth

    def __repr__(self) -> str:
        d = self.data
        return (f"SimulatedAQC(rows={len(d)}, members={d['member_id'].nunique()}, "
                f"orgs={d['org_id'].nunique()}, effect={self.truth.params.get('effect')!r})")


# ----------------------------------------------------------------------------------------------
# simulation


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _labels(prefix: str, n: int, width: int) -> pd.api.extensions.ExtensionArray:
    width = max(width, len(str(n)))
    lab = np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(str), width))
    return pd.array(lab, dtype="str")


def _allocate(shares: np.ndarray, n: int) -> np.ndarray:
    """Integer counts proportional to ``shares`` (largest remainder), summing to round(sum * n)."""
    raw = shares * n
    base = np.floor(raw).astype(np.int64)
    total = min(int(round(float(raw.sum()))), n)
    extra = total - int(base.sum())
    if extra > 0:
        order = np.argsort(-(raw - base), kind="stable")
        base[order[:extra]] += 1
    return base


def _check_cohort_shares(cohort_shares: Any, start_year: int, end_year: int) -> dict[int, float]:
    if not isinstance(cohort_shares, Mapping):
        raise SpecificationError(
            f"The 'cohort_shares' parameter must be a dict {{entry_year: share of orgs}}. "
            f"Got {cohort_shares!r} instead."
        )
    out: dict[int, float] = {}
    for year, share in cohort_shares.items():
        if isinstance(year, bool) or not isinstance(year, Integral) or not start_year < year <= end_year:
            raise SpecificationError(
                f"The 'cohort_shares' parameter has entry year {year!r}; entry years must be integers "
                f"in ({start_year}, {end_year}] so that every cohort has a pre-period in the panel."
            )
        if isinstance(share, bool) or not isinstance(share, Real) or not 0 <= share <= 1:
            raise SpecificationError(
                f"The 'cohort_shares' parameter must map years to shares in [0, 1]. "
                f"Got {share!r} for {year}."
            )
        out[int(year)] = float(share)
    total = sum(out.values())
    if total > 1 + 1e-12:
        raise SpecificationError(
            f"The 'cohort_shares' parameter must sum to at most 1 (the rest never contract). "
            f"Got {total:g}."
        )
    return dict(sorted(out.items()))


def _schedule(values: tuple[float, ...], k: np.ndarray) -> np.ndarray:
    """Value for years-in-contract ``k`` (0 -> 0; k > len -> last value)."""
    arr = np.concatenate([[0.0], np.asarray(values, dtype=float)])
    return arr[np.minimum(k, len(values))]


def simulate_aqc(
    *,
    n_members: int = 20_000,
    n_orgs: int = 60,
    start_year: int = 2006,
    end_year: int = 2012,
    cohort_shares: Mapping[int, float] | None = None,
    effect: str = "growing",
    constant_effect: float = -60.0,
    churn: bool = True,
    seed: int | np.random.Generator | None = None,
) -> SimulatedAQC:
    r"""Simulate an AQC-shaped member-quarter claims panel with planted, known effects.

    Members are nested in provider organisations; organisations enter a global-budget contract in
    staggered years (or never); spending, price-standardised spending and four binary quality
    measures are observed per member-quarter. The effect of the contract is planted additively
    on the outcome scale, so the truth of every estimand is known exactly on the realised sample
    (see :class:`AQCTruth`).

    Parameters
    ----------
    n_members : int, default=20_000
        Members (enrollees). Each belongs to one organisation for the whole panel
        (intent-to-treat attribution at entry). About 21 rows per member with ``churn=True``
        (all 28 with ``churn=False``), so ~48,000 members give 1,000,000 rows.
    n_orgs : int, default=60
        Provider organisations (the natural cluster).
    start_year, end_year : int, default=2006, 2012
        First and last calendar year; quarters run from ``start_year`` Q1 to ``end_year`` Q4.
    cohort_shares : dict of {int: float}, default={2009: 0.25, 2010: 0.1, 2011: 0.1, 2012: 0.1}
        Share of *organisations* entering the contract in each year (rounded to whole
        organisations by largest remainder); the remaining organisations never contract.
        Entry years must lie in ``(start_year, end_year]``.
    effect : {"growing", "constant"}, default="growing"
        ``"growing"``: savings grow with years in the contract (Notes). ``"constant"``: the
        spending effect is ``constant_effect`` dollars on every treated-post row.
    constant_effect : float, default=-60.0
        Dollars per member-quarter (negative = savings), used when ``effect="constant"``.
    churn : bool, default=True
        Members enroll and disenroll (one enrollment spell each: 75% are enrolled at the start,
        the rest join in a uniformly drawn later quarter; spells last a geometric number of
        quarters with a 1.2% quarterly exit hazard), giving an unbalanced panel in which about
        45% of members are not observed in every quarter. Every calendar quarter has rows. ``False`` gives a
        balanced panel. The outcomes of a member-quarter do not depend on ``churn``.
    seed : int, numpy.random.Generator or None, default=None
        Seed for :func:`numpy.random.default_rng`. The same seed gives the same panel; the
        counterfactual draws do not depend on ``effect``, ``constant_effect`` or ``churn``.

    Returns
    -------
    SimulatedAQC
        ``data`` and ``truth``; unpacks as ``df, truth = simulate_aqc(...)``.

        ``data`` has one row per member-quarter, sorted by ``member_id, quarter``, with
        a ``RangeIndex`` and columns:

        ``member_id`` : str
            ``"M000001"``, ... (unit).
        ``org_id`` : str
            ``"ORG001"``, ... (provider organisation; cluster).
        ``quarter`` : Period[Q-DEC]
            Calendar quarter (time).
        ``year`` : int
            Calendar year.
        ``t`` : int
            Consecutive period index 0 .. 4 * (end_year - start_year + 1) - 1.
        ``entry_year`` : float
            Year the member's organisation entered the contract; NaN if it never did.
        ``entry_quarter`` : Period[Q-DEC]
            First quarter of ``entry_year`` (cohort for quarterly designs); NaT if never.
        ``cohort_t`` : float
            ``t`` of ``entry_quarter``; NaN if never.
        ``contract`` : bool
            The organisation ever enters the contract (treated group).
        ``post`` : bool
            ``quarter >= entry_quarter`` (False for never-contracting organisations).
        ``aqc`` : int
            ``contract & post`` as 0/1: the treated-and-post indicator (absorbing).
        ``years_in_contract`` : int
            0 before entry and for controls; 1 in the entry year, 2 the next, ...
        ``age`` : int
            Age in years (children and adults, mean ~35; members age over the panel).
        ``female`` : bool
            ~52% female.
        ``risk_score`` : float
            Risk score, right-skewed with mean ~1.1: a member-level score with a small drift.
        ``race_eth`` : Categorical
            White, Black, Hispanic, Asian, Other (72/7/11/6/4%).
        ``spending`` : float
            Actual total spending in dollars per member-quarter (~20% zeros, right-skewed;
            mean ~$850 in 2009).
        ``spending_std`` : float
            Price-standardised spending: the same utilisation valued at standard prices.
        ``spend_inpatient``, ``spend_outpatient``, ``spend_professional``, ``spend_imaging``,
        ``spend_pharmacy`` : float
            Actual spending by category; they sum to ``spending``.
        ``hba1c_test``, ``ldl_screen``, ``crc_screen``, ``bp_control`` : float
            Binary quality measures (0/1) for eligible members, NaN otherwise. Eligibility is
            fixed per member: HbA1c testing for diabetics (~8% of members), LDL screening for
            diabetics or members with cardiovascular disease, colorectal cancer screening for
            ages 50–75 (age at the panel midpoint), blood-pressure control for hypertensives.

    See Also
    --------
    AQCTruth : the per-row truth and the estimand helpers.

    Notes
    -----
    **Counterfactual spending.** Utilisation valued at standard prices has two parts.
    Non-inpatient care follows a two-part model: the member-quarter has any use with
    probability :math:`\operatorname{logit}^{-1}(a_0 + 0.9\log r_{it} + 0.25\,\text{female adult}
    - 0.4\,\text{child} + u_i + s_q)` and then costs
    :math:`\exp(b_0 + \log r_{it} + v_i + \rho_{race} + c_{ot} + \varepsilon_{it})`,
    :math:`\varepsilon_{it} \sim N(0, 1)`, split into outpatient, professional, imaging and
    pharmacy by normalised lognormal weights. Inpatient care occurs in ~1.4% of member-quarters
    (:math:`\operatorname{logit}^{-1}(-4.3 + \log r_{it} + 0.3 u_i - 0.7\,\text{child})`) and
    then costs :math:`\exp(8.83 + 0.3 \log r_{it} + c_{ot} + 0.8\,\eta_{it})` (about $13,000 in 2009).
    Here :math:`c_{ot} = \alpha_o + \gamma_{ot} + \delta t + s_q` collects the organisation
    effect :math:`\alpha_o` (contracting organisations are 3% costlier at baseline: DiD removes
    levels), organisation-quarter shocks :math:`\gamma_{ot}` (correlation within clusters), a
    common secular trend of 6% a year and a common seasonal pattern :math:`s_q`; :math:`u_i,
    v_i` are member effects (heterogeneity beyond the risk score :math:`r_{it}`). Trends are
    parallel by construction. Dollar shares come out near 20/21/31/8/19% (inpatient,
    outpatient, professional, imaging, pharmacy). Actual spending multiplies each category by
    the organisation's price index (lognormal, mean 1, sd ~13%), so ``spending_std`` differs
    from ``spending`` by price only.

    **Counterfactual quality.** :math:`p^0_{it} = 0.94\,\operatorname{logit}^{-1}(\beta_m +
    \kappa_{om} + 0.5 q_i + \rho^q_{race} + 0.06\,t/4)` with measure, organisation, member and
    race/ethnicity terms (a stylised disparity) and a secular improvement.

    **Planted effects.** With :math:`k` = ``years_in_contract`` and :math:`Y^0` the
    counterfactual, for every row with ``aqc == 1``:

    * ``effect="growing"``: :math:`\tau_{it} = -s_k\,Y^0_{it}` with savings
      :math:`s_k` = 1.9%, 3.3%, 6.8%, 9.0% in years 1–4 (later years: 9.0%), roughly
      -$16 to -$90 per member-quarter; a share :math:`\pi_k` = 50, 50, 45, 40% of it is price
      (``tau_spending_price``), the rest utilisation. Each category carries
      :math:`-s_k Y^0_{c,it}`, and ``spending_std`` carries
      :math:`-s_k(1-\pi_k)\,Y^{0,std}_{it}` (utilisation only). Quality probabilities rise by
      2, 3, 4, 5 points in years 1–4 (later: 5). Spending stays non-negative and zeros stay
      zero.
    * ``effect="constant"``: :math:`\tau_{it}` = ``constant_effect`` on every treated-post row,
      split 45% price / 55% utilisation; ``spending_std`` carries the utilisation part
      (``0.55 * constant_effect``), category ``c`` its mean share of ``constant_effect``, and
      quality rises by 3 points. Rows with little counterfactual spending can then have
      negative spending: this setting is an additive test bench, not a claims model.

    The observed outcome is :math:`Y_{it} = Y^0_{it} + \tau_{it}` exactly. Binary quality
    measures are drawn as :math:`1\{U_{it} < p^0_{it} + \tau^q_{it}\}` with a uniform
    :math:`U_{it}` shared with the counterfactual, and :math:`p^0_{it} \le 0.94`; the truth is
    the probability difference :math:`\tau^q_{it}`.

    Randomness comes from independent streams spawned from ``seed`` (organisations, members,
    enrollment, spending, quality), all drawn on the full member × quarter grid, so changing
    ``effect``, ``constant_effect`` or ``churn`` changes neither the counterfactual outcomes
    nor (for ``effect``) the sample.

    References
    ----------
    Song Z, Safran DG, Landon BE, et al. Health care spending and quality in year 1 of the
    Alternative Quality Contract. N Engl J Med 2011;365:909–918. — The Alternative Quality
    Contract, based on a global budget, lowered medical spending and improved quality. Health
    Aff 2012;31:1885–1894. — Song Z, Rose S, Safran DG, et al. Changes in health care spending
    and quality 4 years into global payment. N Engl J Med 2014;371:1704–1714.

    Examples
    --------
    >>> from evalkit.datasets import simulate_aqc
    >>> df, truth = simulate_aqc(n_members=2_000, effect="constant", seed=1)
    >>> truth.att("spending")
    -60.0
    >>> sorted(df["entry_year"].dropna().unique().tolist())
    [2009.0, 2010.0, 2011.0, 2012.0]
    """
    if cohort_shares is None:
        cohort_shares = {2009: 0.25, 2010: 0.1, 2011: 0.1, 2012: 0.1}
    check_scalar(n_members, "n_members", Integral, min_val=1)
    check_scalar(n_orgs, "n_orgs", Integral, min_val=1)
    check_scalar(start_year, "start_year", Integral)
    check_scalar(end_year, "end_year", Integral, min_val=start_year + 1)
    shares = _check_cohort_shares(cohort_shares, start_year, end_year)
    check_option(effect, "effect", ["growing", "constant"], func="simulate_aqc")
    check_scalar(constant_effect, "constant_effect", Real)
    if not np.isfinite(constant_effect):
        raise SpecificationError(
            f"The 'constant_effect' parameter must be a finite number. Got {constant_effect!r} instead."
        )
    if not isinstance(churn, (bool, np.bool_)):
        raise SpecificationError(f"The 'churn' parameter must be a bool. Got {churn!r} instead.")
    if effect == "growing" and constant_effect != -60.0:
        warnings.warn(
            "`constant_effect` ignored: it is used only with effect='constant'.",
            EvalkitWarning,
            stacklevel=2,
        )
    n, n_o = int(n_members), int(n_orgs)
    start_year, end_year = int(start_year), int(end_year)
    rng = as_generator(seed)
    g_org, g_mem, g_enr, g_spend, g_qual = rng.spawn(5)

    n_t = 4 * (end_year - start_year + 1)
    tt = np.arange(n_t)
    year_t = start_year + tt // 4
    q0 = pd.Period(year=start_year, quarter=1, freq="Q").ordinal

    # ---------------------------------------------------------------- organisations
    years = np.array(list(shares), dtype=float)
    counts = _allocate(np.array(list(shares.values())), n_o)
    perm = g_org.permutation(n_o)
    org_entry = np.full(n_o, np.nan)
    org_entry[perm[: counts.sum()]] = np.repeat(years, counts)
    org_contract = ~np.isnan(org_entry)
    org_size = np.exp(g_org.normal(0.0, 0.6, n_o))
    org_level = g_org.normal(0.0, 0.10, n_o) + 0.03 * org_contract
    org_price = np.exp(0.12 * g_org.normal(size=(n_o, 1)) + 0.05 * g_org.normal(size=(n_o, len(CATEGORIES)))
                       - (0.12**2 + 0.05**2) / 2)
    org_shock = g_org.normal(0.0, 0.04, (n_o, n_t))
    org_quality = 0.25 * g_org.normal(size=(n_o, 1)) + 0.15 * g_org.normal(size=(n_o, len(MEASURES)))

    # ---------------------------------------------------------------- members
    org = g_mem.choice(n_o, size=n, p=org_size / org_size.sum())
    child = g_mem.random(n) < 0.26
    age0 = np.where(child, 18.0 * g_mem.random(n), 18.0 + 47.0 * g_mem.beta(1.5, 1.7, n))
    age_mid = age0 + n_t / 8.0
    adult = age_mid >= 18.0
    female = g_mem.random(n) < 0.52
    race = g_mem.choice(len(_RACE_LEVELS), size=n, p=_RACE_SHARES)
    log_risk = (_RISK_INTERCEPT + 0.012 * (age_mid - 35.0) + 0.08 * (female & adult)
                + 0.55 * g_mem.normal(size=n))
    drift = g_mem.normal(0.0, 0.15, n)
    u_use = g_mem.normal(0.0, 0.8, n)
    v_int = g_mem.normal(0.0, 0.55, n)
    q_re = g_mem.normal(0.0, 0.5, n)
    z_diab, z_cvd, z_htn = g_mem.random(n), g_mem.random(n), g_mem.random(n)
    diabetic = adult & (z_diab < _expit(-2.35 + 0.045 * (age_mid - 45.0) + 0.9 * log_risk))
    cvd = adult & (z_cvd < _expit(-3.0 + 0.07 * (age_mid - 50.0) + 0.8 * log_risk))
    hypertensive = adult & (z_htn < _expit(-1.45 + 0.06 * (age_mid - 45.0) + 0.6 * log_risk))
    eligible = np.column_stack([diabetic, diabetic | cvd, (age_mid >= 50) & (age_mid <= 75), hypertensive])

    # ---------------------------------------------------------------- enrollment
    at_start = g_enr.random(n) < 0.75
    start_q = np.where(at_start, 0, g_enr.integers(1, n_t, n))
    duration = g_enr.geometric(0.012, n)
    end_q = np.minimum(start_q + duration - 1, n_t - 1)
    if churn:
        covered = np.zeros(n_t + 1, dtype=np.int64)
        np.add.at(covered, start_q, 1)
        np.add.at(covered, end_q + 1, -1)
        if (np.cumsum(covered)[:n_t] == 0).any():  # tiny samples only: keep every quarter present
            start_q[0], end_q[0] = 0, n_t - 1
        observed = (tt[None, :] >= start_q[:, None]) & (tt[None, :] <= end_q[:, None])
    else:
        observed = np.ones((n, n_t), dtype=bool)

    # ---------------------------------------------------------------- draws on the full member x quarter grid
    # (so that they do not depend on churn; the effect settings use no randomness at all)
    u_any = g_spend.random((n, n_t))
    e_cost = g_spend.standard_normal((n, n_t))
    z_split = g_spend.standard_normal((n, n_t, len(CATEGORIES) - 1))
    u_admit = g_spend.random((n, n_t))
    e_admit = g_spend.standard_normal((n, n_t))
    u_quality = g_qual.random((n, n_t, len(MEASURES)))

    # ---------------------------------------------------------------- observed rows: counterfactual spending
    flat = np.flatnonzero(observed)  # C order: sorted by member, then quarter
    mi, ti = np.divmod(flat, n_t)
    n_rows = flat.size

    def at(grid: np.ndarray) -> np.ndarray:
        """Values of a (member, quarter[, k]) grid on the observed rows."""
        return grid.reshape(n * n_t, *grid.shape[2:])[flat]

    o = org[mi]
    log_risk_it = log_risk[mi] + drift[mi] * (ti - (n_t - 1) / 2.0) / n_t
    season = _SEASON[ti % 4]
    common = org_level[o] + org_shock[o, ti] + np.log1p(_ANNUAL_GROWTH) * ti / 4.0 + season
    child_i = child[mi]
    any_use = at(u_any) < _expit(_USE_INTERCEPT + 0.9 * log_risk_it + 0.25 * (female & adult)[mi]
                                     - 0.4 * child_i + u_use[mi] + season)
    other = np.where(any_use, np.exp(_INTENSITY_INTERCEPT + log_risk_it + v_int[mi] + _RACE_SPENDING[race[mi]]
                                     + common + at(e_cost)), 0.0)
    admit = at(u_admit) < _expit(_ADMIT_INTERCEPT + log_risk_it + 0.3 * u_use[mi] - 0.7 * child_i)
    inpatient = np.where(admit, np.exp(_INPATIENT_INTERCEPT + 0.3 * log_risk_it + common
                                       + 0.8 * at(e_admit)), 0.0)
    w = _OTHER_WEIGHTS * np.exp(_OTHER_SIGMA * at(z_split) - _OTHER_SIGMA**2 / 2)
    w /= w.sum(axis=1, keepdims=True)
    std_cat = np.empty((n_rows, len(CATEGORIES)))
    std_cat[:, 0] = inpatient
    std_cat[:, 1:] = other[:, None] * w
    cf_cat = std_cat * org_price[o]
    cf = cf_cat.sum(axis=1)
    cf_std = std_cat.sum(axis=1)

    entry = org_entry[o]
    contract = ~np.isnan(entry)
    cohort_t = (entry - start_year) * 4.0
    year = year_t[ti]
    post = contract & (ti >= np.where(contract, cohort_t, np.inf))
    k = np.where(post, year - np.where(contract, entry, 0).astype(np.int64) + 1, 0).astype(np.int64)

    if effect == "growing":
        s_k = _schedule(_GROWING_SAVINGS, k)
        pi_k = _schedule(_GROWING_PRICE_SHARE, k)
        # np.where keeps untreated rows at +0.0 (not -0.0)
        tau = np.where(post, -s_k * cf, 0.0)
        tau_price = np.where(post, -s_k * pi_k * cf, 0.0)
        tau_cat = np.where(post[:, None], -s_k[:, None] * cf_cat, 0.0)
        tau_std = np.where(post, -s_k * (1.0 - pi_k) * cf_std, 0.0)
        tau_q = _schedule(_GROWING_QUALITY, k)
    else:
        c = float(constant_effect)
        tau = np.where(post, c, 0.0)
        tau_price = np.where(post, c * _CONSTANT_PRICE_SHARE, 0.0)
        tau_cat = tau[:, None] * _CATEGORY_SHARES[None, :]
        tau_std = tau - tau_price
        tau_q = np.where(post, _CONSTANT_QUALITY, 0.0)
    tau_util = tau - tau_price

    elig_rows = eligible[mi]
    p0 = _QUALITY_CAP * _expit(_MEASURE_LOGIT[None, :] + org_quality[o] + 0.5 * q_re[mi][:, None]
                               + _RACE_QUALITY[race[mi]][:, None] + 0.06 * (ti / 4.0)[:, None])
    met = (at(u_quality) < p0 + tau_q[:, None]).astype(float)
    met[~elig_rows] = np.nan
    tau_quality = np.where(elig_rows, tau_q[:, None], np.nan)

    # ---------------------------------------------------------------- frame
    member_labels = _labels("M", n, _MEMBER_WIDTH)
    org_labels = _labels("ORG", n_o, _ORG_WIDTH)
    qdtype = pd.PeriodDtype("Q")
    nat = np.iinfo(np.int64).min
    entry_q_ord = np.where(contract, q0 + np.nan_to_num(cohort_t, nan=0).astype(np.int64), nat)
    age = np.floor(age0[mi] + ti / 4.0).astype(np.int64)
    risk = np.exp(log_risk_it)
    cols: dict[str, Any] = {
        "member_id": member_labels.take(mi),
        "org_id": org_labels.take(o),
        "quarter": pd.arrays.PeriodArray(q0 + ti.astype(np.int64), dtype=qdtype),
        "year": year.astype(np.int64),
        "t": ti.astype(np.int64),
        "entry_year": entry,
        "entry_quarter": pd.arrays.PeriodArray(entry_q_ord, dtype=qdtype),
        "cohort_t": cohort_t,
        "contract": contract,
        "post": post,
        "aqc": post.astype(np.int64),
        "years_in_contract": k,
        "age": age,
        "female": female[mi],
        "risk_score": risk,
        "race_eth": pd.Categorical.from_codes(race[mi], categories=list(_RACE_LEVELS)),
        "spending": cf + tau,
        "spending_std": cf_std + tau_std,
    }
    for j, cat in enumerate(CATEGORIES):
        cols[f"spend_{cat}"] = cf_cat[:, j] + tau_cat[:, j]
    for j, m in enumerate(MEASURES):
        cols[m] = met[:, j]
    data = pd.DataFrame(cols)

    # ---------------------------------------------------------------- truth
    truth_cols: dict[str, Any] = {
        "unit": mi.astype(np.int64),
        "t": ti.astype(np.int64),
        "year": year.astype(np.int64),
        "entry_year": entry,
        "cohort_t": cohort_t,
        "aqc": post.astype(np.int64),
        "tau_spending": tau,
        "tau_spending_price": tau_price,
        "tau_spending_utilization": tau_util,
        "tau_spending_std": tau_std,
    }
    for j, cat in enumerate(CATEGORIES):
        truth_cols[f"tau_spend_{cat}"] = tau_cat[:, j]
    for j, m in enumerate(MEASURES):
        truth_cols[f"tau_quality_{m}"] = tau_quality[:, j]
    truth_cols["counterfactual_spending"] = cf
    truth_cols["counterfactual_spending_std"] = cf_std
    per_row = pd.DataFrame(truth_cols, index=data.index)
    per_cell = _per_cell(per_row, q0)

    params = {
        "n_members": n, "n_orgs": n_o, "start_year": start_year, "end_year": end_year,
        "cohort_shares": shares, "orgs_per_cohort": dict(zip(shares, counts.tolist())),
        "effect": effect, "constant_effect": float(constant_effect) if effect == "constant" else None,
        "churn": bool(churn), "seed": seed if not isinstance(seed, np.random.Generator) else "Generator",
        "savings_by_year": _GROWING_SAVINGS if effect == "growing" else None,
        "price_share_by_year": _GROWING_PRICE_SHARE if effect == "growing" else _CONSTANT_PRICE_SHARE,
        "quality_by_year": _GROWING_QUALITY if effect == "growing" else _CONSTANT_QUALITY,
        "quality_cap": _QUALITY_CAP,
    }
    truth = AQCTruth(per_row=per_row, per_cell=per_cell, params=params)
    logger.debug("simulate_aqc: %d rows, %d members, %d orgs, effect=%s", n_rows, n, n_o, effect)
    return SimulatedAQC(data=data, truth=truth)


def _per_cell(per_row: pd.DataFrame, q0: int) -> pd.DataFrame:
    """Mean truth per (entry_year, quarter) cell of contracting members."""
    rows = per_row.loc[per_row["entry_year"].notna().to_numpy()]
    tau_cols = [c for c in rows.columns if c.startswith("tau_")]
    grp = rows.groupby(["entry_year", "t"], sort=True)
    out = grp[tau_cols].mean()
    out.insert(0, "n", grp.size())
    for c in tau_cols:
        if c.startswith("tau_quality_"):
            out[f"n_{c[len('tau_quality_'):]}"] = grp[c].count()
    out = out.reset_index()
    cohort_t = grp["cohort_t"].first().to_numpy()
    t = out["t"].to_numpy()
    out.insert(1, "quarter", pd.arrays.PeriodArray(q0 + t.astype(np.int64), dtype=pd.PeriodDtype("Q")))
    out.insert(3, "event_time", (t - cohort_t).astype(np.int64))
    out.insert(4, "post", out["event_time"].to_numpy() >= 0)
    return out
