"""50 million member-quarters: Parquet -> DuckDB -> TWFE estimate, cells path and row path.

Issue 9's bar: "50 million member-quarters from Parquet through DuckDB to a TWFE estimate on this
2-core, 24 GB machine without running out of memory; the cost curve ... is ~linear in rows".

1. **Data** (``generate``): a balanced member x quarter panel written by DuckDB to Parquet in chunks
   of members (one file per chunk, ``part-00000.parquet`` ...), so generation never holds more than
   one chunk and nothing is ever in pandas. Columns: ``member_id`` (string, ``'M00000001'``),
   ``org_id`` (string, ``'ORG007'``; 200 organisations, members nested in them), ``quarter``
   (0..T-1, T = 20 by default: 5 years), ``aqc`` (0/1: the organisation's contract has started; staggered
   by organisation: entry in quarter 8, 12 or 16, or never, 1/4 each), ``spending`` (double:
   member effect + quarter trend + organisation-quarter shock + noise + a planted effect of -50).
   All draws come from DuckDB's ``hash`` of (member, quarter, seed), so the data do not depend on
   the chunking or on the thread schedule.
2. **Estimates**, each in a fresh subprocess under ``RLIMIT_AS`` (``--mem-gb``, 20 GB by default, below
   the machine's 24 GB) and a timeout; out-of-memory and timeouts are recorded, not fatal:

   * ``cells``: ``ek.scale.twfe("<dir>/*.parquet", outcome="spending", unit="member_id",
     time="quarter", treatment="aqc", cluster="org_id")``. DuckDB reads the Parquet files, checks the
     data contract, and compresses to organisation x stratum x quarter cells; evalkit estimates from
     the cells (CR1 by organisation). Only the cells reach pandas.
   * ``rows``: DuckDB encodes the string ids to integers (``member_id`` -> ``INTEGER`` by a join with
     the sorted distinct ids, ``org_id`` -> ``SMALLINT``), narrows the types (quarter ``SMALLINT``,
     aqc ``TINYINT``) and returns the rows sorted by member and quarter as a pandas frame with integer
     columns only (no Python strings); then ``ek.did.twfe(df, ..., cluster="org", vcov="CR1")``.
     The DuckDB read and the estimator are timed separately.

   Each subprocess makes the call ``--calls`` times (2 by default): ``first`` is the end-to-end cost
   in a fresh process (imports excluded), ``second`` the warm cost. It reports wall and CPU seconds
   (``time.process_time``: all threads, so DuckDB's 2 threads can give CPU > wall), peak RSS
   (``VmHWM``), the load average, the estimate and the SE.
3. **Agreement**: at every size the cells and the row estimates (and SEs) must agree to 1e-9
   (relative).
4. **Cost curve**: seconds per million rows and the log-log slope of time on rows, per path.

Usage (the data go to ``--workdir``, default a fresh directory under /tmp, and are deleted at the end
unless ``--keep``)::

    .venv/bin/python benchmarks/scale_50m.py                         # 1e6, 1e7, 2e7, 5e7 rows
    .venv/bin/python benchmarks/scale_50m.py --sizes 1e6 --calls 1   # smoke test
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, HERE)

T_DEFAULT = 20
N_ORGS = 200
AGREE_RTOL = 1e-9
ROLES = dict(outcome="spending", time="quarter", treatment="aqc")


# ----------------------------------------------------------------------------------------------
# data


def generate(outdir: str, n_rows: int, *, T: int = T_DEFAULT, seed: int = 11, chunk_rows: int = 5_000_000,
             threads: int | None = None) -> dict:
    """Write ``n_rows // T`` members x ``T`` quarters as Parquet files under ``outdir`` (in chunks)."""
    import duckdb

    n_members = n_rows // T
    per_chunk = max(1, chunk_rows // T)
    os.makedirs(outdir, exist_ok=True)
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    cohorts = (8, 12, 16) if T >= 17 else (T // 3, T // 2, 2 * T // 3)
    # hash(...) is a UBIGINT; u(x) maps it to [0, 1)
    u = "((hash({}) % 1000000007)::DOUBLE / 1000000007)"
    # standard normal-ish noise: sum of 4 uniforms, centred and scaled (variance 1)
    def norm(key: str) -> str:
        return "((" + " + ".join(u.format(f"{key}, {k}") for k in range(4)) + ") - 2.0) * sqrt(3.0)"

    t0 = time.perf_counter()
    files = 0
    for c, lo in enumerate(range(0, n_members, per_chunk)):
        hi = min(n_members, lo + per_chunk)
        path = os.path.join(outdir, f"part-{c:05d}.parquet")
        con.execute(f"""
            COPY (
              WITH m AS (
                SELECT i, (hash(i, {seed}, 'org') % {N_ORGS})::INTEGER AS o,
                       {norm(f"i, {seed}, 'alpha'")} * 30 AS alpha
                FROM range({lo}, {hi}) r(i)),
              o AS (
                SELECT o, CASE hash(o, {seed}, 'cohort') % 4 WHEN 0 THEN {cohorts[0]} WHEN 1 THEN {cohorts[1]}
                                                         WHEN 2 THEN {cohorts[2]} ELSE -1 END AS cohort
                FROM range({N_ORGS}) r(o))
              SELECT 'M' || lpad(m.i::VARCHAR, 8, '0') AS member_id,
                     'ORG' || lpad(m.o::VARCHAR, 3, '0') AS org_id,
                     q::INTEGER AS quarter,
                     (o.cohort >= 0 AND q >= o.cohort)::INTEGER AS aqc,
                     300 + 4 * q + m.alpha + {norm(f"m.o, q, {seed}, 'shock'")} * 10
                       + {norm(f"m.i, q, {seed}, 'eps'")} * 40
                       - 50 * (o.cohort >= 0 AND q >= o.cohort)::INTEGER AS spending
              FROM m JOIN o USING (o), range({T}) p(q)
              ORDER BY m.i, q
            ) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 1000000)""")
        files += 1
    info = {"rows": n_members * T, "members": n_members, "T": T, "orgs": N_ORGS, "files": files,
            "generate_s": time.perf_counter() - t0,
            "bytes": sum(os.path.getsize(os.path.join(outdir, f)) for f in os.listdir(outdir))}
    con.close()
    return info


# ----------------------------------------------------------------------------------------------
# one measurement (child process)


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _rows_frame(con, glob: str):
    """DuckDB: string ids -> integer codes, narrow types, rows sorted by member and quarter -> pandas."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE member_codes AS
        SELECT member_id, (row_number() OVER (ORDER BY member_id) - 1)::INTEGER AS member
        FROM (SELECT DISTINCT member_id FROM read_parquet('{glob}'))""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE org_codes AS
        SELECT org_id, (row_number() OVER (ORDER BY org_id) - 1)::SMALLINT AS org
        FROM (SELECT DISTINCT org_id FROM read_parquet('{glob}'))""")
    df = con.execute(f"""
        SELECT mc.member, oc.org, p.quarter::SMALLINT AS quarter, p.aqc::TINYINT AS aqc, p.spending
        FROM read_parquet('{glob}') p JOIN member_codes mc USING (member_id) JOIN org_codes oc USING (org_id)
        ORDER BY mc.member, p.quarter""").df()
    con.execute("DROP TABLE member_codes")
    con.execute("DROP TABLE org_codes")
    return df


def _child(kind: str, glob: str, calls: int, duckdb_mem: str | None, tmpdir: str | None) -> dict:
    import gc
    import warnings

    warnings.simplefilter("ignore")
    import duckdb

    import evalkit as ek

    out = {"kind": kind, "calls": []}
    for k in range(calls):
        con = duckdb.connect()  # a fresh connection per call: nothing cached between calls
        if duckdb_mem:
            con.execute(f"SET memory_limit = '{duckdb_mem}'")
        if tmpdir:
            con.execute(f"SET temp_directory = '{tmpdir}'")
        rec = {"loadavg_start": os.getloadavg()[0]}
        c0, t0 = time.process_time(), time.perf_counter()
        if kind == "cells":
            res = ek.scale.twfe(glob, unit="member_id", cluster="org_id", connection=con, **ROLES)
            rec["engine_note"] = res.conventions.notes[0] if res.conventions.notes else ""
        elif kind == "rows":
            df = _rows_frame(con, glob)
            rec["read_s"] = time.perf_counter() - t0
            rec["read_cpu_s"] = time.process_time() - c0
            rec["frame_mb"] = float(df.memory_usage(deep=True).sum() / 2**20)
            rec["dtypes"] = {c: str(t) for c, t in df.dtypes.items()}
            rec["rss_after_read_mb"] = _status_mb("VmRSS")
            c1, t1 = time.process_time(), time.perf_counter()
            res = ek.did.twfe(df, unit="member", cluster="org", vcov="CR1", **ROLES)
            rec["estimate_s"] = time.perf_counter() - t1
            rec["estimate_cpu_s"] = time.process_time() - c1
            del df
        else:
            raise ValueError(kind)
        rec["wall_s"] = time.perf_counter() - t0
        rec["cpu_s"] = time.process_time() - c0
        rec["loadavg_end"] = os.getloadavg()[0]
        rec["estimate"], rec["std_error"], rec["nobs"] = float(res.estimate), float(res.std_error), int(res.nobs)
        rec["maxrss_mb"] = _status_mb("VmHWM")
        out["calls"].append(rec)
        con.close()
        del res, con
        gc.collect()
    # VmHWM: this process's own peak RSS. (ru_maxrss would also count the parent's RSS at fork time,
    # which Linux carries across fork + exec.)
    out["peak_rss_mb"] = _status_mb("VmHWM")
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out["versions"] = {"evalkit": ek.__version__, "duckdb": duckdb.__version__}
    out["status"] = "ok"
    return out


def run_child(kind: str, glob: str, *, calls: int, mem_gb: float, timeout: float, duckdb_mem: str | None,
              tmpdir: str | None) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, glob, "--calls", str(calls)]
    if duckdb_mem:
        cmd += ["--duckdb-mem", duckdb_mem]
    if tmpdir:
        cmd += ["--duckdb-tmp", tmpdir]
    limit = int(mem_gb * 2**30)

    def _cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_cap,
                            start_new_session=True)
    base = {"kind": kind, "mem_cap_gb": mem_gb, "timeout_s": timeout}
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {**base, "status": "timeout", "process_s": time.perf_counter() - t0}
    rec = None
    for line in out.splitlines():
        if line.startswith("SCALE_JSON "):
            rec = json.loads(line[len("SCALE_JSON "):])
    if rec is None:
        oom = any(m in err for m in ("MemoryError", "Unable to allocate", "Out of Memory", "out of memory",
                                     "Cannot allocate memory", "bad_alloc", "failed to allocate"))
        return {**base, "status": "oom" if oom or proc.returncode == -signal.SIGKILL else "error",
                "returncode": proc.returncode, "process_s": time.perf_counter() - t0,
                "error": "\n".join(err.strip().splitlines()[-4:])}
    return {**base, **rec, "process_s": time.perf_counter() - t0}


