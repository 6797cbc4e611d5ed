"""Reproducible reports from a declarative spec: data -> data contract -> designs -> HTML + results.

A spec is a YAML (or TOML) file or the same as a Python dict::

    title: AQC evaluation
    data:
      dataset: simulate_aqc          # or mpdta, simulate_palliative; or path: claims.csv / claims.parquet
      params: {seed: 1, n_members: 20000}
    columns:                         # roles shared by every design (a design may override them)
      unit: member_id
      time: quarter
      treatment: aqc
      cohort: entry_quarter
      cluster: org_id
      covariates: [age, female, risk_score]
      group: contract
    designs:
      - name: spending
        design: twfe                 # a name in DESIGNS (twfe, event_study, did_2x2, price_utilization,
                                     # att_gt, detectability, match, stratified_gaps, palliative)
        outcome: spending
        label: Total spending ($ per member-quarter)
        options: {fixed_effects: [org_id, quarter], vcov: CR1}
        also_vcov: [wild]            # other inference on the same fit
      - name: hba1c
        design: twfe
        outcome: hba1c_test
        scale: 100                   # probability -> percentage points (a linear probability model)
        units: percentage points
        subset: nonmissing           # eligible members only (rows excluded are counted)
    figures:
      - {type: group_means, outcome: spending, group: entry_year}
      - {type: coefficients, designs: [hba1c]}
      # also: event_study, power_curves, love / overlap (match, palliative), gaps (stratified_gaps),
      # net_benefit (palliative). Full reference: docs/reports.md
    outputs: {html: index.html, json: results.json, csv: results.csv, manifest: manifest.json}

:func:`build_report` writes a self-contained HTML report (figures inline, every user string
escaped), ``results.json`` and ``results.csv`` (every estimate; byte-identical when the same spec
runs on the same data), the normalised ``spec.yaml`` (re-run it with ``evalkit run``) and
``manifest.json`` (data hash, versions, spec, seeds and the only timestamp).

Security: specs are read with ``yaml.safe_load`` (tags that build Python objects are rejected)
and must stay small once YAML aliases are expanded; nothing from the inputs is unpickled or
evaluated; output names cannot leave ``out_dir`` nor name the input data file; the HTML template
autoescapes every value; figures are drawn with mathtext off (``$`` is shown as typed); text cells
of ``results.csv`` that a spreadsheet would run as a formula get a leading ``'``. Every output is
built in memory and then moved into place (manifest last), so a failed run leaves the previous
report as it was.
"""
from __future__ import annotations

import base64
import contextlib
import copy
import datetime as _dt
import hashlib
import inspect
import io
import json
import logging
import math
import os
import platform
import re
import reprlib
import secrets
import sys
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from .._progress import progress_bar, progress_scope
from .._version import __version__
from ..errors import DataError, EvalkitError, SpecificationError

__all__ = [
    "build_report",
    "load_spec",
    "normalize_spec",
    "load_data",
    "validate_data",
    "demo_spec",
    "register_design",
    "DESIGNS",
    "DesignSpec",
    "ReportResult",
]

logger = logging.getLogger(__name__)

#: Version of the results.json layout.
RESULTS_FORMAT = 1
#: Significant digits written to results.json/csv (well beyond any reported precision; guards
#: the files against last-bit differences in threaded BLAS reductions).
_DIGITS = 12

_TOP_KEYS = ("title", "description", "data", "columns", "designs", "figures", "outputs", "seed")
_DATA_KEYS = ("dataset", "params", "path", "periods")
_ROLE_KEYS = ("unit", "time", "treatment", "cohort", "group", "post", "cluster", "weights", "covariates")
_DESIGN_KEYS = ("name", "design", "outcome", "label", "units", "scale", "subset", "options", "also_vcov", "relative",
                "columns")
_RELATIVE = ("pre_mean", "counterfactual_mean")
#: Designs whose estimates depend on random draws, and what is drawn (a seed is required).
_RANDOM_DESIGNS = {"palliative": "the controls' pseudo-index months"}
_FIGURE_KEYS = {
    "group_means": ("type", "title", "outcome", "time", "group", "entry", "ylabel", "caption"),
    "coefficients": ("type", "title", "designs", "terms", "xlabel", "caption"),
    "event_study": ("type", "title", "design", "ylabel", "caption"),
    "power_curves": ("type", "title", "design", "system", "group", "caption"),
    "love": ("type", "title", "design", "threshold", "caption"),
    "overlap": ("type", "title", "design", "caption"),
    "gaps": ("type", "title", "design", "systems", "caption"),
    "net_benefit": ("type", "title", "design", "parameter", "caption"),
}
#: Figure types drawn from one design of the given kind.
_FIGURE_DESIGN = {"love": ("match", "palliative"), "overlap": ("match", "palliative"), "gaps": ("stratified_gaps",),
                  "net_benefit": ("palliative",)}
_OUTPUT_KEYS = ("html", "json", "csv", "manifest", "spec")
_DEFAULT_OUTPUTS = {"html": "index.html", "json": "results.json", "csv": "results.csv",
                    "manifest": "manifest.json", "spec": "spec.yaml"}
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")
_DATASETS = ("simulate_aqc", "mpdta", "simulate_palliative")
_VERSIONED = ("numpy", "pandas", "scipy", "statsmodels", "linearmodels", "matplotlib", "jinja2", "PyYAML")


# ----------------------------------------------------------------------------------------------
# design registry


@dataclass(frozen=True)
class DesignSpec:
    """A design the report can run.

    Attributes
    ----------
    name : str
        Key used in specs (``design: twfe``).
    func : callable
        The estimator, called as ``func(data, outcome=..., <roles>, **options)`` and returning a
        result with ``to_frame()``, ``conventions`` and ``sample`` (an ``EffectResult``).
    roles : tuple of str
        Column roles (from ``columns``) passed as keyword arguments when set.
    required : tuple of str
        Roles that must be set.
    contract : callable
        ``contract(roles) -> dict`` of :func:`evalkit.data.validate_panel` arguments (without
        ``data``/``outcome``): the data-contract check of ``evalkit validate``.
    title : str
        Human-readable name for the report.
    options : tuple of str
        Allowed keys of the design's ``options:`` in a spec.
    check : callable or None
        ``check(frame, design, roles) -> (message, summary, warnings)`` replacing the panel data
        contract for designs whose data are not a panel (raise an ``EvalkitError`` on bad data).
    checks : str
        What the data-contract check of this design verifies (stated in the report).
    """

    name: str
    func: Callable[..., Any]
    roles: tuple[str, ...]
    required: tuple[str, ...]
    contract: Callable[[dict], dict]
    title: str
    options: tuple[str, ...] = ()
    check: Callable[[pd.DataFrame, dict, dict], tuple[str, dict, list[str]]] | None = None
    checks: str = ""


#: What evalkit.data.validate_panel verifies (designs without their own check).
PANEL_CHECKS = ("evalkit.data.validate_panel (the checks that apply to the roles given): column roles present, types, "
                "missing values, duplicate unit-periods, absorbing treatment, pre-periods, untreated units, clusters")


#: Registered designs by name. Add one with :func:`register_design`.
DESIGNS: dict[str, DesignSpec] = {}


def register_design(name: str, func: Callable[..., Any], *, roles: tuple[str, ...], required: tuple[str, ...],
                    contract: Callable[[dict], dict], title: str, options: tuple[str, ...] | None = None,
                    check: Callable[..., tuple[str, dict, list[str]]] | None = None, checks: str | None = None) -> DesignSpec:
    """Make a design available to specs as ``design: <name>`` (replaces an existing entry).

    ``options`` defaults to the keyword-only parameters of ``func`` other than ``outcome`` and
    the roles. ``checks`` describes the data-contract check for the report (default: the
    ``check`` function's docstring summary, or :data:`PANEL_CHECKS` without one).
    """
    if not _NAME_RE.match(name):
        raise SpecificationError(f"Design name {name!r} must be letters, digits, '_', '.', '-'.")
    if options is None:
        params = inspect.signature(func).parameters
        reserved = {"data", "outcome"} | set(roles)
        options = tuple(p for p in params if p not in reserved and params[p].kind == inspect.Parameter.KEYWORD_ONLY)
    if checks is None:
        doc = inspect.getdoc(check) if check is not None else None
        checks = " ".join(doc.split("\n\n")[0].split()) if doc else ("custom check" if check is not None else PANEL_CHECKS)
    spec = DesignSpec(name, func, tuple(roles), tuple(required), contract, title, tuple(options), check, checks)
    DESIGNS[name] = spec
    return spec


def _panel_contract(treatment_role: str) -> Callable[[dict], dict]:
    def contract(r: dict) -> dict:
        out = {"unit": r.get("unit"), "time": r.get("time"), "cluster": r.get("cluster") or r.get("unit"),
               "weights": r.get("weights"), "covariates": r.get("covariates") or ()}
        out[treatment_role] = r.get(treatment_role)
        return out

    return contract


def _price_utilization(data: pd.DataFrame, *, outcome: str, standardized: str, **kwargs):
    from ..did import price_utilization

    return price_utilization(data, actual=outcome, standardized=standardized, **kwargs)


_PANEL_ROLES = ("unit", "time", "treatment", "cluster", "weights", "covariates")


