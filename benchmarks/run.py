"""Benchmark evalkit's TWFE against pyfixest (and linearmodels PanelOLS) on claims-sized panels.

For every (library, size, balance) one fresh subprocess (``_worker.py``, run with this same
interpreter, ``sys.executable``) regenerates the data from the seed, fits once cold and then
``--repeats`` times warm; it runs under a memory cap (``RLIMIT_AS``) and a timeout, and an
out-of-memory or timed-out run is recorded as such instead of stopping the suite. Subprocesses
run one at a time, so each has the whole machine.

    python benchmarks/run.py                          # 1e5, 1e6, 1e7 rows; balanced and 10% dropped
    python benchmarks/run.py --sizes 1e5,1e6
    python benchmarks/run.py --sizes 8e6 --libraries evalkit,pyfixest --merge   # the issue's 8M-row bars
    python benchmarks/run.py --sizes 8e6 --libraries evalkit --profile-evalkit --merge
    python benchmarks/run.py --design cs              # Callaway-Sant'Anna: evalkit vs diff-diff vs csdid vs
                                                      # differences (balanced, 1e5, 1e6, 1e7 rows; results/cs_latest.*)

Writes ``benchmarks/results/latest.json`` (every measurement, machine facts) and
``benchmarks/results/latest.md`` (the table and the performance bars). With ``--merge`` the new
measurements replace matching (library, size, balance) entries of the existing latest.json and
the rest are kept.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cs_report  # noqa: E402
import growth  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
WORKER = os.path.join(HERE, "_worker.py")

LIBRARIES = ("evalkit", "pyfixest", "linearmodels")
COEF_RTOL = 1e-8  # evalkit vs pyfixest, relative
SE_RTOL = 1e-6
BAR_BALANCED = 5.0  # pyfixest warm / evalkit warm on 8M balanced
BAR_UNBALANCED = 3.0  # ... on 8M with 10% of unit-periods dropped
BAR_MEM_MB = 2048.0  # evalkit's estimator increment over the data-generation RSS
BAR_ROWS = 8_000_000


def _parse_size(s: str) -> int:
    return int(float(s))


def machine_facts() -> dict:
    facts = {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "executable": sys.executable,
    }
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    facts["mem_total_gb"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    facts["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    facts["thread_env"] = {k: os.environ[k] for k in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS",
        "NUMBA_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    try:  # which evalkit was measured: the commit, and whether its files differed from it
        repo = os.path.dirname(HERE)
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                              timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "evalkit"], cwd=repo, capture_output=True,
                               text=True, timeout=30).stdout.strip()
        facts["evalkit_git"] = head + (" + uncommitted changes under evalkit/" if dirty else "")
    except Exception:  # pragma: no cover - informational only
        pass
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        facts["numpy_blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # pragma: no cover - informational only
        pass
    return facts


def run_one(library: str, rows: int, unbalanced: float, **kw) -> dict:
    """One measurement in a fresh subprocess (see _run_one); its numba cache directory is removed after."""
    kw.setdefault("numba_dirs", [])
    try:
        return _run_one(library, rows, unbalanced, **kw)
    finally:
        import shutil

        for d in kw["numba_dirs"]:
            shutil.rmtree(d, ignore_errors=True)


def _run_one(library: str, rows: int, unbalanced: float, *, timeout: float, mem_gb: float, repeats: int,
             seed: int | None, profile: str | None, shuffle: bool = False, design: str = "twfe",
             numba_dirs: list) -> dict:
    cmd = [sys.executable, WORKER, "--library", library, "--rows", str(rows), "--unbalanced", str(unbalanced),
           "--repeats", str(repeats), "--design", design]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if profile:
        cmd += ["--profile", profile]
    if shuffle:
        cmd += ["--shuffle"]
    limit = int(mem_gb * 2**30)

    def _cap():  # runs in the child before exec
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = dict(os.environ)
    # a fresh numba cache per process, in case a numba backend is in use: "cold" then includes JIT
    env["NUMBA_CACHE_DIR"] = numba_dir = tempfile.mkdtemp(prefix="bench-numba-")
    numba_dirs.append(numba_dir)
    base = {"library": library, "rows_requested": rows, "unbalanced": unbalanced, "shuffled": shuffle, "mem_cap_gb": mem_gb,
            "timeout_s": timeout, "design": design}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_cap, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return {**base, "status": "timeout", "wall_s": time.perf_counter() - t0,
                "error": f"no result within {timeout:.0f} s (killed)"}
    wall = time.perf_counter() - t0
    rec = None
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            rec = json.loads(line[len("BENCH_JSON "):])
    tail = "\n".join(err.strip().splitlines()[-5:])
    oom_markers = ("MemoryError", "Unable to allocate", "Cannot allocate memory", "bad_alloc",
                   "memory allocation of", "out of memory")
    if rec is None or rec.get("status") != "ok":
        if (rec and rec.get("status") == "oom") or any(m in err for m in oom_markers) or proc.returncode == -signal.SIGKILL:
            status = "oom"
        else:
            status = "error"
        return {**base, **(rec or {}), "status": status, "returncode": proc.returncode, "wall_s": wall,
                "error": tail or f"exit code {proc.returncode}"}
    return {**base, **rec, "wall_s": wall, "returncode": proc.returncode}


_key, _find = cs_report._key, cs_report._find  # one definition of how result rows are matched


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def annotate(results: list[dict]) -> None:
    """Agreement with evalkit and speed ratios, in place."""
    for r in results:
        r.pop("agreement", None)
        r.pop("ratio_to_evalkit", None)
        r.pop("cpu_ratio_to_evalkit", None)
        ek = _find(results, "evalkit", int(r["rows_requested"]), float(r["unbalanced"]), bool(r.get("shuffled", False)))
        if r["library"] == "evalkit" or r.get("status") != "ok" or ek is None or ek.get("status") != "ok":
            continue
        r["ratio_to_evalkit"] = r["warm_s"] / ek["warm_s"]
        if r.get("warm_cpu_s") and ek.get("warm_cpu_s"):
            r["cpu_ratio_to_evalkit"] = r["warm_cpu_s"] / ek["warm_cpu_s"]
        r["coef_rel_diff"] = _rel(r["estimate"], ek["estimate"])
        r["n_rows_equal"] = r["rows"] == ek["rows"]
        if r["library"] == "pyfixest":
            r["se_rel_diff"] = _rel(r["std_error"], ek["std_error"])
            r["agreement"] = bool(r["coef_rel_diff"] <= COEF_RTOL and r["se_rel_diff"] <= SE_RTOL and r["n_rows_equal"])
        else:  # linearmodels: other SE convention, coefficients only
            r["agreement"] = bool(r["coef_rel_diff"] <= COEF_RTOL and r["n_rows_equal"])


def bars(results: list[dict]) -> list[tuple[str, str, bool | None]]:
    out = []
    for unb, bar, label in ((0.0, BAR_BALANCED, "balanced"), (None, BAR_UNBALANCED, "10% unbalanced")):
        cands = [r for r in results if r["library"] == "pyfixest" and int(r["rows_requested"]) == BAR_ROWS
                 and not r.get("shuffled")
                 and ((unb == 0.0 and float(r["unbalanced"]) == 0.0) or (unb is None and float(r["unbalanced"]) > 0))]
        r = cands[0] if cands else None
        if r is None or "ratio_to_evalkit" not in r:
            out.append((f"8M {label}: pyfixest warm / evalkit warm >= {bar:g}", "not measured", None))
        else:
            ok = r["ratio_to_evalkit"] >= bar
            cpu = r.get("cpu_ratio_to_evalkit")
            val = f"{r['ratio_to_evalkit']:.2f}x wall" + (f" (CPU-time ratio {cpu:.2f}x; load {_load(r)})" if cpu else "")
            out.append((f"8M {label}: pyfixest warm / evalkit warm >= {bar:g}", val, ok))
    for r in results:
        if r["library"] == "evalkit" and int(r["rows_requested"]) == BAR_ROWS and not r.get("shuffled"):
            label = "balanced" if float(r["unbalanced"]) == 0 else f"{r['unbalanced']:.0%} unbalanced"
            if r.get("status") != "ok":
                out.append((f"8M {label}: evalkit estimator memory increment <= {BAR_MEM_MB:.0f} MB", r["status"], False))
                continue
            inc = max(r.get("cold_increment_mb") or 0.0, r.get("warm_increment_mb") or 0.0)
            out.append((f"8M {label}: evalkit estimator memory increment <= {BAR_MEM_MB:.0f} MB",
                        f"{inc:.0f} MB (cold {r.get('cold_increment_mb', float('nan')):.0f}, warm {r.get('warm_increment_mb', float('nan')):.0f})",
                        inc <= BAR_MEM_MB))
    return out


def _sources(results: list[dict]) -> str:
    seen: dict[str, list[str]] = {}
    for r in results:
        if r["library"] == "evalkit" and r.get("status") == "ok":
            tag = f"{r.get('evalkit_git', '?')} / {r.get('evalkit_src_sha', '?')}"
            seen.setdefault(tag, []).append(f"{int(r['rows_requested']):.0e}{'u' if float(r['unbalanced']) else 'b'}"
                                            f"{'s' if r.get('shuffled') else ''}")
    if not seen:
        return "—"
    if len(seen) == 1:
        return next(iter(seen))
    return (f"**{len(seen)} different states** (evalkit was edited while the suite ran; each row's "
            f"`evalkit_git`/`evalkit_src_sha` is in latest.json): " + "; ".join(
                f"{k} ({', '.join(v)})" for k, v in seen.items()) + " — b/u = balanced/unbalanced, s = shuffled")


def _load(r: dict) -> str:
    a, b = r.get("loadavg_start"), r.get("loadavg_end")
    return "—" if a is None else f"{a:.1f}→{b:.1f}"


def _fmt_s(x) -> str:
    return "—" if x is None else (f"{x:.3f}" if x < 10 else f"{x:.1f}")


def to_markdown(doc: dict) -> str:
    results = sorted(doc["results"], key=lambda r: (int(r["rows_requested"]), bool(r.get("shuffled")),
                                                    float(r["unbalanced"]), LIBRARIES.index(r["library"])))
    m = doc["machine"]
    lines = [
        "# TWFE benchmark: evalkit vs pyfixest vs linearmodels",
        "",
        f"Generated {doc['generated']} by `benchmarks/run.py`. Machine: {m.get('nproc')} CPUs "
        f"({m.get('cpu', '?')}), {m.get('mem_total_gb', '?')} GB RAM, Python {m.get('python')}, "
        f"numpy BLAS {m.get('numpy_blas', '?')}; thread env {m.get('thread_env') or 'unset (library defaults)'}.",
        f"Versions: {doc.get('versions', {})}.",
        "evalkit source measured (git HEAD, hash of evalkit/**/*.py): " + _sources(results) + ".",
        "",
        "Model: `y ~ d + x | unit + t`, CR1 clustered on `cl` (200 clusters, units nested), T = 8. "
        "`warm s` = median wall time of the timed warm calls (the cold call is the first in the process, "
        "lazy imports included); `warm CPU s` = median process CPU time of those calls (all threads "
        "added up); `load` = 1-minute load average when the subprocess started and finished its timed "
        "calls (above ~1 on this machine means something else was running and wall times are inflated); "
        "`peak RSS` = whole-process `ru_maxrss` (data generation included); `est. +MB` = the estimator's "
        "peak RSS above the RSS right after data generation (cold / warm call). `vs evalkit` = this "
        "library's warm time ÷ evalkit's (the pyfixest row is the pyfixest/evalkit ratio). Agreement: "
        f"pyfixest coefficient within {COEF_RTOL:g} and SE within {SE_RTOL:g} (relative) of evalkit's; "
        "linearmodels coefficient only (its clustered-SE small-sample convention differs; its SE is "
        "listed, not compared).",
        "",
        "| library | rows | balanced | warm s | warm CPU s | cold s | load | peak RSS MB | RSS after gen MB | est. +MB cold / warm | vs evalkit (warm) | estimate | SE | agreement |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        bal = "yes" if float(r["unbalanced"]) == 0 else f"no ({r['unbalanced']:.0%} dropped)"
        if r.get("shuffled"):
            bal += ", rows shuffled"
        rows = r.get("rows", r["rows_requested"])
        if r.get("status") != "ok":
            lines.append(f"| {r['library']} | {rows:,} | {bal} | **{r['status'].upper()}** | | | | | | | | | | {r.get('error', '')[:80]} |")
            continue
        ratio = "1" if r["library"] == "evalkit" else (f"{r['ratio_to_evalkit']:.2f}" if "ratio_to_evalkit" in r else "—")
        if r["library"] == "evalkit":
            agree = "reference"
        elif "agreement" not in r:
            agree = "—"
        elif r["library"] == "pyfixest":
            agree = (("✓" if r["agreement"] else "✗") + f" coef {r['coef_rel_diff']:.1e}, SE {r['se_rel_diff']:.1e}")
        else:
            agree = ("✓" if r["agreement"] else "✗") + f" coef {r['coef_rel_diff']:.1e} (SE not compared)"
        inc = f"{r.get('cold_increment_mb', float('nan')):.0f} / {r.get('warm_increment_mb', float('nan')):.0f}"
        lines.append(
            f"| {r['library']} | {rows:,} | {bal} | {_fmt_s(r['warm_s'])} | {_fmt_s(r.get('warm_cpu_s'))} | "
            f"{_fmt_s(r['cold_s'])} | {_load(r)} | "
            f"{r['peak_rss_mb']:.0f} | {r['rss_after_gen_mb']:.0f} | {inc} | {ratio} | {r['estimate']:.10f} | "
            f"{r['std_error']:.6g} | {agree} |")
    lines += ["", "## Performance bars (evalkit)", "",
              "Judged on wall time as specified. Wall times on this shared machine move with the load from other "
              "jobs (see `load`), so the ratio of CPU times is shown as a cross-check; it adds up threads, "
              "which would count against a library that runs several at once.", ""]
    for name, val, ok in bars(results):
        mark = "not measured" if ok is None else ("MET" if ok else "NOT MET")
        lines.append(f"- {name}: {val} — **{mark}**")
    skipped = doc.get("skipped", [])
    if skipped:
        lines += ["", "Not run: " + "; ".join(skipped) + "."]
    lines += [""] + growth.growth_markdown(results, LIBRARIES, TWFE_VARIANTS)
    return "\n".join(lines) + "\n"


TWFE_VARIANTS = [
    ("balanced", lambda r: float(r["unbalanced"]) == 0 and not r.get("shuffled")),
    ("10% dropped", lambda r: float(r["unbalanced"]) > 0 and not r.get("shuffled")),
]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="TWFE benchmark: evalkit vs pyfixest vs linearmodels")
    ap.add_argument("--design", choices=("twfe", "cs"), default="twfe",
                    help="twfe (default): evalkit vs pyfixest vs linearmodels; cs: Callaway-Sant'Anna ATT(g,t) + "
                         "simple/dynamic aggregations, evalkit vs diff-diff vs csdid (results/cs_latest.*)")
    ap.add_argument("--sizes", default="1e5,1e6,1e7",
                    help="comma-separated row counts (before dropping); the issue's bars are at 8e6")
    ap.add_argument("--libraries", default=None, help="comma-separated (default: all of the design's libraries)")
    ap.add_argument("--balance", choices=("both", "balanced", "unbalanced"), default=None,
                    help="default: both for twfe, balanced for cs")
    ap.add_argument("--csdid-max-rows", type=_parse_size, default=None, help="skip csdid above this many rows")
    ap.add_argument("--unbalanced", type=float, default=0.10, help="share of unit-periods dropped in the unbalanced runs")
    ap.add_argument("--linearmodels-max-rows", type=_parse_size, default=10_000_000,
                    help="skip linearmodels above this many rows")
    ap.add_argument("--repeats", type=int, default=3, help="warm calls per subprocess (median reported)")
    ap.add_argument("--repeats-for", default="",
                    help="per-library warm calls, e.g. 'differences=1,linearmodels=1' (slow libraries at 1e7 rows)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per subprocess")
    ap.add_argument("--mem-gb", type=float, default=16.0, help="RLIMIT_AS per subprocess, GB")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--shuffle", action="store_true",
                    help="rows in random order instead of sorted by unit, period (separate table rows)")
    ap.add_argument("--max-load", type=float, default=None,
                    help="before each subprocess wait (up to --idle-wait s) for the 1-min load average to drop below this")
    ap.add_argument("--idle-wait", type=float, default=600.0)
    ap.add_argument("--profile-evalkit", action="store_true",
                    help="after the timed calls, cProfile one more evalkit call; pstats + text in results/profile_evalkit_*")
    ap.add_argument("--merge", action="store_true", help="merge into the existing results/latest.json")
    ap.add_argument("--render-only", action="store_true",
                    help="run nothing: rewrite latest.md (and the README table) from latest.json")
    ap.add_argument("--out", default=None, help="default results/latest (twfe) or results/cs_latest (cs)")
    a = ap.parse_args(argv)
    cs = a.design == "cs"
    known = cs_report.CS_LIBRARIES if cs else LIBRARIES
    if a.out is None:
        a.out = os.path.join(RESULTS, "cs_latest" if cs else "latest")
    if a.balance is None:
        a.balance = "balanced" if cs else "both"
    if a.libraries is None:
        a.libraries = ",".join(known)
    _annotate, _bars, _markdown = ((cs_report.annotate, cs_report.bars, cs_report.to_markdown) if cs
                                   else (annotate, bars, to_markdown))
    default_out = os.path.abspath(os.path.join(RESULTS, "cs_latest" if cs else "latest"))

    sizes = [_parse_size(s) for s in a.sizes.split(",") if s.strip()]
    libs = [s.strip() for s in a.libraries.split(",") if s.strip()]
    for lib in libs:
        if lib not in known:
            ap.error(f"unknown library {lib!r}; choose from {known}")
    repeats_for = {k.strip(): int(v) for k, v in (kv.split("=") for kv in a.repeats_for.split(",") if kv.strip())}
    shares = {"both": [0.0, a.unbalanced], "balanced": [0.0], "unbalanced": [a.unbalanced]}[a.balance]
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)

    doc = {"results": [], "skipped": []}
    if a.render_only:
        with open(a.out + ".json") as f:
            doc = json.load(f)
        _annotate(doc["results"])
        doc["bars"] = [{"bar": n, "value": v, "met": ok} for n, v, ok in _bars(doc["results"])]
        doc["growth"] = _growth(doc["results"], cs)
        with open(a.out + ".json", "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
        md = _markdown(doc)
        with open(a.out + ".md", "w") as f:
            f.write(md)
        if os.path.abspath(a.out) == default_out:
            _update_readme(md, cs)
        print(md)
        return
    if a.merge and os.path.exists(a.out + ".json"):
        with open(a.out + ".json") as f:
            doc = json.load(f)
        doc.setdefault("skipped", [])
    new = []
    for rows in sizes:
        for share in shares:
            for lib in libs:
                tag = f"{lib} rows={rows:,} unbalanced={share:g}" + (" shuffled" if a.shuffle else "")
                if lib == "csdid" and a.csdid_max_rows is not None and rows > a.csdid_max_rows:
                    msg = f"csdid at {rows:,} rows (--csdid-max-rows {a.csdid_max_rows:,})"
                    if msg not in doc["skipped"]:
                        doc["skipped"].append(msg)
                    print(f"skip {tag}", flush=True)
                    continue
                if lib == "linearmodels" and rows > a.linearmodels_max_rows:
                    msg = f"linearmodels at {rows:,} rows (--linearmodels-max-rows {a.linearmodels_max_rows:,})"
                    if msg not in doc["skipped"]:
                        doc["skipped"].append(msg)
                    print(f"skip {tag}", flush=True)
                    continue
                prof = None
                if lib == "evalkit" and a.profile_evalkit:
                    prof = os.path.join(RESULTS, f"profile_evalkit_{'cs_' if cs else ''}{rows}_{'bal' if share == 0 else 'unbal'}"
                                                 f"{'_shuffled' if a.shuffle else ''}_run.pstats")
                if a.max_load is not None:
                    _wait_idle(a.max_load, a.idle_wait)
                print(f"run  {tag} ...", end=" ", flush=True)
                r = run_one(lib, rows, share, timeout=a.timeout, mem_gb=a.mem_gb, repeats=repeats_for.get(lib, a.repeats),
                            seed=a.seed, profile=prof, shuffle=a.shuffle, design=a.design)
                if r["status"] == "ok":
                    print(f"warm {r['warm_s']:.3f}s cold {r['cold_s']:.3f}s peak {r['peak_rss_mb']:.0f} MB "
                          f"est {r['estimate']:.10f} se {r['std_error']:.6g}", flush=True)
                else:
                    print(f"{r['status'].upper()}: {r.get('error', '')}", flush=True)
                if prof and r["status"] == "ok":
                    _profile_text(prof)
                new.append(r)
    keys = {_key(r) for r in new}
    doc["results"] = [r for r in doc["results"] if _key(r) not in keys] + new
    doc["generated"] = _dt.datetime.now().isoformat(timespec="seconds")
    doc["machine"] = machine_facts()
    versions = dict(doc.get("versions", {}))
    for r in doc["results"]:
        versions.update(r.get("versions", {}))
    doc["versions"] = versions
    _annotate(doc["results"])
    doc["bars"] = [{"bar": n, "value": v, "met": ok} for n, v, ok in _bars(doc["results"])]
    doc["growth"] = _growth(doc["results"], cs)
    with open(a.out + ".json", "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    md = _markdown(doc)
    with open(a.out + ".md", "w") as f:
        f.write(md)
    if os.path.abspath(a.out) == default_out:
        _update_readme(md, cs)
    print()
    print(md)


def _growth(results: list[dict], cs: bool) -> list[dict]:
    """Per-library cost growth (JSON-friendly keys)."""
    libs, variants = ((cs_report.CS_LIBRARIES, cs_report.CS_VARIANTS) if cs else (LIBRARIES, TWFE_VARIANTS))
    out = []
    for g in growth.growth_rows(results, libs, variants):
        out.append({k: ({str(n): v for n, v in val.items()} if isinstance(val, dict) else val) for k, val in g.items()})
    return out


README = os.path.join(HERE, "README.md")
_START, _END = "<!-- results:start (written by run.py) -->", "<!-- results:end -->"


_CS_START, _CS_END = "<!-- cs-results:start (written by run.py --design cs) -->", "<!-- cs-results:end -->"


def _update_readme(md: str, cs: bool = False) -> None:
    """Copy the latest table into benchmarks/README.md between the result markers (the CS ones for cs)."""
    if not os.path.exists(README):
        return
    with open(README) as f:
        text = f.read()
    start, end = (_CS_START, _CS_END) if cs else (_START, _END)
    if start not in text or end not in text:
        return
    body = md.split("\n", 2)[2] if md.startswith("# ") else md  # drop the title line
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    with open(README, "w") as f:
        f.write(head + start + "\n" + body.strip() + "\n" + end + tail)


def _wait_idle(max_load: float, limit: float) -> None:
    t0 = time.monotonic()
    while os.getloadavg()[0] >= max_load and time.monotonic() - t0 < limit:
        time.sleep(5)


def _profile_text(path: str) -> None:
    import io
    import pstats

    buf = io.StringIO()
    st = pstats.Stats(path, stream=buf)
    st.sort_stats("cumulative").print_stats(40)
    st.sort_stats("tottime").print_stats(30)
    with open(path.replace(".pstats", ".txt"), "w") as f:
        f.write(buf.getvalue())


if __name__ == "__main__":
    main()