# ----------------------------------------------------------------------------------------------
# report


def _slope(points):
    pts = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def annotate(doc: dict) -> None:
    by_size: dict[int, dict] = {}
    for r in doc["results"]:
        by_size.setdefault(int(r["rows"]), {})[r["kind"]] = r
    for n, d in by_size.items():
        c, w = d.get("cells"), d.get("rows")
        if c and w and c.get("status") == "ok" and w.get("status") == "ok":
            a, b = c["calls"][-1], w["calls"][-1]
            est = abs(a["estimate"] - b["estimate"]) / abs(b["estimate"])
            se = abs(a["std_error"] - b["std_error"]) / abs(b["std_error"])
            for r in (c, w):
                r["agree_est_rel"], r["agree_se_rel"] = est, se
                r["agree"] = bool(est <= AGREE_RTOL and se <= AGREE_RTOL and a["nobs"] == b["nobs"])
    doc["growth"] = {}
    for kind in ("cells", "rows"):
        ok = sorted((int(r["rows"]), r) for r in doc["results"] if r["kind"] == kind and r.get("status") == "ok")
        g = {}
        for which, idx in (("first", 0), ("second", -1)):
            g[f"slope_wall_{which}"] = _slope([(n, r["calls"][idx]["wall_s"]) for n, r in ok])
            g[f"slope_cpu_{which}"] = _slope([(n, r["calls"][idx]["cpu_s"]) for n, r in ok])
            top = [(n, r) for n, r in ok if n >= 10_000_000]
            g[f"slope_wall_{which}_1e7_up"] = _slope([(n, r["calls"][idx]["wall_s"]) for n, r in top])
        g["slope_peak_rss"] = _slope([(n, r["peak_rss_mb"]) for n, r in ok])
        g["slope_peak_rss_1e7_up"] = _slope([(n, r["peak_rss_mb"]) for n, r in ok if n >= 10_000_000])
        doc["growth"][kind] = g