def _register_builtin_designs() -> None:
    from .. import did

    register_design("twfe", did.twfe, roles=_PANEL_ROLES, required=("unit", "time", "treatment"),
                    contract=_panel_contract("treatment"), title="Two-way fixed-effects DiD")
    if hasattr(did, "event_study"):
        register_design("event_study", did.event_study,
                        roles=("unit", "time", "cohort", "cluster", "weights", "covariates"),
                        required=("unit", "time", "cohort"), contract=_panel_contract("cohort"),
                        title="Event study (TWFE leads and lags)")
    if hasattr(did, "price_utilization"):
        register_design("price_utilization", _price_utilization, roles=_PANEL_ROLES, required=("unit", "time", "treatment"),
                        contract=_panel_contract("treatment"),
                        title="Price vs utilization decomposition (TWFE on actual and price-standardised spending)",
                        options=("standardized", "fixed_effects", "ssc", "level", "dropna"))
    if hasattr(did, "did_2x2"):
        register_design("did_2x2", did.did_2x2, roles=("group", "time", "post", "cluster", "weights", "covariates"),
                        required=("group", "time"),
                        contract=lambda r: {"time": r.get("time"), "group": r.get("group"), "cluster": r.get("cluster"),
                                            "weights": r.get("weights"),
                                            "covariates": list(r.get("covariates") or ()) + ([r["post"]] if r.get("post") else [])},
                        title="2x2 DiD (repeated cross-sections)")
    from .designs import att_gt_design, detectability_design

    register_design("att_gt", att_gt_design, roles=("unit", "time", "cohort", "cluster", "weights", "covariates"),
                    required=("unit", "time", "cohort"), contract=_panel_contract("cohort"),
                    title="Staggered adoption: Callaway-Sant'Anna ATT(g,t) with aggregations")
    register_design("detectability", detectability_design, roles=(), required=(), contract=lambda r: {},
                    title="Equity measures: detectability of a gap reduction (MDE, power, candidates)",
                    check=_baseline_check,
                    checks=("baseline table of group rates (evalkit.equity.detectability's checks): columns system, "
                            "measure, group, denominator, rate, higher_is_better present; numeric without missing "
                            "values; rates in [0, 1]; non-negative denominators; one row per system x measure x group; "
                            "higher_is_better constant within a system x measure; reference group present; small cells "
                            "counted"))
    from .designs import _match_check, match_design, stratified_gaps_design

    register_design("match", match_design, roles=("treatment", "covariates"), required=("treatment", "covariates"),
                    contract=lambda r: {}, check=_match_check,
                    checks=("one row per unit: treatment, covariate, outcome and exact-matching columns present; "
                            "treatment 0/1 without missing values, with treated and control units; covariates without "
                            "missing values; missing outcomes counted"),
                    title="Matched comparison (evalkit.matching, R MatchIt 4.7 conventions): ATT on the matched sample")
    register_design("stratified_gaps", stratified_gaps_design, roles=(), required=(), contract=lambda r: {},
                    check=_gaps_check, title="Equity: rates and gaps by race/ethnicity per system, with small-cell suppression",
                    checks=("outcome, group and system columns present; binary (0/1) outcome; missing outcomes an error "
                            "unless options.dropna or subset: nonmissing (then counted); no missing group; reference "
                            "group present"))
    from .designs import _palliative_check, palliative_design

    register_design("palliative", palliative_design, roles=("unit", "time", "treatment", "covariates"),
                    required=("unit", "time", "treatment"), contract=lambda r: {}, check=_palliative_check,
                    title="Home palliative care: index-date matched PMPM savings in the last months of life and ACO net "
                          "benefit (evalkit.palliative)",
                    checks=("evalkit.palliative.analysis_frame: columns present, baseline columns constant within "
                            "patient, 0/1 enrollment with enrolled patients and controls, a valid index month for every "
                            "enrolled patient, whole months before death, no duplicate patient-months, every month of "
                            "the look-back and outcome windows present"))


def _gaps_check(data: pd.DataFrame, d: dict, roles: dict) -> tuple[str, dict, list[str]]:
    """Data contract of the stratified_gaps design: a binary measure, the group and system columns."""
    o = d["options"]
    group, system, y = o.get("group", "race_eth"), o.get("system"), d["outcome"]
    wanted = [("outcome", y), ("group", group)] + ([("system", system)] if system else [])
    missing = [f"{c!r} (the {r})" for r, c in wanted if c not in data.columns]
    if missing:
        raise DataError(f"Column(s) not found in data: {', '.join(missing)}. Available columns: {[str(c) for c in data.columns][:30]}.")
    frame, _ = _prepare(data, {**d, "scale": 1})
    v = frame[y]
    n_miss = int(v.isna().sum())
    if n_miss and not o.get("dropna", False):
        raise DataError(f"Column {y!r}: {n_miss} missing value(s); set options.dropna: true to exclude ineligible rows "
                        f"(counted), or subset: nonmissing.")
    v = v.dropna()
    if not np.isin(v.astype(float).to_numpy(), (0.0, 1.0)).all():
        raise DataError(f"Column {y!r} must be binary (0/1 or boolean) for stratified rates.")
    if frame[group].isna().any():
        raise DataError(f"Column {group!r}: {int(frame[group].isna().sum())} missing value(s); code them (e.g. 'Unknown').")
    ref = o.get("reference", "White")
    if ref not in set(frame[group].astype(str)):
        raise DataError(f"reference={ref!r} is not in column {group!r} (values: {sorted(map(str, frame[group].dropna().unique()))[:20]}).")
    n_sys = int(frame[system].nunique()) if system else 1
    summ = {"n_obs": int(len(v)), "n_systems": n_sys, "n_groups": int(frame[group].nunique())}
    warns = [f"{n_miss} row(s) with missing {y!r} excluded (not eligible)."] if n_miss else []
    return f"{len(v):,} patients with {y!r}, {summ['n_groups']} groups in {n_sys} system(s)", summ, warns


def _baseline_check(data: pd.DataFrame, d: dict, roles: dict) -> tuple[str, dict, list[str]]:
    """Data contract of the detectability design: a long baseline table of group rates."""
    from ..equity.detect import REQUIRED_COLUMNS, _validate

    frame = data if d["outcome"] == "rate" else data.rename(columns={d["outcome"]: "rate"})
    if d["outcome"] != "rate" and d["outcome"] not in data.columns:
        raise DataError(f"Column {d['outcome']!r} (the rate of design {d['name']!r}) not found in data.")
    df = _validate(frame)
    ref = d["options"].get("reference_group", "White")
    if ref not in set(df["group"]):
        raise DataError(f"reference_group={ref!r} is not in column 'group' (groups: {sorted(map(str, df['group'].unique()))}).")
    summ = {"n_obs": int(len(df)), "n_systems": int(df["system"].nunique()), "n_measures": int(df["measure"].nunique()),
            "n_groups": int(df["group"].nunique())}
    small = int((df["denominator"] < d["options"].get("min_denominator", 11)).sum())
    warns = [f"{small} cell(s) below the minimum denominator are suppressed."] if small else []
    msg = (f"{len(df):,} rows: {summ['n_systems']} systems x {summ['n_measures']} measures x {summ['n_groups']} groups "
           f"(columns {list(REQUIRED_COLUMNS)})")
    return msg, summ, warns


_register_builtin_designs()


# ----------------------------------------------------------------------------------------------
# spec loading and normalisation


#: Limits on a loaded spec, counted with YAML aliases expanded (a few hundred values is typical):
#: a small file whose nested aliases expand to millions of values is rejected before anything
#: walks, copies or prints it.
_MAX_SPEC_NODES = 100_000
_MAX_SPEC_CHARS = 5_000_000

_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 80, 80, 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3


def _r(v: Any) -> str:
    """``repr`` of a spec value for an error message, truncated (long strings, big or deep containers)."""
    return _REPR.repr(v)


def _check_spec_size(obj: Any, where: str) -> None:
    """Raise when the spec, aliases expanded, holds more than _MAX_SPEC_NODES values or _MAX_SPEC_CHARS of text."""
    nodes = chars = 0
    stack = [obj]
    while stack:
        x = stack.pop()
        nodes += 1
        if isinstance(x, str):
            chars += len(x)
        elif isinstance(x, Mapping):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, (list, tuple, set, frozenset)):
            stack.extend(x)
        if nodes > _MAX_SPEC_NODES or chars > _MAX_SPEC_CHARS:
            raise SpecificationError(
                f"Spec {where} is too large: more than {_MAX_SPEC_NODES:,} values or {_MAX_SPEC_CHARS:,} characters of "
                f"text once YAML aliases (*name) are expanded. A report spec needs far fewer; remove the anchors and "
                f"aliases that repeat content (a recursive or nested alias 'bomb' is rejected this way)."
            )


def _yaml_error(path: str, exc: Exception) -> SpecificationError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if "python/" in str(exc) or "!!python" in str(exc) or "constructor for the tag" in str(exc):
        tag = re.search(r"tag '([^']+)'", str(exc))
        what = f"tag {tag.group(1)!r}" if tag else "a YAML tag"
        return SpecificationError(
            f"Spec {path}{where}: {what} is not allowed. Specs are plain data (mappings, lists, strings, numbers) "
            f"read with yaml.safe_load; tags that construct Python objects are rejected. Remove the tag."
        )
    return SpecificationError(f"Spec {path}{where}: invalid YAML: {problem}.")


def load_spec(spec: Mapping | str | Path) -> tuple[dict, Path | None]:
    """Read a spec (dict, YAML or TOML file) into a plain dict; returns ``(spec, spec_dir)``.

    YAML is parsed with ``yaml.safe_load`` only. Relative data paths in a spec file are relative
    to the file's folder (``spec_dir``); in a dict, to the working directory (``spec_dir=None``).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    SpecificationError
        The file is not UTF-8, not valid YAML/TOML, uses a Python tag, is not a mapping, or is
        too large once YAML aliases are expanded.
    """
    if isinstance(spec, Mapping):
        _check_spec_size(spec, "(dict)")
        return copy.deepcopy(dict(spec)), None
    if not isinstance(spec, (str, Path)):
        raise SpecificationError(f"A spec must be a dict or the path of a YAML/TOML file. Got {type(spec).__name__}.")
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"Spec file not found: {str(path)!r}.")
    if path.is_dir():
        raise SpecificationError(f"Spec {str(path)!r} is a directory; give the YAML/TOML file.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecificationError(
            f"Spec {str(path)!r} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start}); "
            f"give a YAML or TOML file saved as UTF-8."
        ) from None
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ModuleNotFoundError:
                raise SpecificationError("TOML specs need Python >= 3.11 (or `pip install tomli`); or write the spec in YAML.") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecificationError(f"Spec {str(path)!r}: invalid TOML: {exc}.") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise _yaml_error(repr(str(path)), exc) from None
    _check_spec_size(data, repr(str(path)))
    if not isinstance(data, dict):
        raise SpecificationError(f"Spec {str(path)!r} must be a mapping (keys such as data:, columns:, designs:). Got {type(data).__name__}.")
    return data, path.resolve().parent


def _check_keys(d: Any, allowed, where: str) -> dict:
    if not isinstance(d, Mapping):
        raise SpecificationError(f"Spec {where} must be a mapping. Got {type(d).__name__}: {_r(d)}.")
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise SpecificationError(f"Spec {where}: unknown key(s) {_r(unknown)}. Allowed: {list(allowed)}.")
    return dict(d)


def _check_str(v: Any, where: str, *, allow_none: bool = False) -> str | None:
    if v is None and allow_none:
        return None
    if not isinstance(v, str) or not v:
        raise SpecificationError(f"Spec {where} must be a non-empty string. Got {_r(v)}.")
    return v


def _roles(d: Any, where: str) -> dict:
    d = _check_keys(d or {}, _ROLE_KEYS, where)
    out = {}
    for k, v in d.items():
        if v is None:
            continue
        if k == "covariates":
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
                raise SpecificationError(f"Spec {where}.covariates must be a list of column names. Got {_r(v)}.")
            out[k] = list(v)
        elif k == "cluster" and isinstance(v, list):
            if not all(isinstance(c, str) for c in v):
                raise SpecificationError(f"Spec {where}.cluster must be a column name or a list of names. Got {_r(v)}.")
            out[k] = list(v)
        else:
            out[k] = _check_str(v, f"{where}.{k}")
    return out


