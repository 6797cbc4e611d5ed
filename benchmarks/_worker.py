"""One benchmark measurement in a fresh process: generate data, fit cold, fit warm, print JSON.

Invoked by run.py (one subprocess per library x size x balance, under a memory cap and a timeout):

    python benchmarks/_worker.py --library evalkit --rows 1000000 --unbalanced 0.1 [--repeats 3] [--shuffle]
        [--profile PATH]   # one extra, untimed call under cProfile

Prints exactly one line ``BENCH_JSON {...}`` on stdout. Memory is read from /proc/self/status:
``VmRSS`` right after data generation, and ``VmHWM`` (the peak RSS) reset through
``/proc/self/clear_refs`` before the cold call and again before the warm calls, so the estimator's
own peak is visible even when data generation peaked higher. ``ru_maxrss`` (whole-process peak,
data generation included) is reported too.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from generate import COHORTS, CS_COHORTS, DEFAULT_SEED, make_panel  # noqa: E402


def _status_mb(field: str) -> float | None:
    """VmRSS / VmHWM of this process in MiB (Linux /proc; psutil's RSS elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    if field == "VmRSS":
        try:
            import psutil

            return psutil.Process().memory_info().rss / 2**20
        except ImportError:
            pass
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# ----------------------------------------------------------------------------------------------
# one callable per library: df -> (estimate, std_error or None)


def _fit_evalkit(df):
    import evalkit as ek

    r = ek.did.twfe(df, outcome="y", unit="unit", time="t", treatment="d", covariates=["x"],
                    cluster="cl", vcov="CR1")
    return float(r.estimate), float(r.std_error)


def _fit_pyfixest(df):
    import pyfixest as pf

    # defaults otherwise (rust MAP demeaner, fixef_tol=1e-6; ssc = fixest's default); keep singletons
    # as evalkit does so that both use the same sample.
    m = pf.feols("y ~ d + x | unit + t", data=df, vcov={"CRV1": "cl"}, fixef_rm="none")
    return float(m.coef()["d"]), float(m.se()["d"])


def _fit_linearmodels(df):
    from linearmodels.panel import PanelOLS

    # building the (entity, time) MultiIndex is part of what a user must do: timed
    p = df.set_index(["unit", "t"])
    res = PanelOLS(p["y"], p[["d", "x"]], entity_effects=True, time_effects=True).fit(
        cov_type="clustered", clusters=p[["cl"]])
    # linearmodels' clustered SE uses another small-sample convention: reported, not compared
    return float(res.params["d"]), float(res.std_errors["d"])


FITTERS = {"evalkit": _fit_evalkit, "pyfixest": _fit_pyfixest, "linearmodels": _fit_linearmodels}


# ----------------------------------------------------------------------------------------------
# Callaway-Sant'Anna (design "cs"): ATT(g,t) with never-treated controls, no covariates, analytic
# influence-function SEs (no bootstrap), plus the simple and dynamic (event-study) aggregations.
# Each callable returns (simple ATT, its SE, detail) with detail = {"att_gt": [[g, t, att, se], ...],
# "simple": [att, se], "dynamic": [[e, att, se], ...], "dynamic_overall": [att, se] or None}.


def _cs_evalkit(df):
    import evalkit as ek

    r = ek.staggered.att_gt(df, outcome="y", unit="unit", time="t", cohort="g", control="never", method="dr",
                            n_boot=0)
    s = r.aggregate("simple")
    d = r.aggregate("dynamic")
    fr = r.to_frame()
    ev = d.event_frame()
    det = {"att_gt": [[int(g), int(t), float(a), float(b)] for g, t, a, b in
                      zip(fr["cohort"], fr["time"], fr["estimate"], fr["std_error"])],
           "simple": [float(s.estimate), float(s.std_error)],
           "dynamic": [[int(e), float(a), float(b)] for e, a, b in zip(ev["event_time"], ev["estimate"], ev["std_error"])],
           "dynamic_overall": [float(d.estimate), float(d.std_error)]}
    return det["simple"][0], det["simple"][1], det


def _cs_diff_diff(df):
    from diff_diff import CallawaySantAnna

    # analytic influence-function SEs (n_bootstrap=0); doubly robust as evalkit (no covariates: all
    # methods are the difference of mean changes)
    r = CallawaySantAnna(control_group="never_treated", estimation_method="dr", n_bootstrap=0).fit(
        df, outcome="y", unit="unit", time="t", first_treat="g")
    es = r.aggregate("event_study")
    det = {"att_gt": [[int(g), int(t), float(v["effect"]), float(v["se"])] for (g, t), v in
                      sorted(r.group_time_effects.items())],
           "simple": [float(r.overall_att), float(r.overall_se)],
           "dynamic": [[int(e), float(a), float(b)] for e, a, b, ref in zip(es.event_time, es.att, es.se, es.is_reference)
                       if not ref],
           "dynamic_overall": None}  # diff-diff's event study has no overall (average over e >= 0) row
    return det["simple"][0], det["simple"][1], det


def _cs_csdid(df):
    import contextlib
    import io

    from csdid.att_gt import ATTgt

    with contextlib.redirect_stdout(io.StringIO()):  # csdid prints its summaries
        a = ATTgt(yname="y", gname="g", idname="unit", tname="t", data=df, control_group=["nevertreated"]).fit(
            est_method="dr", bstrap=False)
        res = a.results
        simple = a.aggte(typec="simple", bstrap=False).atte
        dyn = a.aggte(typec="dynamic", bstrap=False).atte
    det = {"att_gt": [[int(g), int(t), float(v), float(se)] for g, t, v, se in
                      zip(res["group"], res["year"], res["att"], res["se"])],
           "simple": [float(np.ravel(simple["overall_att"])[0]), float(np.ravel(simple["overall_se"])[0])],
           "dynamic": [[int(e), float(v), float(se)] for e, v, se in zip(dyn["egt"], dyn["att_egt"], dyn["se_egt"])],
           "dynamic_overall": [float(np.ravel(dyn["overall_att"])[0]), float(np.ravel(dyn["overall_se"])[0])]}
    return det["simple"][0], det["simple"][1], det


def _cs_differences(df):
    from differences import ATTgt

    # differences wants an (entity, time) MultiIndex and the cohort as NaN for never treated; building
    # them is part of what a user must do, so it is timed. Defaults otherwise: varying base period,
    # no anticipation, analytic SEs (boot_iterations=0), clustered on the unit (as the other three).
    p = df[["unit", "t", "y"]].assign(c=df["g"].where(df["g"] > 0).astype("float64")).set_index(["unit", "t"])
    att = ATTgt(data=p, cohort_column="c", base_period="varying")
    res = att.fit(formula="y", est_method="dr", control_group="never_treated", boot_iterations=0,
                  progress_bar=False)
    simple = att.aggregate("simple")
    event = att.aggregate("event")
    event_overall = att.aggregate("event", overall=True)
    cells = res.to_pandas() if hasattr(res, "to_pandas") else res

    def col(frame, last):  # differences' frames have 3-level columns (table name, "analytic", ATT/std_error)
        return frame[[c for c in frame.columns if c[-1] == last][0]]

    det = {"att_gt": [[int(g), int(t), float(a), float(b)] for (g, _b, t), a, b in
                      zip(cells.index, col(cells, "ATT"), col(cells, "std_error"))],
           "simple": [float(col(simple, "ATT").iloc[0]), float(col(simple, "std_error").iloc[0])],
           "dynamic": [[int(e), float(a), float(b)] for e, a, b in
                       zip(event.index, col(event, "ATT"), col(event, "std_error"))],
           "dynamic_overall": [float(col(event_overall, "ATT").iloc[0]),
                               float(col(event_overall, "std_error").iloc[0])]}
    return det["simple"][0], det["simple"][1], det


CS_FITTERS = {"evalkit": _cs_evalkit, "diff-diff": _cs_diff_diff, "csdid": _cs_csdid, "differences": _cs_differences}


def _versions(library: str) -> dict:
    import pandas as pd
    import scipy

    v = {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
         "scipy": scipy.__version__}
    if library == "evalkit":
        import evalkit
        v["evalkit"] = evalkit.__version__
    elif library == "pyfixest":
        import pyfixest
        v["pyfixest"] = pyfixest.__version__
    elif library == "linearmodels":
        import linearmodels
        v["linearmodels"] = linearmodels.__version__
    elif library == "diff-diff":
        import diff_diff
        from diff_diff._backend import HAS_RUST_BACKEND

        v["diff-diff"] = diff_diff.__version__
        v["diff-diff_rust_backend"] = bool(HAS_RUST_BACKEND)
    elif library == "csdid":
        from importlib.metadata import version

        import csdid  # noqa: F401
        v["csdid"] = version("csdid")
    elif library == "differences":
        from importlib.metadata import version

        import differences  # noqa: F401
        v["differences"] = version("differences")
        try:
            v["polars"] = version("polars")
        except Exception:
            pass
    return v


def _evalkit_source() -> dict:
    """Which evalkit was measured: git HEAD (+ dirty flag) and a hash of its .py sources."""
    import hashlib
    import subprocess

    import evalkit

    root = os.path.dirname(os.path.abspath(evalkit.__file__))
    h = hashlib.sha256()
    for dirpath, dirnames, files in os.walk(root):
        dirnames.sort()
        for fn in sorted(files):
            if fn.endswith(".py"):
                path = os.path.join(dirpath, fn)
                h.update(os.path.relpath(path, root).encode())
                with open(path, "rb") as f:
                    h.update(f.read())
    out = {"evalkit_src_sha": h.hexdigest()[:10]}
    try:
        repo = os.path.dirname(root)
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                              timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "evalkit"], cwd=repo, capture_output=True,
                               text=True, timeout=30).stdout.strip()
        out["evalkit_git"] = head + ("+dirty" if dirty else "")
    except Exception:
        pass
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--library", choices=sorted(set(FITTERS) | set(CS_FITTERS)), required=True)
    ap.add_argument("--design", choices=("twfe", "cs"), default="twfe",
                    help="twfe: y ~ d + x | unit + t (CR1); cs: Callaway-Sant'Anna ATT(g,t) + simple/dynamic")
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--unbalanced", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--shuffle", action="store_true", help="rows in random order (see generate.py)")
    ap.add_argument("--repeats", type=int, default=1, help="warm calls timed (median reported)")
    ap.add_argument("--profile", default=None, help="after the timed calls, cProfile one more call; write pstats here")
    a = ap.parse_args(argv)

    warnings.simplefilter("ignore")
    detail = {}
    if a.design == "cs":
        fit_cs = CS_FITTERS[a.library]

        def fit(df):
            est, se, det = fit_cs(df)
            detail["last"] = det
            return est, se
    else:
        fit = FITTERS[a.library]
    out: dict = {"library": a.library, "rows_requested": a.rows, "unbalanced": a.unbalanced, "seed": a.seed,
                 "shuffled": a.shuffle, "design": a.design}

    # import the library before generating data: import cost belongs to neither timing
    t0 = time.perf_counter()
    out["versions"] = _versions(a.library)
    if a.library == "evalkit":
        out.update(_evalkit_source())
    out["import_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    df = make_panel(a.rows, unbalanced=a.unbalanced, seed=a.seed, shuffle=a.shuffle,
                    cohorts=CS_COHORTS if a.design == "cs" else COHORTS)
    out["generate_s"] = time.perf_counter() - t0
    out["rows"] = int(len(df))
    out["units"] = int(df["unit"].max()) + 1
    gc.collect()
    out["rss_after_gen_mb"] = _status_mb("VmRSS")
    out["maxrss_after_gen_mb"] = _maxrss_mb()
    can_reset = _reset_peak()
    out["peak_reset_supported"] = can_reset

    # cold: first call in the process (lazy imports, first-touch allocations, any JIT)
    out["loadavg_start"] = os.getloadavg()[0]
    c0, t0 = time.process_time(), time.perf_counter()
    est, se = fit(df)
    out["cold_s"] = time.perf_counter() - t0
    out["cold_cpu_s"] = time.process_time() - c0
    out["cold_hwm_mb"] = _status_mb("VmHWM") if can_reset else None
    gc.collect()

    warm = []
    out["rss_before_warm_mb"] = _status_mb("VmRSS")
    if can_reset:
        _reset_peak()
    warm_cpu = []
    for _ in range(a.repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        est2, se2 = fit(df)
        warm.append(time.perf_counter() - t0)
        warm_cpu.append(time.process_time() - c0)
        gc.collect()
    out["loadavg_end"] = os.getloadavg()[0]
    out["warm_hwm_mb"] = _status_mb("VmHWM") if can_reset else None
    out["warm_all_s"] = warm
    out["warm_s"] = statistics.median(warm)
    out["warm_min_s"] = min(warm)
    # CPU seconds of the whole process (all threads) per warm call: less sensitive than wall time to
    # other work on the machine, but it adds up the threads of a multi-threaded library
    out["warm_cpu_all_s"] = warm_cpu
    out["warm_cpu_s"] = statistics.median(warm_cpu)
    out["threads"] = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None
    out["peak_rss_mb"] = _maxrss_mb()
    base = out["rss_after_gen_mb"]
    if can_reset and base is not None:
        out["cold_increment_mb"] = out["cold_hwm_mb"] - base
        out["warm_increment_mb"] = out["warm_hwm_mb"] - out["rss_before_warm_mb"]
    out["estimate"], out["std_error"] = est2, se2
    if a.profile:  # an extra, untimed call under cProfile (its overhead stays out of warm_s)
        import cProfile

        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        fit(df)
        prof.disable()
        out["profiled_call_s"] = time.perf_counter() - t0
        prof.dump_stats(a.profile)
    out["cold_warm_identical"] = bool(est == est2 and se == se2)
    if a.design == "cs":
        out["detail"] = detail["last"]
    out["status"] = "ok"
    print("BENCH_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    try:
        main()
    except MemoryError:
        print("BENCH_JSON " + json.dumps({"status": "oom", "error": "MemoryError"}), flush=True)
        sys.exit(3)