def _f(x, fmt=".2f"):
    return "—" if x is None else format(x, fmt)


def to_markdown(doc: dict) -> str:
    m = doc["machine"]
    lines = [
        "# 50M member-quarters: Parquet → DuckDB → TWFE (cells path and row path)",
        "",
        f"Generated {doc['generated']} by `benchmarks/scale_50m.py`. Machine: {m.get('nproc')} CPUs, "
        f"{m.get('mem_total_gb')} GB RAM; Python {m.get('python')}; {doc.get('versions', {})}. "
        f"evalkit git {m.get('evalkit_git', '?')}. Each (path, size) ran in a fresh subprocess under "
        f"RLIMIT_AS = {doc['settings']['mem_gb']:g} GB (timeout {doc['settings']['timeout']:.0f} s); DuckDB "
        f"memory_limit {doc['settings'].get('duckdb_mem') or 'default'}, DuckDB threads = default (2).",
        "",
        f"Data: balanced panel, T = {doc['settings']['T']} quarters, 200 organisations (members nested), "
        "string ids (`member_id` 'M00000001', `org_id` 'ORG007'), entry by organisation in quarter 8, 12 or 16 "
        "or never; one Parquet file per 5M rows, written by DuckDB in chunks. `cells` = "
        "`ek.scale.twfe(parquet_glob, ...)` (DuckDB compresses to cells; CR1 by organisation); `rows` = DuckDB "
        "encodes the ids to integers, sorts, returns an all-integer/float pandas frame → `ek.did.twfe` "
        "(CR1 by organisation). `first` = the first call in the process (end to end from Parquet, imports "
        "excluded), `second` = the same call again (fresh DuckDB connection). `CPU s` adds up threads "
        "(DuckDB uses both cores). `peak RSS` = the subprocess's own peak RSS (`VmHWM`) over both calls. `load` = "
        "1-min load average at the start → end of the first call.",
        "",
        "| rows | members | Parquet MB | path | first s | first CPU s | second s | second CPU s | of which DuckDB read s / estimator s (second) | s / M rows (second) | load | peak RSS MB | estimate | SE | cells = rows |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    data = {int(d["rows"]): d for d in doc.get("data", [])}
    for r in sorted(doc["results"], key=lambda r: (int(r["rows"]), r["kind"])):
        n = int(r["rows"])
        d = data.get(n, {})
        head = f"| {n:,} | {d.get('members', n // doc['settings']['T']):,} | {d.get('bytes', 0) / 2**20:.0f} | {r['kind']} |"
        if r.get("status") != "ok":
            lines.append(head + f" **{r['status'].upper()}** | | | | | | | | | | {str(r.get('error', ''))[:80]} |")
            continue
        a, b = r["calls"][0], r["calls"][-1]
        split = f"{b['read_s']:.1f} / {b['estimate_s']:.1f}" if "read_s" in b else "— (one DuckDB query + cell fit)"
        agree = "reference" if r["kind"] == "rows" else (
            ("✓" if r.get("agree") else "✗") + f" est {r.get('agree_est_rel', float('nan')):.1e}, SE {r.get('agree_se_rel', float('nan')):.1e}"
            if "agree" in r else "—")
        lines.append(head + f" {a['wall_s']:.1f} | {a['cpu_s']:.1f} | {b['wall_s']:.1f} | {b['cpu_s']:.1f} | {split} | "
                     f"{b['wall_s'] / (n / 1e6):.3f} | {a['loadavg_start']:.1f}→{a['loadavg_end']:.1f} | "
                     f"{r['peak_rss_mb']:.0f} | {b['estimate']:.8f} | {b['std_error']:.6g} | {agree} |")
    lines += ["", "Cost growth (log-log slope of time on rows; 1 = linear):", ""]
    for kind, g in doc.get("growth", {}).items():
        lines.append(f"- `{kind}`: wall {_f(g['slope_wall_first'])} (first call) / {_f(g['slope_wall_second'])} (second) "
                     f"over all sizes, {_f(g['slope_wall_second_1e7_up'])} from 10^7 up; CPU {_f(g['slope_cpu_first'])} / "
                     f"{_f(g['slope_cpu_second'])}; peak RSS {_f(g['slope_peak_rss'])} (from 10^7 up "
                     f"{_f(g['slope_peak_rss_1e7_up'])}).")
    big = [r for r in doc["results"] if int(r["rows"]) >= 50_000_000]
    if big:
        lines += ["", "Bar (issue 9): 50M member-quarters from Parquet through DuckDB to a TWFE estimate without running "
                      "out of memory on this 2-core, 24 GB machine:", ""]
        for r in sorted(big, key=lambda r: r["kind"]):
            if r.get("status") == "ok":
                lines.append(f"- `{r['kind']}`: {r['calls'][0]['wall_s']:.1f} s first call, peak RSS "
                             f"{r['peak_rss_mb'] / 1024:.2f} GB (cap {r['mem_cap_gb']:g} GB) — **MET**")
            else:
                lines.append(f"- `{r['kind']}`: {r['status'].upper()} — **NOT MET**")
    return "\n".join(lines) + "\n"


def machine_facts() -> dict:
    import platform

    facts = {"nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    facts["mem_total_gb"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        repo = os.path.dirname(HERE)
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                              timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "evalkit"], cwd=repo, capture_output=True,
                               text=True, timeout=30).stdout.strip()
        facts["evalkit_git"] = head + ("+dirty" if dirty else "")
    except Exception:
        pass
    return facts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7, 2e7, 5e7])
    ap.add_argument("--paths", nargs="+", default=["cells", "rows"], choices=["cells", "rows"])
    ap.add_argument("--T", type=int, default=T_DEFAULT, help="quarters per member")
    ap.add_argument("--calls", type=int, default=2, help="calls per subprocess (first = cold, last = warm)")
    ap.add_argument("--mem-gb", type=float, default=20.0, help="RLIMIT_AS per subprocess, GB (machine: 24 GB)")
    ap.add_argument("--duckdb-mem", default="8GB", help="DuckDB memory_limit inside the subprocesses ('' = default)")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--max-load", type=float, default=None, help="before each subprocess wait for the load to drop below this")
    ap.add_argument("--idle-wait", type=float, default=300.0)
    ap.add_argument("--workdir", default=None, help="where the Parquet data go (default: a fresh dir under /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the data (default: deleted at the end)")
    ap.add_argument("--out", default=os.path.join(RESULTS, "scale_50m"), help="results prefix (.json, .md)")
    ap.add_argument("--merge", action="store_true", help="keep earlier results for sizes not run now")
    ap.add_argument("--render-only", action="store_true", help="run nothing: rewrite the .md (and README table) from the .json")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--generate", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--duckdb-tmp", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.generate:
        sys.stdout.write(json.dumps(generate(a.generate[0], int(a.generate[1]), T=int(a.generate[2]))) + "\n")
        return 0
    if a.child:
        rec = _child(a.child[0], a.child[1], a.calls, a.duckdb_mem or None, a.duckdb_tmp)
        sys.stdout.write("SCALE_JSON " + json.dumps(rec) + "\n")
        return 0

    if a.render_only:
        with open(a.out + ".json") as f:
            doc = json.load(f)
        annotate(doc)
        md = to_markdown(doc)
        with open(a.out + ".md", "w") as f:
            f.write(md)
        if os.path.abspath(a.out) == os.path.abspath(os.path.join(RESULTS, "scale_50m")):
            _update_readme(md)
        print(md)
        return 0
    work = a.workdir or tempfile.mkdtemp(prefix="ek-scale50m-")
    os.makedirs(work, exist_ok=True)
    spill = os.path.join(work, "duckdb_tmp")
    os.makedirs(spill, exist_ok=True)
    free_gb = shutil.disk_usage(work).free / 2**30
    need_gb = sum(s for s in a.sizes) / 5e7 * 1.2 + 2
    sys.stderr.write(f"workdir {work}: {free_gb:.0f} GB free, ~{need_gb:.1f} GB needed\n")
    if free_gb < need_gb:
        sys.stderr.write("not enough disk space\n")
        return 2
    doc = {"results": [], "data": []}
    if a.merge and os.path.exists(a.out + ".json"):
        with open(a.out + ".json") as f:
            doc = json.load(f)
    sizes = [int(s) for s in a.sizes]
    doc["results"] = [r for r in doc["results"] if int(r["rows"]) not in sizes]
    doc["data"] = [d for d in doc.get("data", []) if int(d["rows"]) not in sizes]
    try:
        for n in sizes:
            ddir = os.path.join(work, f"panel_{n}")
            if os.path.isdir(ddir):
                shutil.rmtree(ddir)
            # generate in a child process, so that this (parent) process stays small
            p = subprocess.run([sys.executable, os.path.abspath(__file__), "--generate", ddir, str(n), str(a.T)],
                               capture_output=True, text=True, check=True)
            info = json.loads(p.stdout.strip().splitlines()[-1])
            doc["data"].append(info)
            sys.stderr.write(f"generated {info['rows']:,} rows ({info['files']} files, {info['bytes'] / 2**20:.0f} MB) "
                             f"in {info['generate_s']:.1f}s\n")
            glob = os.path.join(ddir, "*.parquet")
            for kind in a.paths:
                if a.max_load is not None:
                    t0 = time.monotonic()
                    while os.getloadavg()[0] >= a.max_load and time.monotonic() - t0 < a.idle_wait:
                        time.sleep(5)
                r = run_child(kind, glob, calls=a.calls, mem_gb=a.mem_gb, timeout=a.timeout,
                              duckdb_mem=a.duckdb_mem or None, tmpdir=spill)
                r["rows"] = info["rows"]
                doc["results"].append(r)
                if r.get("status") == "ok":
                    c0, c1 = r["calls"][0], r["calls"][-1]
                    sys.stderr.write(f"{n:>12,} {kind:>5}: first {c0['wall_s']:.1f}s second {c1['wall_s']:.1f}s "
                                     f"peak {r['peak_rss_mb']:.0f} MB est {c1['estimate']:.8f} se {c1['std_error']:.6g} "
                                     f"load {c0['loadavg_start']:.1f}\n")
                else:
                    sys.stderr.write(f"{n:>12,} {kind:>5}: {r['status'].upper()} {r.get('error', '')}\n")
            if not a.keep:
                shutil.rmtree(ddir)  # free the disk before the next size
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    doc["generated"] = _dt.datetime.now().isoformat(timespec="seconds")
    doc["machine"] = machine_facts()
    doc["settings"] = {"T": a.T, "calls": a.calls, "mem_gb": a.mem_gb, "duckdb_mem": a.duckdb_mem, "timeout": a.timeout}
    versions = {}
    for r in doc["results"]:
        versions.update(r.get("versions", {}))
    doc["versions"] = versions
    annotate(doc)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out + ".json", "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    md = to_markdown(doc)
    with open(a.out + ".md", "w") as f:
        f.write(md)
    if os.path.abspath(a.out) == os.path.abspath(os.path.join(RESULTS, "scale_50m")):
        _update_readme(md)
    print(md)
    return 0


_START, _END = "<!-- scale50m-results:start (written by scale_50m.py) -->", "<!-- scale50m-results:end -->"


def _update_readme(md: str) -> None:
    """Copy the table into benchmarks/README.md between the markers (title line dropped)."""
    readme = os.path.join(HERE, "README.md")
    if not os.path.exists(readme):
        return
    with open(readme) as f:
        text = f.read()
    if _START not in text or _END not in text:
        return
    body = md.split("\n", 2)[2] if md.startswith("# ") else md
    head, rest = text.split(_START, 1)
    with open(readme, "w") as f:
        f.write(head + _START + "\n" + body.strip() + "\n" + _END + rest.split(_END, 1)[1])


if __name__ == "__main__":
    raise SystemExit(main())