def normalize_spec(spec: Mapping) -> dict:
    """Check a spec and fill in defaults; returns a new plain dict (the form saved in the manifest).

    Raises :class:`~evalkit.SpecificationError` naming the offending key, with the allowed values.
    """
    s = _check_keys(spec, _TOP_KEYS, "(top level)")
    out: dict[str, Any] = {}
    out["title"] = _check_str(s.get("title", "evalkit report"), "title")
    out["description"] = _check_str(s.get("description"), "description", allow_none=True)
    seed = s.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise SpecificationError(f"Spec seed must be a non-negative integer. Got {_r(seed)}.")
    out["seed"] = seed

    if "data" not in s:
        raise SpecificationError(f"Spec needs a data: section (dataset: {' | '.join(_DATASETS)}, or path: file.csv).")
    data = _check_keys(s["data"], _DATA_KEYS, "data")
    if ("dataset" in data) == ("path" in data):
        raise SpecificationError(f"Spec data: give exactly one of dataset: ({', '.join(_DATASETS)}) or path: (CSV/Parquet file).")
    dn: dict[str, Any] = {}
    if "dataset" in data:
        if data["dataset"] not in _DATASETS:
            raise SpecificationError(f"Spec data.dataset must be one of {list(_DATASETS)}. Got {_r(data['dataset'])}.")
        dn["dataset"] = data["dataset"]
        params = _check_keys(data.get("params") or {}, _dataset_params(data["dataset"]), "data.params")
        if seed is not None and "seed" in _dataset_params(data["dataset"]) and "seed" not in params:
            params["seed"] = seed
        dn["params"] = params
    else:
        p = _check_str(data["path"], "data.path")
        if Path(p).suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise SpecificationError(f"Spec data.path must be a .csv or .parquet file. Got {_r(p)}.")
        dn["path"] = p
        if "params" in data:
            raise SpecificationError("Spec data.params applies to built-in datasets only; remove it for a file.")
    periods = data.get("periods") or {}
    if not isinstance(periods, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in periods.items()):
        raise SpecificationError(f"Spec data.periods must map column names to a period frequency (e.g. {{quarter: Q}}). Got {_r(periods)}.")
    if periods:
        dn["periods"] = dict(periods)
    out["data"] = dn

    out["columns"] = _roles(s.get("columns"), "columns")

    designs = s.get("designs")
    if not isinstance(designs, list) or not designs:
        raise SpecificationError(f"Spec designs: must be a non-empty list of designs (each with name, design, outcome). Available designs: {sorted(DESIGNS)}.")
    names: set[str] = set()
    out["designs"] = []
    for i, d in enumerate(designs):
        where = f"designs[{i}]"
        d = _check_keys(d, _DESIGN_KEYS, where)
        name = d.get("name") or f"design{i + 1}"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise SpecificationError(f"Spec {where}.name must be letters, digits, '_', '.', '-' (at most 64). Got {_r(name)}.")
        if name in names:
            raise SpecificationError(f"Spec {where}.name {name!r} is used twice; design names must be unique.")
        names.add(name)
        where = f"designs[{i}] ({name})"
        kind = d.get("design")
        if kind not in DESIGNS:
            raise SpecificationError(f"Spec {where}.design must be one of {sorted(DESIGNS)}. Got {_r(kind)}.")
        scale = d.get("scale", 1)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale == 0:
            raise SpecificationError(f"Spec {where}.scale must be a non-zero number (100 turns a probability into percentage points). Got {_r(scale)}.")
        subset = d.get("subset")
        if subset is not None and subset != "nonmissing":
            if not isinstance(subset, Mapping) or not subset or not all(isinstance(k, str) for k in subset):
                raise SpecificationError(f"Spec {where}.subset must be 'nonmissing' or a mapping {{column: value or [values]}}. Got {_r(subset)}.")
            subset = {k: (list(v) if isinstance(v, list) else v) for k, v in subset.items()}
        options = d.get("options") or {}
        if not isinstance(options, Mapping):
            raise SpecificationError(f"Spec {where}.options must be a mapping. Got {_r(options)}.")
        _check_options(kind, dict(options), where)
        also = d.get("also_vcov") or []
        if isinstance(also, str):
            also = [also]
        if not isinstance(also, list) or not all(isinstance(v, str) for v in also):
            raise SpecificationError(f"Spec {where}.also_vcov must be a list of vcov names (e.g. [CR2, wild]). Got {_r(also)}.")
        relative = d.get("relative")
        if relative is not None and relative not in _RELATIVE:
            raise SpecificationError(f"Spec {where}.relative must be one of {list(_RELATIVE)} (the denominator of the percent effect). Got {_r(relative)}.")
        if relative is not None and kind != "twfe":
            raise SpecificationError(f"Spec {where}.relative applies to design 'twfe' only.")
        dd = {
            "name": name,
            "design": kind,
            "outcome": _check_str(d.get("outcome"), f"{where}.outcome"),
            "label": _check_str(d.get("label") or d.get("outcome"), f"{where}.label"),
            "units": _check_str(d.get("units"), f"{where}.units", allow_none=True),
            "scale": scale,
            "subset": subset,
            "options": dict(options),
            "also_vcov": list(also),
            "relative": relative,
            "columns": _roles(d.get("columns"), f"{where}.columns"),
        }
        uses_seed = dd["options"].get("vcov") == "wild" or "wild" in dd["also_vcov"] or kind in _RANDOM_DESIGNS
        if seed is not None and uses_seed and "seed" in DESIGNS[kind].options and "seed" not in dd["options"]:
            dd["options"]["seed"] = seed
        if kind in _RANDOM_DESIGNS and dd["options"].get("seed") is None:
            raise SpecificationError(f"Spec {where}: design {kind!r} draws random numbers ({_RANDOM_DESIGNS[kind]}); set "
                                     f"options.seed (or a top-level seed:) so that the report is reproducible.")
        roles = {**out["columns"], **dd["columns"]}
        missing = [r for r in DESIGNS[kind].required if not roles.get(r)]
        if missing:
            raise SpecificationError(f"Spec {where}: design {kind!r} needs the column role(s) {missing}; set them under columns:.")
        out["designs"].append(dd)

    figures = s.get("figures")
    out["figures"] = _default_figures(out) if figures is None else [_figure(f, i, out, names) for i, f in enumerate(figures or [])]
    outputs = _check_keys(s.get("outputs") or {}, _OUTPUT_KEYS, "outputs")
    on = dict(_DEFAULT_OUTPUTS)
    for k, v in outputs.items():
        on[k] = None if v in (None, False) else _safe_name(v, f"outputs.{k}")
    for k in ("json", "csv", "manifest"):
        if not on.get(k):
            raise SpecificationError(f"Spec outputs.{k} cannot be switched off: every report carries its results and manifest.")
    used = [v for v in on.values() if v]
    if len(set(used)) != len(used):
        raise SpecificationError(f"Spec outputs: two outputs share a file name: {used}.")
    for a in used:
        for b in used:
            if b.startswith(a + "/"):
                raise SpecificationError(f"Spec outputs: {a!r} is both a file and the folder of {b!r}; rename one.")
    out["outputs"] = on
    return out


def _dataset_params(name: str) -> tuple[str, ...]:
    if name == "simulate_aqc":
        from ..data.synthetic import simulate_aqc

        return tuple(inspect.signature(simulate_aqc).parameters)
    if name == "simulate_palliative":
        from ..palliative import simulate_palliative

        return tuple(inspect.signature(simulate_palliative).parameters)
    return ()


def _check_options(kind: str, options: dict, where: str) -> None:
    allowed = list(DESIGNS[kind].options)
    reserved = {"data", "outcome"} | set(DESIGNS[kind].roles)
    bad = [k for k in options if k not in allowed]
    if bad:
        hint = " Column roles go under columns:." if any(k in reserved for k in bad) else ""
        raise SpecificationError(f"Spec {where}.options: unknown option(s) {_r(bad)} for design {kind!r}. Allowed: {allowed}.{hint}")
    for k, v in options.items():
        if isinstance(v, list):
            options[k] = list(v)


def _figure(f: Any, i: int, spec: dict, names: set[str]) -> dict:
    where = f"figures[{i}]"
    if not isinstance(f, Mapping) or f.get("type") not in _FIGURE_KEYS:
        raise SpecificationError(f"Spec {where} must be a mapping with type: one of {list(_FIGURE_KEYS)}. Got {_r(f)}.")
    f = _check_keys(f, _FIGURE_KEYS[f["type"]], where)
    for k in ("title", "caption", "ylabel", "xlabel", "outcome", "time", "group", "design", "system"):
        if k in f:
            _check_str(f[k], f"{where}.{k}")
    if f["type"] == "group_means":
        if "outcome" not in f:
            raise SpecificationError(f"Spec {where}: a group_means figure needs outcome:.")
        f.setdefault("time", spec["columns"].get("time"))
        f.setdefault("group", spec["columns"].get("group"))
        if not f["time"] or not f["group"]:
            raise SpecificationError(f"Spec {where}: a group_means figure needs time: and group: (or columns.time/columns.group).")
        entry = f.get("entry")
        if entry is not None and not isinstance(entry, (str, int, float, Mapping)):
            raise SpecificationError(f"Spec {where}.entry must be a value or a mapping {{group: entry}}. Got {_r(entry)}.")
        if isinstance(entry, Mapping):
            f["entry"] = {k: v for k, v in entry.items()}
    elif f["type"] == "coefficients":
        ds = f.get("designs")
        if isinstance(ds, str):
            ds = [ds]
        if not isinstance(ds, list) or not ds or any(d not in names for d in ds):
            raise SpecificationError(f"Spec {where}.designs must list design names from designs:. Got {_r(ds)}; known: {sorted(names)}.")
        f["designs"] = list(ds)
        if "terms" in f and (not isinstance(f["terms"], list) or not all(isinstance(t, str) for t in f["terms"])):
            raise SpecificationError(f"Spec {where}.terms must be a list of term names. Got {_r(f['terms'])}.")
    elif f["type"] in _FIGURE_DESIGN:
        d = f.get("design")
        kinds = {x["name"]: x["design"] for x in spec["designs"]}
        if d not in kinds or kinds[d] not in _FIGURE_DESIGN[f["type"]]:
            raise SpecificationError(f"Spec {where}.design must name a {' or '.join(_FIGURE_DESIGN[f['type']])} design. Got {_r(d)}.")
        if f["type"] == "net_benefit":
            dd = next(x for x in spec["designs"] if x["name"] == d)
            if dd["options"].get("program_cost") is None:
                raise SpecificationError(f"Spec {where}: design {d!r} has no options.program_cost, so no net benefit to plot.")
            if "parameter" in f and f["parameter"] not in _NB_PARAMETERS:
                raise SpecificationError(f"Spec {where}.parameter must be one of {list(_NB_PARAMETERS)} (or omitted for "
                                         f"the tornado chart). Got {_r(f['parameter'])}.")
        if "threshold" in f and (isinstance(f["threshold"], bool) or not isinstance(f["threshold"], (int, float))):
            raise SpecificationError(f"Spec {where}.threshold must be a number (e.g. 0.1). Got {_r(f['threshold'])}.")
        if "systems" in f:
            sy = [f["systems"]] if isinstance(f["systems"], (str, int)) else f["systems"]
            if not isinstance(sy, list) or not sy:
                raise SpecificationError(f"Spec {where}.systems must be a list of system values. Got {_r(f['systems'])}.")
            f["systems"] = [str(x) for x in sy]
    elif f["type"] == "power_curves":
        d = f.get("design")
        kinds = {x["name"]: x["design"] for x in spec["designs"]}
        if d not in kinds or kinds[d] != "detectability":
            raise SpecificationError(f"Spec {where}.design must name a detectability design. Got {_r(d)}.")
    else:
        d = f.get("design")
        kinds = {x["name"]: x["design"] for x in spec["designs"]}
        if d not in kinds or kinds[d] not in _EVENT_STUDY_DESIGNS:
            raise SpecificationError(f"Spec {where}.design must name an event_study or att_gt design. Got {_r(d)}.")
        if kinds[d] == "att_gt":
            dd = next(x for x in spec["designs"] if x["name"] == d)
            aggs = dd["options"].get("aggregations", ("simple", "group", "dynamic"))
            if "dynamic" not in ([aggs] if isinstance(aggs, str) else list(aggs)):
                raise SpecificationError(f"Spec {where}: design {d!r} needs the 'dynamic' aggregation for an event-study figure.")
    return dict(f)


