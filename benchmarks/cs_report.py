"""Agreement checks, performance bars and the markdown table of the Callaway-Sant'Anna benchmark
(``run.py --design cs``): evalkit ``staggered.att_gt`` vs diff-diff ``CallawaySantAnna`` vs csdid vs differences ``ATTgt``.

Every worker returns the ATT(g,t) cells, the simple aggregation and the dynamic (event-study)
components with their analytic (influence-function) SEs; agreement is checked against evalkit on
the same rows: estimates within ``EST_ATOL`` (absolute, every cell and every aggregate), SEs within
``SE_RTOL`` (relative).
"""
from __future__ import annotations

import growth

CS_LIBRARIES = ("evalkit", "diff-diff", "csdid", "differences")
EST_ATOL = 1e-8
SE_RTOL = 1e-6
BAR_DD = 2.0  # diff-diff warm / evalkit warm on 8M balanced rows
BAR_CSDID = 5.0  # csdid warm / evalkit warm
BAR_MEM_MB = 2048.0  # evalkit's peak memory (the issue: "under 2 GB peak memory")
BAR_ROWS = 8_000_000


def _key(r: dict) -> tuple:
    return (r["library"], int(r["rows_requested"]), float(r["unbalanced"]), bool(r.get("shuffled", False)))


def _find(results, library, rows, unbalanced, shuffled=False):
    for r in results:
        if _key(r) == (library, rows, unbalanced, shuffled):
            return r
    return None


def _compare(det: dict, ref: dict) -> dict:
    """Largest absolute estimate difference and relative SE difference against evalkit's detail."""
    est_d, se_d, missing = 0.0, 0.0, []

    def upd(a, b, sa, sb, what):
        nonlocal est_d, se_d
        est_d = max(est_d, abs(a - b))
        if sb is not None and sa is not None and sb == sb and sa == sa:
            se_d = max(se_d, abs(sa - sb) / max(abs(sb), 1e-300))

    ref_gt = {(g, t): (a, s) for g, t, a, s in ref["att_gt"]}
    got_gt = {(g, t): (a, s) for g, t, a, s in det["att_gt"]}
    for k, (a, s) in ref_gt.items():
        if k not in got_gt:
            missing.append(f"ATT{k}")
            continue
        upd(got_gt[k][0], a, got_gt[k][1], s, k)
    upd(det["simple"][0], ref["simple"][0], det["simple"][1], ref["simple"][1], "simple")
    ref_e = {e: (a, s) for e, a, s in ref["dynamic"]}
    got_e = {e: (a, s) for e, a, s in det["dynamic"]}
    for e, (a, s) in ref_e.items():
        if e not in got_e:
            missing.append(f"e={e}")
            continue
        upd(got_e[e][0], a, got_e[e][1], s, e)
    if det.get("dynamic_overall") and ref.get("dynamic_overall"):
        upd(det["dynamic_overall"][0], ref["dynamic_overall"][0], det["dynamic_overall"][1], ref["dynamic_overall"][1], "dyn")
    return {"est_abs_diff": est_d, "se_rel_diff": se_d, "missing": missing,
            "n_cells": len(det["att_gt"]), "n_cells_evalkit": len(ref["att_gt"])}


def annotate(results: list[dict]) -> None:
    for r in results:
        for k in ("agreement", "ratio_to_evalkit", "cpu_ratio_to_evalkit", "compare"):
            r.pop(k, None)
        ek = _find(results, "evalkit", int(r["rows_requested"]), float(r["unbalanced"]), bool(r.get("shuffled", False)))
        if r["library"] == "evalkit" or r.get("status") != "ok" or ek is None or ek.get("status") != "ok":
            continue
        r["ratio_to_evalkit"] = r["warm_s"] / ek["warm_s"]
        if r.get("warm_cpu_s") and ek.get("warm_cpu_s"):
            r["cpu_ratio_to_evalkit"] = r["warm_cpu_s"] / ek["warm_cpu_s"]
        c = _compare(r["detail"], ek["detail"])
        r["compare"] = c
        r["agreement"] = bool(c["est_abs_diff"] <= EST_ATOL and c["se_rel_diff"] <= SE_RTOL and not c["missing"]
                              and r["rows"] == ek["rows"])


def _load(r: dict) -> str:
    a, b = r.get("loadavg_start"), r.get("loadavg_end")
    return "—" if a is None else f"{a:.1f}→{b:.1f}"


def _fmt_s(x) -> str:
    return "—" if x is None else (f"{x:.3f}" if x < 10 else f"{x:.1f}")


def bars(results: list[dict]) -> list[tuple[str, str, bool | None]]:
    out = []
    for lib, bar in (("diff-diff", BAR_DD), ("csdid", BAR_CSDID)):
        r = _find(results, lib, BAR_ROWS, 0.0)
        name = f"8M balanced: {lib} warm / evalkit warm >= {bar:g} (same run)"
        if r is None or "ratio_to_evalkit" not in r:
            out.append((name, "not measured" if r is None else r.get("status", "?"), None))
            continue
        cpu = r.get("cpu_ratio_to_evalkit")
        val = (f"{r['ratio_to_evalkit']:.2f}x wall" + (f" (CPU-time ratio {cpu:.2f}x)" if cpu else "")
               + f"; load {_load(r)}; estimates agree: {'yes' if r.get('agreement') else 'NO'}")
        out.append((name, val, r["ratio_to_evalkit"] >= bar))
    ek = _find(results, "evalkit", BAR_ROWS, 0.0)
    name = f"8M balanced: evalkit peak memory < {BAR_MEM_MB:.0f} MB"
    if ek is None or ek.get("status") != "ok":
        out.append((name, "not measured" if ek is None else ek["status"], None))
    else:
        out.append((name, f"whole process {ek['peak_rss_mb']:.0f} MB (data generation included); estimator "
                          f"+{max(ek.get('cold_increment_mb') or 0, ek.get('warm_increment_mb') or 0):.0f} MB",
                    ek["peak_rss_mb"] < BAR_MEM_MB))
    return out


