"""Input checks, covariate design matrices and the propensity-score model (shared by matching and weighting)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._validation import check_columns_arg
from ..errors import DataError, EstimationError, SpecificationError

__all__ = ["Design", "prepare", "fit_logit", "PropensityModel"]


@dataclass(frozen=True)
class Design:
    """Validated inputs: the treatment, the model matrix and the balance matrix.

    ``X_model`` codes factors with treatment contrasts (first level as reference, as R does);
    ``X_balance`` expands every factor into one 0/1 column per level (as MatchIt's balance
    tables do). Both exclude the intercept.
    """

    treat: np.ndarray  # (n,) 0/1 int
    X_model: np.ndarray
    model_names: tuple[str, ...]
    X_balance: np.ndarray
    balance_names: tuple[str, ...]
    balance_binary: np.ndarray  # (p,) bool: all values 0/1
    covariates: tuple[str, ...]
    factors: dict  # column -> levels (tuple)
    index: pd.Index


def _is_factor(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or pd.api.types.is_string_dtype(s.dtype)


def _levels(s: pd.Series) -> tuple:
    if isinstance(s.dtype, pd.CategoricalDtype):
        present = set(s.dropna().unique())
        return tuple(c for c in s.cat.categories if c in present)
    return tuple(sorted(s.dropna().unique(), key=str))


def check_treatment(data: pd.DataFrame, treatment: str) -> np.ndarray:
    if not isinstance(treatment, str):
        raise SpecificationError(f"The 'treatment' parameter must be a column name (str). Got {treatment!r}.")
    if treatment not in data.columns:
        raise DataError(f"Column {treatment!r} not found in data (treatment=). Available columns: {list(data.columns)[:20]}.")
    t = data[treatment]
    n_na = int(t.isna().sum())
    if n_na:
        raise DataError(f"Column {treatment!r}: {n_na} missing values in the treatment. Drop or impute those rows first.")
    vals = set(pd.unique(t))
    if not vals <= {0, 1, True, False}:
        raise DataError(
            f"Column {treatment!r} must be binary (0/1 or bool). Got values {sorted(map(str, vals))[:6]}; "
            f"recode it, e.g. (df[{treatment!r}] == 'yes').astype(int)."
        )
    tr = t.astype(int).to_numpy()
    n1, n0 = int(tr.sum()), int((1 - tr).sum())
    if n1 == 0 or n0 == 0:
        raise DataError(f"Column {treatment!r}: {n1} treated and {n0} control units; matching needs both groups.")
    return tr


def prepare(data: pd.DataFrame, treatment: str, covariates) -> Design:
    """Validate the inputs and build the model and balance matrices (no rows are ever dropped)."""
    if not isinstance(data, pd.DataFrame):
        raise SpecificationError(f"'data' must be a pandas DataFrame. Got {type(data).__name__}.")
    covs = check_columns_arg(covariates, "covariates")
    if not covs:
        raise SpecificationError("The 'covariates' parameter must name at least one column.")
    dup = sorted({c for c in covs if covs.count(c) > 1})
    if dup:
        raise SpecificationError(f"The 'covariates' parameter lists {dup} twice; list each covariate once.")
    missing = [c for c in covs if c not in data.columns]
    if missing:
        raise DataError(f"Covariate column(s) {missing} not found in data. Available columns: {list(data.columns)[:20]}.")
    if treatment in covs:
        raise SpecificationError(f"The treatment column {treatment!r} cannot also be a covariate.")
    tr = check_treatment(data, treatment)
    na = {c: int(data[c].isna().sum()) for c in covs}
    na = {c: k for c, k in na.items() if k}
    if na:
        desc = ", ".join(f"{c!r} ({k} rows)" for c, k in na.items())
        raise DataError(
            f"Missing values in covariate(s) {desc}. Matching needs complete covariates: drop those rows "
            f"(e.g. data.dropna(subset={list(na)})) or impute and add a missingness indicator."
        )
    const = [c for c in covs if data[c].nunique(dropna=True) < 2]
    if const:
        raise DataError(
            f"Covariate(s) {const} are constant in the data (one value); they carry no information for "
            f"the propensity score or balance. Remove them from 'covariates'."
        )
    Xm, mnames, Xb, bnames, binary = [], [], [], [], []
    factors = {}
    for c in covs:
        s = data[c]
        if pd.api.types.is_bool_dtype(s.dtype):
            s = s.astype(int)
        if _is_factor(s):
            levels = _levels(s)
            factors[c] = levels
            codes = np.asarray(pd.Categorical(s, categories=list(levels)).codes)
            for j, lev in enumerate(levels):
                col = (codes == j).astype(float)
                Xb.append(col)
                bnames.append(f"{c}{lev}")
                binary.append(True)
                if j > 0:
                    Xm.append(col)
                    mnames.append(f"{c}{lev}")
        elif pd.api.types.is_numeric_dtype(s.dtype):
            x = s.to_numpy(dtype=float)
            if not np.all(np.isfinite(x)):
                raise DataError(f"Covariate {c!r} has {int((~np.isfinite(x)).sum())} infinite values; recode them.")
            Xm.append(x)
            mnames.append(c)
            Xb.append(x)
            bnames.append(c)
            binary.append(bool(np.all((x == 0) | (x == 1))))
        else:
            raise DataError(f"Covariate {c!r} has dtype {s.dtype}; use a numeric, bool, string or categorical column.")
    return Design(
        treat=tr,
        X_model=np.column_stack(Xm),
        model_names=tuple(mnames),
        X_balance=np.column_stack(Xb),
        balance_names=tuple(bnames),
        balance_binary=np.asarray(binary, dtype=bool),
        covariates=covs,
        factors=factors,
        index=data.index,
    )


@dataclass(frozen=True)
class PropensityModel:
    """A fitted logit propensity model (probability scale)."""

    coef: pd.Series
    ps: np.ndarray
    converged: bool
    n_iter: int


def _separation_culprits(X: np.ndarray, names, treat: np.ndarray) -> list[str]:
    """Regressors whose treated and control ranges do not overlap (they predict treatment perfectly
    on one side), or 0/1 columns present in only one group."""
    out = []
    for j, nm in enumerate(names):
        x = X[:, j]
        x1, x0 = x[treat == 1], x[treat == 0]
        if x1.min() > x0.max() or x1.max() < x0.min():
            out.append(nm)
        elif np.all((x == 0) | (x == 1)):
            if (x1.sum() > 0 and x0.sum() == 0) or (x0.sum() > 0 and x1.sum() == 0):
                out.append(nm)
    return out


def fit_logit(design: Design, max_iter: int = 25, epsilon: float = 1e-8) -> PropensityModel:
    """Logistic regression of the treatment on the covariates by R's ``glm.fit`` IRLS.

    Same starting values (``mustart = (y + 0.5) / 2``), iteration and stopping rule
    (``|dev - dev_old| / (|dev| + 0.1) < epsilon``, ``maxit = 25``) as R, so the propensity
    scores agree with R/MatchIt to rounding error (not merely to glm's tolerance).

    Raises :class:`DataError` under (quasi-)complete separation: fitted probabilities of 0 or 1
    mean some units have no comparable units in the other group.
    """
    X = np.column_stack([np.ones(len(design.treat)), design.X_model])
    names = ("(Intercept)",) + design.model_names
    y = design.treat.astype(float)
    rank = np.linalg.matrix_rank(X)
    if rank < X.shape[1]:
        bad = []
        for j in range(1, X.shape[1]):
            if np.linalg.matrix_rank(X[:, : j + 1]) <= np.linalg.matrix_rank(X[:, :j]):
                bad.append(names[j])
        raise DataError(
            f"Covariate column(s) {bad} are collinear with the other covariates in the propensity model; "
            f"remove them from 'covariates'."
        )

    def deviance(mu):
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(-2 * np.sum(np.where(y == 1, np.log(mu), np.log1p(-mu))))

    mu = (y + 0.5) / 2
    eta = np.log(mu / (1 - mu))
    dev_old = deviance(mu)
    converged = False
    beta = np.zeros(X.shape[1])
    it = 0
    for it in range(1, max_iter + 1):
        mue = mu * (1 - mu)
        z = eta + (y - mu) / mue
        sw = np.sqrt(mue)
        beta = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)[0]
        eta = X @ beta
        mu = 1.0 / (1.0 + np.exp(-eta))
        dev = deviance(mu)
        if abs(dev - dev_old) / (abs(dev) + 0.1) < epsilon:
            converged = True
            break
        dev_old = dev
    eta = X @ beta
    ps = 1.0 / (1.0 + np.exp(-eta))
    eps = 10 * np.finfo(float).eps
    n_extreme = int(np.sum((ps < eps) | (ps > 1 - eps)))
    if n_extreme or not converged or np.max(np.abs(eta)) > 30:
        culprits = _separation_culprits(design.X_model, design.model_names, design.treat)
        who = f" Covariate(s) {culprits} separate the groups." if culprits else ""
        raise DataError(
            f"Perfect separation in the propensity model: {n_extreme} units have fitted propensity 0 or 1 "
            f"(the covariates predict treatment exactly).{who} Units without comparable units in the other "
            f"group cannot be matched: restrict the sample to the region of common support, coarsen or "
            f"drop the separating covariate(s), or use method='exact'/'cem'."
        )
    return PropensityModel(pd.Series(beta, index=list(names)), ps, converged, it)


def check_distance_column(data: pd.DataFrame, col: str, treat: np.ndarray) -> np.ndarray:
    d = data[col]
    if not pd.api.types.is_numeric_dtype(d.dtype):
        raise DataError(f"Distance column {col!r} must be numeric (a propensity score or other score). Got {d.dtype}.")
    n_na = int(d.isna().sum())
    if n_na:
        raise DataError(f"Distance column {col!r}: {n_na} missing values. Every unit needs a score.")
    x = d.to_numpy(dtype=float)
    n_inf = int((~np.isfinite(x)).sum())
    if n_inf:
        raise DataError(f"Distance column {col!r} (distance=): {n_inf} infinite values. Every unit needs a finite score; recode or drop those rows.")
    return x


def ensure(cond: bool, msg: str, exc=EstimationError) -> None:
    if not cond:
        raise exc(msg)