_EVENT_STUDY_DESIGNS = ("event_study", "att_gt")
_NB_PARAMETERS = ("payer_share", "months_enrolled", "program_cost", "ffs_share", "savings_pmpm")


def _default_figures(spec: dict) -> list[dict]:
    figs: list[dict] = []
    for d in spec["designs"]:
        aggs = d["options"].get("aggregations", ("simple", "group", "dynamic"))
        if d["design"] == "event_study" or (d["design"] == "att_gt" and "dynamic" in ([aggs] if isinstance(aggs, str) else list(aggs))):
            figs.append({"type": "event_study", "design": d["name"], "title": d["label"]})
        elif d["design"] == "detectability":
            figs.append({"type": "power_curves", "design": d["name"], "title": f"{d['label']}: power curves"})
        elif d["design"] == "match":
            figs.append({"type": "love", "design": d["name"], "title": f"{d['label']}: covariate balance"})
            if d["options"].get("method", "nearest") in ("nearest", "optimal", "subclass") \
                    and d["options"].get("distance", "logit") != "mahalanobis":
                figs.append({"type": "overlap", "design": d["name"], "title": f"{d['label']}: propensity-score overlap"})
        elif d["design"] == "stratified_gaps":
            figs.append({"type": "gaps", "design": d["name"], "title": f"{d['label']}: gaps by group"})
        elif d["design"] == "palliative":
            figs.append({"type": "love", "design": d["name"], "title": f"{d['label']}: covariate balance"})
            figs.append({"type": "overlap", "design": d["name"], "title": f"{d['label']}: propensity-score overlap"})
            if d["options"].get("program_cost") is not None:
                figs.append({"type": "net_benefit", "design": d["name"], "title": f"{d['label']}: net benefit sensitivity"})
    return figs


def _safe_name(name: Any, where: str) -> str:
    """An output file name that stays inside the output folder (no absolute paths, no '..')."""
    if not isinstance(name, str) or not name.strip():
        raise SpecificationError(f"Spec {where} must be a file name. Got {_r(name)}.")
    if "\x00" in name or "\\" in name:
        raise SpecificationError(f"Spec {where}: {name!r} contains a NUL or backslash; use a plain relative file name.")
    p = Path(name)
    if p.is_absolute() or name.startswith(("/", "~")) or ".." in p.parts or re.match(r"^[A-Za-z]:", name):
        raise SpecificationError(
            f"Spec {where}: {name!r} would write outside the output folder; use a relative name without '..' (e.g. 'index.html')."
        )
    if not p.parts or p.name in ("", "."):
        raise SpecificationError(f"Spec {where}: {_r(name)} names the output folder itself; give a file name (e.g. 'index.html').")
    return p.as_posix()


def _inside(out_dir: Path, name: str) -> Path:
    try:
        root = out_dir.resolve()
        target = (root / name).resolve()
    except (RuntimeError, OSError) as exc:  # a symlink loop (RuntimeError before Python 3.13, OSError after)
        raise SpecificationError(f"Output {name!r} in {str(out_dir)!r} cannot be resolved ({' '.join(str(exc).split())}); "
                                 f"remove the looping symlink or choose another --out folder.") from None
    if target == root:
        raise SpecificationError(f"Output {name!r} is the output folder {str(root)!r} itself; give a file name.")
    if root not in target.parents:
        raise SpecificationError(f"Output {name!r} resolves outside the output folder {str(root)!r}.")
    return target


def _check_out_paths(out_dir: Path, files: dict[str, Path]) -> None:
    """Fail before any estimation when an output cannot be written: the folder (or a folder on
    the way to an output) is an existing file, or an output is an existing folder."""
    for q in (out_dir, *out_dir.parents):
        if q.is_symlink() or q.exists():
            if not q.is_dir():
                raise SpecificationError(f"Output folder {str(out_dir)!r}: {str(q)!r} is an existing file, not a folder; "
                                         f"choose another --out folder.")
            break
    for kind, target in files.items():
        if target.is_dir():
            raise SpecificationError(f"Output {kind} {str(target)!r} is an existing folder; choose another file name "
                                     f"(outputs.{kind}).")
        for q in target.parents:
            if q.exists():
                if not q.is_dir():
                    raise SpecificationError(f"Output {kind} {str(target)!r}: {str(q)!r} is an existing file, not a folder.")
                break


def _check_not_input(data_spec: Mapping, spec_dir: Path | None, files: dict[str, Path]) -> None:
    """Refuse outputs that would overwrite the input data file."""
    if "path" not in data_spec:
        return
    raw = Path(data_spec["path"])
    src = raw if raw.is_absolute() or spec_dir is None else spec_dir / raw
    try:
        src_r = src.resolve()
    except (RuntimeError, OSError):
        return  # load_data reports the unreadable path
    for kind, target in files.items():
        same = target == src_r
        if not same and target.exists() and src.exists():
            try:
                same = os.path.samefile(target, src)
            except OSError:
                same = False
        if same:
            raise SpecificationError(f"Output {kind} {str(target)!r} is the input data file (data.path); choose another "
                                     f"--out folder or outputs.{kind} name.")


# ----------------------------------------------------------------------------------------------
# data


@dataclass
class LoadedData:
    frame: pd.DataFrame
    source: dict
    truth: Any = None
    warnings: list[str] = field(default_factory=list)