def _sources(results) -> str:
    seen = {}
    for r in results:
        if r["library"] == "evalkit" and r.get("status") == "ok":
            seen.setdefault(f"{r.get('evalkit_git', '?')} / {r.get('evalkit_src_sha', '?')}", []).append(
                f"{int(r['rows_requested']):.0e}")
    if not seen:
        return "—"
    if len(seen) == 1:
        return next(iter(seen))
    return f"**{len(seen)} different states**: " + "; ".join(f"{k} ({', '.join(v)})" for k, v in seen.items())


def to_markdown(doc: dict) -> str:
    results = sorted(doc["results"], key=lambda r: (int(r["rows_requested"]), float(r["unbalanced"]),
                                                    CS_LIBRARIES.index(r["library"])))
    m = doc["machine"]
    lines = [
        "# Callaway-Sant'Anna benchmark: evalkit vs diff-diff vs csdid vs differences",
        "",
        f"Generated {doc['generated']} by `benchmarks/run.py --design cs`. Machine: {m.get('nproc')} CPUs "
        f"({m.get('cpu', '?')}), {m.get('mem_total_gb', '?')} GB RAM, Python {m.get('python')}, "
        f"numpy BLAS {m.get('numpy_blas', '?')}; thread env {m.get('thread_env') or 'unset (library defaults)'}.",
        f"Versions: {doc.get('versions', {})}.",
        "evalkit source measured (git HEAD, hash of evalkit/**/*.py): " + _sources(results) + ".",
        "",
        "Task (inside the timed region): ATT(g,t) with never-treated controls, no covariates, doubly robust, "
        "analytic influence-function SEs (no bootstrap), then the simple and the dynamic (event-study) "
        "aggregations. Panel: `rows // 8` units x T = 8, four entry cohorts (periods 3, 4, 5, 6) and never "
        "treated, 1/5 each (assigned by cluster); 28 ATT(g,t) cells (varying base period). `warm s` = median "
        "wall time of the warm calls; `warm CPU s` = their median process CPU time; `load` = 1-min load "
        "average at start → end; `peak RSS` = whole-process `ru_maxrss` (data generation included); `est. +MB` "
        "= the estimator's peak above the RSS after data generation (cold / warm). `vs evalkit` = this library's "
        f"warm time ÷ evalkit's. Agreement with evalkit on the same rows: every ATT(g,t), the simple ATT and "
        f"every event-time component (and the dynamic overall of csdid and differences) within {EST_ATOL:g} absolute; their SEs "
        f"within {SE_RTOL:g} relative.",
        "",
        "| library | rows | warm s | warm CPU s | cold s | load | peak RSS MB | est. +MB cold / warm | vs evalkit (warm) "
        "| simple ATT | SE | cells | agreement (max abs est diff, max rel SE diff) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        rows = r.get("rows", r["rows_requested"])
        if r.get("status") != "ok":
            lines.append(f"| {r['library']} | {rows:,} | **{r['status'].upper()}** | | | | | | | | | | "
                         f"{str(r.get('error', ''))[:80]} |")
            continue
        ratio = "1" if r["library"] == "evalkit" else (f"{r['ratio_to_evalkit']:.2f}" if "ratio_to_evalkit" in r else "—")
        if r["library"] == "evalkit":
            agree = "reference"
        elif "compare" not in r:
            agree = "—"
        else:
            c = r["compare"]
            agree = (("✓" if r["agreement"] else "✗") + f" {c['est_abs_diff']:.1e}, {c['se_rel_diff']:.1e}"
                     + (f"; missing {', '.join(c['missing'])}" if c["missing"] else ""))
        inc = f"{r.get('cold_increment_mb', float('nan')):.0f} / {r.get('warm_increment_mb', float('nan')):.0f}"
        lines.append(
            f"| {r['library']} | {rows:,} | {_fmt_s(r['warm_s'])} | {_fmt_s(r.get('warm_cpu_s'))} | "
            f"{_fmt_s(r['cold_s'])} | {_load(r)} | {r['peak_rss_mb']:.0f} | {inc} | {ratio} | "
            f"{r['estimate']:.10f} | {r['std_error']:.6g} | {len(r['detail']['att_gt'])} | {agree} |")
    lines += ["", "## Performance bars (evalkit, issue 5)", "",
              "Judged on wall time of the warm call, measured in the same run. The CPU-time ratio is a cross-check "
              "against load from other jobs on this shared machine.", ""]
    for name, val, ok in bars(results):
        mark = "not measured" if ok is None else ("MET" if ok else "NOT MET")
        lines.append(f"- {name}: {val} — **{mark}**")
    skipped = doc.get("skipped", [])
    if skipped:
        lines += ["", "Not run: " + "; ".join(skipped) + "."]
    lines += [""] + growth.growth_markdown(results, CS_LIBRARIES, CS_VARIANTS)
    return "\n".join(lines) + "\n"


CS_VARIANTS = [("balanced", lambda r: float(r["unbalanced"]) == 0 and not r.get("shuffled"))]