def _frame_sha256(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in df.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_data(data_spec: Mapping, spec_dir: Path | None = None, *, path_override: str | Path | None = None) -> LoadedData:
    """Load the data a (normalised) spec names: a built-in dataset or a CSV/Parquet file.

    ``path_override`` (``evalkit validate DATA``) replaces the spec's data source by a file.
    Files are read with pandas' CSV/Parquet readers only (nothing is unpickled).
    """
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        truth = None
        if path_override is None and "dataset" in data_spec:
            name = data_spec["dataset"]
            if name == "simulate_aqc":
                from ..data.synthetic import simulate_aqc

                sim = simulate_aqc(**data_spec.get("params", {}))
                df, truth = sim
            elif name == "simulate_palliative":
                from ..palliative import simulate_palliative

                df, truth = simulate_palliative(**data_spec.get("params", {}))
            else:
                from ..data.datasets import load_mpdta

                df = load_mpdta()
            source = {"kind": "dataset", "name": name, "params": dict(data_spec.get("params", {}))}
        else:
            raw = Path(path_override) if path_override is not None else Path(data_spec["path"])
            path = raw if raw.is_absolute() or spec_dir is None or path_override is not None else spec_dir / raw
            if not path.exists():
                raise FileNotFoundError(f"Data file not found: {str(path)!r}.")
            suffix = path.suffix.lower()
            if suffix == ".csv":
                try:
                    df = pd.read_csv(path)
                except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
                    raise DataError(f"Data file {str(path)!r} could not be read as CSV: {str(exc).splitlines()[0]}") from None
            elif suffix in (".parquet", ".pq"):
                try:
                    df = pd.read_parquet(path)
                except ImportError:
                    raise DataError("Reading Parquet needs pyarrow: `pip install pyarrow`, or convert the data to CSV.") from None
                except PermissionError:
                    raise
                except (ValueError, OSError, TypeError, KeyError) as exc:  # pyarrow.ArrowInvalid is a ValueError
                    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise DataError(f"Data file {str(path)!r} could not be read as Parquet: {first[:300]}") from None
            else:
                raise DataError(f"Data file {str(path)!r} must be .csv or .parquet.")
            source = {"kind": "file", "path": str(raw), "format": suffix.lstrip("."), "file_sha256": _file_sha256(path)}
        for col, freq in (data_spec.get("periods") or {}).items():
            if col not in df.columns:
                raise DataError(f"data.periods: column {col!r} not found in data.")
            if not isinstance(df[col].dtype, pd.PeriodDtype):
                try:
                    df[col] = pd.PeriodIndex(df[col].astype(str), freq=freq).to_numpy()
                    df[col] = df[col].astype(pd.PeriodDtype(freq))
                except (ValueError, TypeError) as exc:
                    raise DataError(f"Column {col!r}: cannot parse as periods with frequency {freq!r} ({exc}). Use values like '2009Q1'.") from None
    caught = [f"{w.category.__name__}: {w.message}" for w in rec]
    source.update({"n_rows": int(len(df)), "n_columns": int(df.shape[1]), "frame_sha256": _frame_sha256(df)})
    return LoadedData(df, source, truth, caught)


# ----------------------------------------------------------------------------------------------
# running designs


def _design_roles(spec: dict, d: dict) -> dict:
    return {**spec["columns"], **d["columns"]}


def _prepare(data: pd.DataFrame, d: dict) -> tuple[pd.DataFrame, list[str]]:
    """The design's estimation frame: subset (counted) and the outcome rescaled."""
    notes: list[str] = []
    outcome = d["outcome"]
    if outcome not in data.columns:
        raise DataError(f"Column {outcome!r} (the outcome of design {d['name']!r}) not found in data.")
    frame = data
    sub = d.get("subset")
    if sub == "nonmissing":
        keep = data[outcome].notna().to_numpy()
        n_out = int((~keep).sum())
        if n_out:
            frame = data.loc[keep]
            notes.append(f"Subset: {n_out:,} of {len(data):,} rows with missing {outcome!r} excluded (not eligible for the measure); {int(keep.sum()):,} rows used.")
    elif isinstance(sub, Mapping):
        keep = np.ones(len(data), bool)
        for col, val in sub.items():
            if col not in data.columns:
                raise DataError(f"Design {d['name']!r} subset: column {col!r} not found in data.")
            vals = val if isinstance(val, list) else [val]
            keep &= data[col].isin(vals).to_numpy()
        frame = data.loc[keep]
        notes.append(f"Subset {dict(sub)}: {int(keep.sum()):,} of {len(data):,} rows used ({int((~keep).sum()):,} excluded).")
        if not keep.any():
            raise DataError(f"Design {d['name']!r}: the subset {dict(sub)} selects no rows.")
    if d["scale"] != 1:
        y = frame[outcome]
        if y.dtype == bool:
            y = y.astype("float64")
        frame = frame.assign(**{outcome: pd.to_numeric(y, errors="coerce") * d["scale"] if not pd.api.types.is_numeric_dtype(y) else y * d["scale"]})
        notes.append(f"Outcome {outcome!r} multiplied by {d['scale']:g}" + (f" ({d['units']})." if d.get("units") else "."))
    return frame, notes


def _call_kwargs(spec: dict, d: dict) -> dict:
    ds = DESIGNS[d["design"]]
    roles = _design_roles(spec, d)
    kw = {"outcome": d["outcome"]}
    for r in ds.roles:
        if roles.get(r):
            kw[r] = roles[r]
    kw.update(d["options"])
    return kw


def _warning_text(w) -> str:
    return f"{w.category.__name__}: {w.message}"


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass
class DesignRun:
    spec: dict
    result: Any
    variants: dict
    notes: list[str]
    warnings: list[str]
    truth: dict | None = None
    derived: dict = field(default_factory=dict)


def _run_design(data: pd.DataFrame, spec: dict, d: dict, truth: Any) -> DesignRun:
    frame, notes = _prepare(data, d)
    kw = _call_kwargs(spec, d)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            result = DESIGNS[d["design"]].func(frame, **kw)
        except SpecificationError as exc:  # an option the estimator rejected: say which design it came from
            raise SpecificationError(f"Design {d['name']!r} ({d['design']}): {str(exc).rstrip('.')}; check its options "
                                     f"({_r(d['options'])}).") from exc
        except EvalkitError:
            raise
        except (ValueError, TypeError) as exc:  # an option value the estimator could not use (e.g. leads: x)
            logger.debug("design %s failed", d["name"], exc_info=True)
            raise SpecificationError(f"Design {d['name']!r} ({d['design']}): {type(exc).__name__}: "
                                     f"{' '.join(str(exc).split())[:300]}; check its options "
                                     f"({_r(d['options'])}).") from exc
        variants = {}
        for v in d["also_vcov"]:
            if not hasattr(result, "with_vcov"):
                raise SpecificationError(f"Design {d['name']!r}: also_vcov needs a result with with_vcov().")
            vkw = {"seed": kw.get("seed")} if v == "wild" else {}
            variants[v] = result.with_vcov(v, **vkw)
        derived = {}
        if d.get("relative"):
            from ..did import relative_effect

            derived["relative_effect"] = relative_effect(result, denominator=d["relative"])
    warns = _dedupe([_warning_text(w) for w in rec])
    for w in warns:
        logger.info("design %s: %s", d["name"], w)
    return DesignRun(d, result, variants, notes, warns,
                     _truth_for(truth, {**d, "_time": _design_roles(spec, d).get("time")}, result), derived)


_NO_TRUTH = ("match", "stratified_gaps", "detectability")  # estimands with no planted counterpart


def _truth_for(truth: Any, d: dict, result: Any) -> dict | None:
    """Planted truth of the estimand, by term (simulated data only)."""
    if truth is None or d["design"] in _NO_TRUTH:
        return None
    if d["design"] == "palliative":
        try:
            out = result.truth_terms(truth)
        except (KeyError, ValueError, AttributeError, EvalkitError) as exc:
            logger.debug("no truth for %s: %s", d["name"], exc)
            return None
        if out and d["scale"] != 1:
            out = {**out, "terms": {k: v * d["scale"] for k, v in out["terms"].items()}}
        return out
    outcome, scale = d["outcome"], d["scale"]
    try:
        frame = result.to_frame()
        out: dict[str, float] = {}
        if d["design"] == "price_utilization":
            std = d["options"].get("standardized")
            tot, util = float(truth.att(outcome)), float(truth.att(std))
            out = {"total": tot * scale, "utilization": util * scale, "price": (tot - util) * scale,
                   "utilization_share": util / tot, "price_share": 1 - util / tot}
            desc = (f"planted effects over treated member-quarters: total on {outcome!r}, utilization on {std!r}, "
                    f"price = total - utilization")
        elif d["design"] == "att_gt":
            return _att_gt_truth(truth, d, frame, scale)
        elif "event_time" in frame.columns:
            by_e = truth.att_by_event_time(outcome, unit="quarter")
            for term, e in zip(frame["term"], frame["event_time"]):
                if pd.notna(e) and not str(term).startswith(("e<=", "e>=")) and int(e) in by_e.index:
                    out[str(term)] = float(by_e.loc[int(e)]) * scale
            desc = "mean planted effect over contracting members' rows at each event time (quarters)"
        else:
            by = d["options"].get("by")
            if by == "entry_year":
                by_c = truth.att_by_cohort(outcome)
                tname = frame["term"].iloc[0].split("[")[0]
                for g, v in by_c.items():
                    out[f"{tname}[entry_year={g}]"] = float(v) * scale
                desc = "mean planted effect over each cohort's treated member-quarters"
            elif by:
                return None
            else:
                out[str(frame["term"].iloc[0])] = float(truth.att(outcome)) * scale
                desc = "mean planted effect over treated member-quarters (ATT)"
        out = {k: v for k, v in out.items() if k in set(frame["term"])}
        return {"description": desc, "terms": out} if out else None
    except (KeyError, ValueError, AttributeError, EvalkitError) as exc:  # outcome without a planted effect
        logger.debug("no truth for %s: %s", d["name"], exc)
        return None


def _att_gt_truth(truth: Any, d: dict, frame: pd.DataFrame, scale: float) -> dict | None:
    """Planted ATT(g,t) aggregates (simulate_aqc): the estimands of the CS aggregations on the sample."""
    outcome = d["outcome"]
    time = d["columns"].get("time") or d.get("_time")
    unit = {"quarter": "quarter", "year": "year"}.get(str(time))
    if unit is None:
        return None
    out: dict[str, float] = {}
    by_g = truth.att_by_cohort(outcome, weighting="cells", time=unit)
    n_g = truth.cohort_sizes(outcome)
    by_e = truth.att_by_event_time(outcome, unit=unit, weighting="cells")
    for term, agg, e in zip(frame["term"], frame["aggregation"], frame["event_time"]):
        term = str(term)
        if term == "ATT (simple)":
            out[term] = truth.simple_att(outcome, time=unit) * scale
        elif term == "ATT (group)":
            out[term] = float((by_g * n_g.reindex(by_g.index)).sum() / n_g.reindex(by_g.index).sum()) * scale
        elif term.startswith("cohort="):
            try:
                g = float(term.split("=", 1)[1][:4])
            except ValueError:
                continue
            if g in by_g.index:
                out[term] = float(by_g.loc[g]) * scale
        elif agg == "dynamic" and pd.notna(e) and int(e) in by_e.index:
            out[term] = float(by_e.loc[int(e)]) * scale
    desc = (f"planted Callaway-Sant'Anna estimands on the sample (simulate_aqc truth, {unit} cells): simple = "
            f"cohort-size-weighted post-entry cells, cohort = mean of the cohort's post-entry cells, e = cohort-size-weighted "
            f"cells at event time e")
    return {"description": desc, "terms": out} if out else None


# ----------------------------------------------------------------------------------------------
# data contract (evalkit validate)


@dataclass
class ContractCheck:
    design: str
    ok: bool
    message: str
    summary: dict
    warnings: list[str]
    checks: str = ""  # what was checked (DesignSpec.checks)


def validate_data(data: pd.DataFrame, spec: dict) -> list[ContractCheck]:
    """Check the data contract for every design of a normalised spec; never raises on bad data.

    Returns one :class:`ContractCheck` per design (``ok``, the error message or a one-line
    summary, warnings).
    """
    from ..data.schema import validate_panel

    checks = []
    for d in spec["designs"]:
        roles = _design_roles(spec, d)
        what = DESIGNS[d["design"]].checks
        try:
            if DESIGNS[d["design"]].check is not None:
                msg, summ, warns = DESIGNS[d["design"]].check(data, d, roles)
                checks.append(ContractCheck(d["name"], True, msg, summ, warns, what))
                continue
            kw = DESIGNS[d["design"]].contract(roles)
            kw = {k: v for k, v in kw.items() if v not in (None, (), [])}
            _all_columns_present(data, d, kw)
            frame, _ = _prepare(data, d)
            for k in ("dropna", "drop_singletons"):
                if k in d["options"]:
                    kw[k] = d["options"][k]
            with warnings.catch_warnings(record=True) as rec:
                warnings.simplefilter("always")
                vp = validate_panel(frame, outcome=d["outcome"], **kw)
            summ = {"n_obs": vp.nobs, "n_input_rows": vp.n_input_rows, "n_units": vp.n_units, "n_periods": vp.n_periods,
                    "balanced": vp.is_balanced if vp.unit is not None else None}
            if vp.cluster is not None:
                c = vp.cluster[:, 0]
                summ["cluster"] = vp.cluster_names[0]
                summ["n_clusters"] = int(c.max()) + 1
                treated = vp.treatment if vp.treatment is not None else (np.isfinite(vp.cohort).astype(float) if vp.cohort is not None else None)
                if treated is not None:
                    summ["n_treated_clusters"] = int(len(np.unique(c[treated > 0])))
            summ["dropped"] = [str(r) for r in vp.dropped]
            parts = [f"{vp.nobs:,} rows"]
            if vp.unit is not None:
                parts.append(f"{vp.n_units:,} units ({'balanced' if vp.is_balanced else 'unbalanced'})")
            parts.append(f"{vp.n_periods} periods")
            if "n_clusters" in summ:
                parts.append(f"{summ['n_clusters']} clusters in {summ['cluster']!r}"
                             + (f" ({summ['n_treated_clusters']} treated)" if "n_treated_clusters" in summ else ""))
            checks.append(ContractCheck(d["name"], True, ", ".join(parts), summ, _dedupe([_warning_text(w) for w in rec]), what))
        except EvalkitError as exc:
            checks.append(ContractCheck(d["name"], False, " ".join(str(exc).split()), {}, [], what))
    return checks


def _all_columns_present(data: pd.DataFrame, d: dict, roles: dict) -> None:
    """Raise one DataError listing every column of the design missing from the data."""
    wanted = [("outcome", d["outcome"])]
    for role, v in roles.items():
        for c in ([v] if isinstance(v, str) else list(v)):
            wanted.append((role, c))
    if isinstance(d.get("subset"), Mapping):
        wanted += [("subset", c) for c in d["subset"]]
    missing = [(r, c) for r, c in wanted if c not in data.columns]
    if missing:
        listed = ", ".join(f"{c!r} (the {r})" for r, c in dict.fromkeys(missing))
        raise DataError(f"Column(s) not found in data: {listed}. Available columns: {[str(c) for c in data.columns][:30]}.")


# ----------------------------------------------------------------------------------------------
# serialisation


def _clean(x: Any) -> Any:
    """JSON-ready, deterministic value: floats to 12 significant digits, NaN/inf to null."""
    if isinstance(x, Mapping):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if not math.isfinite(x):
            return None
        return float(f"{x:.{_DIGITS}g}")
    if x is None or x is pd.NA or x is pd.NaT:
        return None
    if isinstance(x, (str,)):
        return x
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    return str(x)


def _records(frame: pd.DataFrame) -> list[dict]:
    rows = []
    for rec in frame.to_dict("records"):
        rows.append({k: _clean(v) for k, v in rec.items()})
    return rows


def _effect_mask(result: Any) -> np.ndarray:
    frame = result.table if hasattr(result, "table") else result.to_frame()
    ctx = result.extra.get("_context") if isinstance(getattr(result, "extra", None), dict) else None
    idx = getattr(ctx, "effect_terms", None)
    if ctx is None or idx is None:  # derived results (decompositions): every row is an effect
        return np.ones(len(frame), bool)
    m = np.zeros(len(frame), bool)
    m[list(idx)] = True
    return m


def _design_record(run: DesignRun) -> dict:
    r = run.result
    d = run.spec
    frame = r.to_frame()
    eff = _effect_mask(r)
    frame.insert(1, "effect", eff)
    rec = {
        "name": d["name"],
        "design": d["design"],
        "label": d["label"],
        "outcome": d["outcome"],
        "units": d["units"],
        "scale": d["scale"],
        "estimates": _records(frame),
        "conventions": _clean(r.conventions.as_dict()),
        "sample": _clean(r.sample.as_dict()),
        "notes": run.notes,
        "warnings": run.warnings,
        "variants": [
            {"vcov": k, "estimates": _records(v.to_frame().loc[eff]), "conventions": _clean(v.conventions.as_dict())}
            for k, v in run.variants.items()
        ],
    }
    rec["derived"] = [
        {"name": k, "estimator": v.conventions.estimator, "estimates": _records(v.to_frame()),
         "notes": list(v.conventions.notes)}
        for k, v in run.derived.items()
    ]
    if hasattr(r, "pretrend_test"):
        rec["pretrend_test"] = _clean(r.pretrend_test)
    if hasattr(r, "report_details"):
        rec["details"] = _clean(r.report_details())
    if run.truth:
        rec["truth"] = _clean(run.truth)
    return rec


_CSV_COLUMNS = ["design", "label", "outcome", "units", "block", "vcov", "term", "effect", "event_time", "estimate", "std_error",
                "statistic", "p_value", "conf_low", "conf_high", "df", "nobs", "n_clusters", "truth"]


def _csv_rows(records: list[dict]) -> pd.DataFrame:
    rows = []
    for rec in records:
        base = {"design": rec["name"], "label": rec["label"], "outcome": rec["outcome"], "units": rec["units"],
                "nobs": rec["sample"]["n_obs"],
                "n_clusters": (rec["conventions"]["n_clusters"] or [None])[0]}
        truth = (rec.get("truth") or {}).get("terms", {})
        vc = rec["conventions"]["vcov_type"]
        blocks = ([("estimates", vc, rec["estimates"])] + [("also_vcov", v["vcov"], v["estimates"]) for v in rec["variants"]]
                  + [(x["name"], vc, x["estimates"]) for x in rec["derived"]])
        for block, vcov, ests in blocks:
            for e in ests:
                rows.append({**base, "block": block, "vcov": vcov, **{k: e.get(k) for k in _CSV_COLUMNS if k in e},
                             "effect": e.get("effect", True),
                             "truth": truth.get(e["term"]) if block != "relative_effect" else None})
    return pd.DataFrame(rows, columns=_CSV_COLUMNS)


#: First characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection").
_CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Neutralise spreadsheet formulas: text cells (and column names) that start with ``=``,
    ``+``, ``-``, ``@``, tab or carriage return get a leading single quote (OWASP). Numeric
    columns are left alone, so negative numbers stay numbers."""
    def safe(v: Any) -> Any:
        return "'" + v if isinstance(v, str) and v.startswith(_CSV_FORMULA_START) else v

    out = frame
    for c in frame.columns:
        s = frame[c]
        if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_datetime64_any_dtype(s.dtype):
            continue
        if s.map(lambda v: isinstance(v, str) and v.startswith(_CSV_FORMULA_START)).any():
            if out is frame:
                out = frame.copy()
            out[c] = s.astype(object).map(safe)
    if any(isinstance(c, str) and c.startswith(_CSV_FORMULA_START) for c in frame.columns):
        out = out.rename(columns=safe)
    return out


def _versions() -> dict:
    out = {"evalkit": __version__, "python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# ----------------------------------------------------------------------------------------------
# figures


@contextlib.contextmanager
def _figure_context():
    """Draw and save report figures with matplotlib's mathtext off, so ``$...$`` in titles,
    labels, legend entries, category values and column names is shown as typed, never parsed (a
    stray ``$\\foo$`` cannot crash the report, nor ``$5-$10`` turn italic); warnings matplotlib
    emits while drawing go to the ``evalkit.report`` logger (INFO), not to stderr. Figures left
    open by a failure are closed."""
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    with mpl.rc_context({"text.parse_math": False}), warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            yield
        except BaseException:
            for n in set(plt.get_fignums()) - before:
                plt.close(n)
            raise
        finally:
            for w in _dedupe([_warning_text(w) for w in rec]):
                logger.info("figures: %s", w)


def _figure_uri(fig) -> str:
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    with mpl.rc_context({"svg.hashsalt": "evalkit", "svg.fonttype": "none", "text.parse_math": False}):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _make_figure(f: dict, data: pd.DataFrame, runs: dict[str, DesignRun], spec: dict) -> dict:
    from .. import plots

    kind = f["type"]
    if kind == "group_means":
        for role in ("outcome", "time", "group"):
            if f[role] not in data.columns:
                raise DataError(f"Figure {f.get('title') or kind!r}: column {f[role]!r} (the {role}) not found in data.")
        entry = f.get("entry")
        if isinstance(entry, Mapping):
            entry = {_coerce_like(k, data[f["group"]]): v for k, v in entry.items()}
        ax = plots.plot_group_means(data, f["outcome"], f["time"], f["group"], entry=entry, title=f.get("title"),
                                    ylabel=f.get("ylabel"))
        caption = f.get("caption") or (f"Mean {f['outcome']} by {f['time']} for each value of {f['group']} (rows present "
                                       f"in each period; unadjusted). Parallel pre-entry trends support the DiD design.")
    elif kind == "coefficients":
        results = {runs[n].spec["label"]: runs[n].result for n in f["designs"]}
        arg = next(iter(results.values())) if len(results) == 1 else results
        ax = plots.plot_coefficients(arg, terms=f.get("terms"), title=f.get("title"), xlabel=f.get("xlabel"))
        lvl = next(iter(results.values())).conventions.level
        caption = f.get("caption") or f"Point estimates with {lvl:.0%} confidence intervals ({', '.join(f['designs'])})."
    elif kind in ("love", "overlap"):
        run = runs[f["design"]]
        m = run.result.match
        if kind == "love":
            thr = float(f.get("threshold", 0.1))
            ax = m.plot("love", threshold=thr)
            caption = f.get("caption") or (f"Absolute standardised mean differences before (open) and after (filled) "
                                           f"{m.method} matching; dashed line at {thr:g}. Denominator: "
                                           + ("the treated group's SD in the unmatched sample (MatchIt), the same before and after."
                                              if m.estimand == "ATT" else "the pooled SD in the unmatched sample."))
        else:
            if m.distance is None:
                raise SpecificationError(f"Figure {f.get('title') or kind!r}: design {f['design']!r} (method {m.method!r}) "
                                         f"has no propensity score; use a love figure.")
            ax = m.plot("overlap")
            caption = f.get("caption") or ("Distribution of the propensity score (probability scale) by group before "
                                           "matching (outlines) and in the matched, weighted sample (filled).")
        if f.get("title"):
            ax.set_title(f["title"], loc="left", fontweight="bold")
    elif kind == "net_benefit":
        from ..palliative import plot_net_benefit_sensitivity

        run = runs[f["design"]]
        sens = run.result.extra["sensitivity"]
        prm = f.get("parameter")
        if prm is not None and prm not in set(sens["parameter"]):
            raise SpecificationError(f"Figure {f.get('title') or kind!r}: parameter {prm!r} is not in the sensitivity table "
                                     f"(parameters: {sorted(set(sens['parameter']))}).")
        ax = plot_net_benefit_sensitivity(sens, parameter=prm)
        if f.get("title"):
            ax.set_title(f["title"], loc="left", fontweight="bold")
        caption = f.get("caption") or (
            ("Range of the ACO net benefit per enrolled patient as each contract term varies over its grid, the others "
             "at their base values (dashed line: base case)." if prm is None else
             f"Net benefit per enrolled patient as {prm} varies, the other terms at their base values, with the "
             f"delta-method {run.result.conventions.level:.0%} interval from the savings SE.")
            + " Savings = the matched member-month PMPM estimate.")
    elif kind == "gaps":
        from .designs import plot_gaps

        run = runs[f["design"]]
        ax = plot_gaps(run.result, systems=f.get("systems"), title=f.get("title"))
        o = run.result.extra["options"]
        caption = f.get("caption") or (f"Gap in {run.spec['outcome']!r} vs {o['reference']} by {o['group']}"
                                       + (f" within each value of {o['system']!r}" if o["system"] else "")
                                       + f" (percentage points, Wald {run.result.conventions.level:.0%} CI; positive = "
                                       f"group disadvantaged). Cells below {o['min_denominator']} patients are suppressed.")
    elif kind == "power_curves":
        from ..equity import plot_power_curves

        run = runs[f["design"]]
        det = run.result.detectability_frame()
        opts = {k: v for k, v in run.result.extra["options"].items() if k not in ("power",)}
        base_frame, _ = _prepare(data, run.spec)
        if run.spec["outcome"] != "rate":
            base_frame = base_frame.drop(columns=[c for c in ("rate",) if c in base_frame.columns]).rename(columns={run.spec["outcome"]: "rate"})
        system = f.get("system") or _first_recommended_system(det)
        group = f.get("group")
        if group is None:
            cand = det[(det["system"] == system) & det["candidate"]]
            group = str(cand["group"].iloc[0]) if len(cand) else str(det.loc[det["system"] == system, "group"].iloc[0])
        ax = plot_power_curves(base_frame, system, group=group, power=run.result.extra["options"]["power"], **opts)
        if f.get("title"):
            ax.set_title(f"{f['title']}: {system}", loc="left")
        caption = f.get("caption") or (f"Power to detect a reduction of the baseline gap ({group} vs "
                                       f"{opts['reference_group']}) by measure in {system}; dotted line: target power "
                                       f"{run.result.extra['options']['power']:g}. Same planning model as the table.")
    else:
        run = runs[f["design"]]
        if run.spec["design"] == "att_gt":
            conv = run.result.conventions
            ax = plots.plot_event_study(run.result.event_frame(), title=f.get("title"), ylabel=f.get("ylabel") or run.spec["label"],
                                        xlabel="Periods since entry")
            caption = f.get("caption") or (f"Callaway-Sant'Anna dynamic aggregation by periods since entry: pointwise "
                                           f"{conv.level:.0%} CIs (bars) and the simultaneous sup-t band (shaded, when "
                                           f"bootstrapped); pre-entry estimates use short (varying-base) differences "
                                           f"unless base_period='universal'.")
            return {"title": f.get("title") or "", "caption": caption, "uri": _figure_uri(ax.figure)}
        ax = plots.plot_event_study(run.result.event_frame(), title=f.get("title"), ylabel=f.get("ylabel") or run.spec["label"])
        caption = f.get("caption") or (f"Event-study estimates ({run.result.conventions.level:.0%} CIs) by quarters since entry; "
                                       f"the hollow marker is the reference period (normalised to 0), the dashed line entry.")
    return {"title": f.get("title") or "", "caption": caption, "uri": _figure_uri(ax.figure)}


def _first_recommended_system(det: pd.DataFrame) -> Any:
    """The first system (in table order) with a candidate measure, else the first system."""
    cand = det.loc[det["candidate"], "system"]
    return cand.iloc[0] if len(cand) else det["system"].iloc[0]


def _coerce_like(key: Any, series: pd.Series) -> Any:
    """Match a spec key (YAML/JSON may turn 2009 into '2009') to the dtype of the group column."""
    try:
        if pd.api.types.is_float_dtype(series.dtype) and isinstance(key, (int, str)):
            return float(key)
        if pd.api.types.is_integer_dtype(series.dtype) and isinstance(key, (str, float)):
            return int(float(key))
    except ValueError:
        pass
    return key


# ----------------------------------------------------------------------------------------------
# HTML


def _fmt(x: Any, kind: str = "num") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if not isinstance(x, (float, np.floating)):
        return str(x)
    x = float(x)
    if kind == "p":
        return "<0.001" if x < 0.001 else f"{x:.3f}"
    if kind == "df":
        return f"{x:.0f}" if x.is_integer() else f"{x:.1f}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if x == 0:
        return "0"
    return f"{x:.4g}" if abs(x) >= 1e-3 else f"{x:.2e}"


def _show(v: Any) -> str:
    """Display a spec/convention value (integers without thousands separators: seeds, ids)."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (list, tuple)):
        return ", ".join(_show(x) for x in v) if v else "—"
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={_show(x)}" for k, x in v.items()) if v else "—"
    return _fmt(v)


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("evalkit.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    env.filters["show"] = _show
    return env


def _html_context(spec: dict, records: list[dict], checks: list[ContractCheck], figures: list[dict],
                  loaded: LoadedData, versions: dict, seeds: dict) -> dict:
    headline = []
    for rec in records:
        e = rec["estimates"][0]
        truth = (rec.get("truth") or {}).get("terms", {}).get(e["term"])
        row = {"name": rec["name"], "label": rec["label"], "units": rec["units"], "term": e["term"], "estimate": e["estimate"],
               "std_error": e["std_error"], "conf_low": e["conf_low"], "conf_high": e["conf_high"],
               "p_value": e["p_value"], "nobs": rec["sample"]["n_obs"],
               "n_clusters": (rec["conventions"]["n_clusters"] or [None])[0], "vcov": rec["conventions"]["vcov_type"],
               "truth": truth, "n_effects": sum(1 for x in rec["estimates"] if x["effect"])}
        rel = [x for x in rec.get("derived", []) if x["name"] == "relative_effect"]
        row["percent"] = next((x["estimate"] for x in (rel[0]["estimates"] if rel else []) if x["term"] == "effect_percent"), None)
        pt = rec.get("pretrend_test")
        if rec["design"] == "event_study" and pt and pt.get("df_num"):  # its headline is the joint pre-trend test
            row.update(term=f"pre-trend test, {pt['df_num']} leads = 0: {pt['distribution']} = {_fmt(pt['statistic'])}",
                       estimate=None, std_error=None, conf_low=None, conf_high=None, p_value=pt["p_value"], truth=None,
                       n_effects=0)
        headline.append(row)
    contract_warnings = {c.design: set(c.warnings) for c in checks}
    records = [{**r, "warnings": [w for w in r["warnings"] if w not in contract_warnings.get(r["name"], set())]}
               for r in records]
    return {
        "spec": spec,
        "title": spec["title"],
        "description": spec["description"],
        "source": loaded.source,
        "data_warnings": loaded.warnings,
        "versions": versions,
        "seeds": seeds,
        "headline": headline,
        "designs": records,
        "checks": checks,
        "figures": figures,
        "has_truth": any(h["truth"] is not None for h in headline),
        "has_pp": any(r["scale"] == 100 for r in records),
        "has_percent": any(h["percent"] is not None for h in headline),
        "has_twfe": any(r["design"] in ("twfe", "event_study", "price_utilization") for r in records),
        "outputs": spec["outputs"],
        "design_titles": {k: v.title for k, v in DESIGNS.items()},
    }


# ----------------------------------------------------------------------------------------------
# entry point


@dataclass(frozen=True)
class ReportResult:
    """What :func:`build_report` wrote."""

    out_dir: Path
    files: dict  # output kind -> Path
    results: dict  # the content of results.json
    manifest: dict

    @property
    def html(self) -> Path | None:
        return self.files.get("html")


def build_report(spec: Mapping | str | Path, out_dir: str | Path, *, data: pd.DataFrame | None = None,
                 progress: bool = False, on_step: Callable[[str], None] | None = None) -> ReportResult:
    """Run a spec end to end and write the report.

    Parameters
    ----------
    spec : dict or path
        The spec (see the module docstring), or a YAML/TOML file holding it.
    out_dir : str or Path
        Folder for the outputs (created). Output names in the spec must stay inside it.
    data : pandas.DataFrame or None, default=None
        Use this frame instead of loading ``spec["data"]`` (its hash is recorded).
    progress : bool, default=False
        Show a progress bar of the report's steps on stderr (tqdm), with nested bars for the long
        loops of the designs (wild cluster bootstrap, simulations). Off by default: the library
        writes nothing to stdout or stderr. Results are identical either way. (A callable is
        accepted as ``on_step`` for backward compatibility.)
    on_step : callable or None
        Called with a short message before each step (the CLI prints them when bars are off).

    Returns
    -------
    ReportResult
        Paths of the written files, the results and the manifest.

    Notes
    -----
    ``results.json``/``results.csv`` hold no timestamps or versions and floats are written to
    12 significant digits: the same spec on the same data gives byte-identical files.
    ``index.html`` states the evalkit and dependency versions (by design), so it is identical
    only across runs with the same versions. The run time lives only in ``manifest.json``
    (``created_utc``).

    Nothing is written until every output (results, figures, HTML, manifest) is built; the files
    are then written beside their targets and renamed into place, the manifest last. A failure
    leaves an existing report untouched. The output folder and names are checked before any
    estimation, and no output may be the input data file.
    Outputs of the previous run in the folder that this run does not write (an output switched off
    or renamed) are then removed, provided the previous manifest lists them and they are unchanged
    since (same sha256); no other file is touched.
    """
    if callable(progress) and not isinstance(progress, bool):
        on_step, progress = progress, False
    raw, spec_dir = load_spec(spec)
    spec_n = normalize_spec(raw)
    out = Path(out_dir)
    files = {k: _inside(out, v) for k, v in spec_n["outputs"].items() if v}
    _check_out_paths(out, files)
    _check_not_input(spec_n["data"], spec_dir, files)
    n_steps = 3 + len(spec_n["designs"]) + (2 if files.get("html") else 0)
    steps = _Steps(n_steps, bool(progress), on_step)
    try:
        with progress_scope(bool(progress)):
            return _build(spec_n, spec_dir, out, files, data, steps)
    finally:
        steps.close()


class _Steps:
    """The report's step messages: a callback and/or one progress bar over the steps."""

    def __init__(self, total: int, bar: bool, on_step: Callable[[str], None] | None):
        self.bar = progress_bar(total=total, desc="evalkit report", unit=" steps", progress=bar, leave=False)
        self.on_step = on_step
        self.started = False

    def __call__(self, msg: str) -> None:
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.set_description_str(msg)
        if self.on_step is not None:
            self.on_step(msg)

    def close(self) -> None:
        if self.started:
            self.bar.update(1)
        self.bar.close()


def _build(spec_n: dict, spec_dir: Path | None, out: Path, files: dict, data: pd.DataFrame | None, say: _Steps) -> ReportResult:
    say("loading data")
    if data is not None:
        if not isinstance(data, pd.DataFrame):
            raise DataError(f"`data` must be a pandas DataFrame. Got {type(data).__name__}.")
        loaded = LoadedData(data, {"kind": "frame", "n_rows": int(len(data)), "n_columns": int(data.shape[1]),
                                   "frame_sha256": _frame_sha256(data)})
    else:
        loaded = load_data(spec_n["data"], spec_dir)
    df = loaded.frame

    say("checking the data contract")
    checks = validate_data(df, spec_n)
    bad = [c for c in checks if not c.ok]
    if bad:
        raise DataError("; ".join(f"design {c.design!r}: {c.message}" for c in bad))

    runs: dict[str, DesignRun] = {}
    for d in spec_n["designs"]:
        say(f"estimating {d['name']} ({d['design']}, outcome {d['outcome']})")
        runs[d["name"]] = _run_design(df, spec_n, d, loaded.truth)
    records = [_design_record(runs[d["name"]]) for d in spec_n["designs"]]

    seeds = {"data": spec_n["data"].get("params", {}).get("seed"), "spec": spec_n["seed"],
             "designs": {d["name"]: d["options"].get("seed") for d in spec_n["designs"] if d["options"].get("seed") is not None}}
    results = {
        "format": RESULTS_FORMAT,
        "title": spec_n["title"],
        "data": {k: v for k, v in loaded.source.items()},
        "seeds": seeds,
        "designs": records,
    }
    results = _clean(results)

    # Everything is built in memory first, then written: a run that fails leaves the folder as it was.
    texts: dict[str, str] = {}
    texts["json"] = json.dumps(results, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    texts["csv"] = _csv_safe(_csv_rows(results["designs"])).to_csv(index=False, lineterminator="\n",
                                                                    float_format=f"%.{_DIGITS}g")
    if files.get("spec"):
        import yaml

        texts["spec"] = ("# Normalised spec written by evalkit; re-run with: evalkit run <this file> --out DIR\n"
                         + yaml.safe_dump(_clean(spec_n), sort_keys=False, allow_unicode=True))

    versions = _versions()
    if files.get("html"):
        say("drawing figures")
        with _figure_context():
            figures = [_make_figure(f, df, runs, spec_n) for f in spec_n["figures"]]
        say("rendering HTML")
        texts["html"] = _environment().get_template("report.html.j2").render(
            **_html_context(spec_n, results["designs"], checks, figures, loaded, versions, seeds))

    say("writing results")
    root = out.resolve()
    manifest = {
        "evalkit_manifest": 1,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "input": loaded.source,
        "versions": versions,
        "platform": {"system": platform.system(), "machine": platform.machine(), "python_implementation": platform.python_implementation()},
        "command": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv)) if sys.argv and sys.argv[0] else None,
        "seeds": seeds,
        "spec": spec_n,
        "outputs": {k: {"file": files[k].name if files[k].parent == root else str(files[k].relative_to(root)),
                        "sha256": hashlib.sha256(t.encode("utf-8")).hexdigest()} for k, t in texts.items()},
    }
    manifest = _clean(manifest)
    texts["manifest"] = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    stale = _stale_outputs(root, files.get("manifest"), [files[k] for k in texts])
    _write_all(out, {k: files[k] for k in texts}, texts)
    _remove_stale(stale)
    return ReportResult(out, {k: files[k] for k in texts}, results, manifest)


def _stale_outputs(root: Path, manifest_path: Path | None, new_targets: list[Path]) -> list[Path]:
    """Files the previous run's manifest lists that this run does not write (e.g. ``html`` switched off
    or renamed). Only those listed there, inside the output folder, regular files (not links) and
    unchanged since evalkit wrote them (same sha256 as recorded) qualify; anything else is left alone."""
    if manifest_path is None or not manifest_path.is_file():
        return []
    try:
        prev = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(prev, dict) or "evalkit_manifest" not in prev or not isinstance(prev.get("outputs"), dict):
        return []
    keep = {t.resolve() for t in new_targets}
    out = []
    for entry in prev["outputs"].values():
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not isinstance(entry.get("sha256"), str):
            continue
        p = root / entry["file"]
        try:
            if p.is_symlink() or not p.is_file():
                continue
            r = p.resolve()
            r.relative_to(root)
        except (OSError, ValueError):
            continue
        if r in keep or r in out:
            continue
        try:
            if hashlib.sha256(r.read_bytes()).hexdigest() != entry["sha256"]:
                continue  # edited since: not evalkit's file any more
        except OSError:
            continue
        out.append(r)
    return out


def _remove_stale(paths: list[Path]) -> None:
    """Delete outputs of the previous run that the new manifest does not list (see :func:`_stale_outputs`)."""
    for p in paths:
        try:
            p.unlink()
            logger.info("removed %s: written by the previous run, not an output of this one", p)
        except OSError:
            logger.warning("could not remove the previous run's output %s", p, exc_info=True)


def _write_all(out: Path, targets: dict[str, Path], texts: dict[str, str]) -> None:
    """Write every output as a temporary file beside its target, then move each into place
    (``os.replace``, the manifest last). A failure while writing removes the temporary files and
    leaves the previous outputs untouched."""
    out.mkdir(parents=True, exist_ok=True)
    tmp: dict[str, Path] = {}
    try:
        for k, target in targets.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            t = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
            fd = os.open(t, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies, as for open()
            tmp[k] = t
            with os.fdopen(fd, "wb") as fh:
                fh.write(texts[k].encode("utf-8"))
        for k in sorted(tmp, key=lambda k: k == "manifest"):
            os.replace(tmp[k], targets[k])
            del tmp[k]
    finally:
        for t in tmp.values():
            try:
                t.unlink()
            except OSError:
                pass


# ----------------------------------------------------------------------------------------------
# the demo


def demo_spec(*, seed: int = 20240101, n_members: int = 20_000) -> dict:
    """The spec of ``evalkit demo``: an AQC-style evaluation of simulated claims.

    Spending (total and price-standardised) by TWFE DiD with organisation and quarter fixed
    effects, clustered by organisation, adjusted for age, sex and risk score (as in the AQC
    evaluations, which compare enrollees of contracting and non-contracting organisations); the
    same by entry cohort; an event study; four quality measures as linear probability models in
    percentage points among eligible members; a parallel-trends figure.
    """
    covs = ["age", "female", "risk_score"]
    fe = ["org_id", "quarter"]
    designs: list[dict] = [
        {"name": "spending", "design": "twfe", "outcome": "spending", "units": "$ per member-quarter",
         "label": "Total spending ($ per member-quarter)", "options": {"fixed_effects": fe, "vcov": "CR1"},
         "also_vcov": ["wild"], "relative": "pre_mean"},
    ]
    if "price_utilization" in DESIGNS:
        designs.append({"name": "price_utilization", "design": "price_utilization", "outcome": "spending",
                        "units": "$ per member-quarter", "label": "Spending: price vs utilization",
                        "options": {"standardized": "spending_std", "fixed_effects": fe}})
    designs.append({"name": "spending_by_cohort", "design": "twfe", "outcome": "spending", "units": "$ per member-quarter",
                    "label": "Total spending by entry cohort", "options": {"fixed_effects": fe, "vcov": "CR1", "by": "entry_year"}})
    if "event_study" in DESIGNS:
        designs.append({"name": "spending_event_study", "design": "event_study", "outcome": "spending",
                        "units": "$ per member-quarter", "label": "Total spending: event study (quarters since entry)",
                        "options": {"fixed_effects": fe, "vcov": "CR1", "leads": 8, "lags": 12}})
    if "att_gt" in DESIGNS:
        designs.append({"name": "spending_cs", "design": "att_gt", "outcome": "spending", "units": "$ per member-quarter",
                        "label": "Total spending: Callaway-Sant'Anna (staggered entry, never-contracting controls, unadjusted)",
                        "columns": {"covariates": []},
                        "options": {"control": "never", "method": "dr", "aggregations": ["simple", "group", "dynamic"],
                                    "min_e": -8, "max_e": 12, "n_boot": 999, "seed": seed}})
    quality = {"hba1c_test": "HbA1c testing (diabetes)", "ldl_screen": "LDL-C screening",
               "crc_screen": "Colorectal cancer screening", "bp_control": "Blood-pressure control (hypertension)"}
    for col, label in quality.items():
        designs.append({"name": col, "design": "twfe", "outcome": col, "units": "percentage points", "scale": 100,
                        "subset": "nonmissing", "label": label, "options": {"fixed_effects": fe, "vcov": "CR1"}})
    figures: list[dict] = [
        {"type": "group_means", "outcome": "spending", "group": "entry_year",
         "entry": {2009: "2009Q1", 2010: "2010Q1", 2011: "2011Q1", 2012: "2012Q1"},
         "title": "Mean spending per member-quarter by entry cohort", "ylabel": "Spending ($)",
         "caption": "Unadjusted mean spending by quarter for each entry cohort and for never-contracting organisations "
                    "(dotted lines: each cohort's entry). Similar pre-entry trends support the parallel-trends assumption."},
        {"type": "coefficients", "designs": ["spending_by_cohort"], "title": "Spending effect by entry cohort",
         "xlabel": "Effect on spending ($ per member-quarter, 95% CI)"},
        {"type": "coefficients", "designs": list(quality), "title": "Quality measures",
         "xlabel": "Effect (percentage points, 95% CI)"},
    ]
    if "event_study" in DESIGNS:
        figures.insert(1, {"type": "event_study", "design": "spending_event_study", "title": "Spending: event study",
                           "ylabel": "Effect on spending ($)"})
    if "att_gt" in DESIGNS:
        figures.insert(2 if "event_study" in DESIGNS else 1,
                       {"type": "event_study", "design": "spending_cs",
                        "title": "Spending: Callaway-Sant'Anna event study", "ylabel": "Effect on spending ($)"})
    return {
        "title": "AQC-style evaluation of a global-budget contract (simulated claims)",
        "description": (
            "Difference-in-differences evaluation of simulated member-quarter claims shaped like the Blue Cross Blue "
            "Shield of Massachusetts Alternative Quality Contract evaluations: provider organisations enter the "
            "contract in 2009-2012, enrollees of never-contracting organisations are the comparison group. Models "
            "adjust for age, sex and risk score with organisation and quarter fixed effects; standard errors are "
            "clustered by organisation. The data are synthetic with planted effects, shown as 'truth'."
        ),
        "seed": seed,
        "data": {"dataset": "simulate_aqc", "params": {"seed": seed, "n_members": n_members}},
        "columns": {"unit": "member_id", "time": "quarter", "treatment": "aqc", "cohort": "entry_quarter",
                    "cluster": "org_id", "covariates": covs, "group": "contract"},
        "designs": designs,
        "figures": figures,
        "outputs": dict(_DEFAULT_OUTPUTS),
    }
