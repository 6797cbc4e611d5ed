"""Benchmark: Parquet -> TWFE DiD (CR1 by organisation), cells path vs row path.

Generates a balanced member-quarter panel (and, with ``--claims``, claim lines) directly in DuckDB
(``COPY ... TO parquet``, never in pandas), then times in a fresh subprocess per (path, size):

* ``cells``  ek.scale.twfe(path, ...): DuckDB compresses to cluster x cohort x period cells, evalkit
  estimates from the cells;
* ``rows``   DuckDB encodes the string member and organisation ids to integers (a join with the sorted
  distinct ids), sorts by member and quarter and hands an all-numeric frame to pandas, then
  ek.did.twfe on the rows (``scale_50m._rows_frame``);
* ``claims`` (``--claims``) ek.scale.read_claims on claim lines (sum by category per member-quarter),
  then ek.scale.twfe on the member-quarter frame.

Each subprocess reports wall time (cold: first call in the process), peak RSS, the estimate and the
SE; the table checks that both paths agree to 1e-9. Usage::

    .venv/bin/python benchmarks/scale_cells.py --sizes 1e6 1e7 --out benchmarks/results/scale_cells.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROLES = dict(outcome="spending", unit="member_id", time="quarter", treatment="aqc", cluster="org_id")
T = 8


def generate(path: str, n_rows: int, seed: int = 7, claims: bool = False) -> None:
    """Balanced member x quarter panel: 200 orgs, cohorts by org, a planted effect of -50."""
    import duckdb

    n_members = n_rows // T
    con = duckdb.connect()
    con.execute(f"SELECT setseed({(seed % 1000) / 1000})")
    con.execute(f"""
        COPY (
          WITH m AS (SELECT i AS member_id, 'ORG' || lpad((hash(i * 7919 + {seed}) % 200)::VARCHAR, 3, '0') AS org_id
                     FROM range({n_members}) t(i)),
               o AS (SELECT DISTINCT org_id, CASE hash(org_id) % 4 WHEN 0 THEN 3 WHEN 1 THEN 5 WHEN 2 THEN 6 ELSE 99 END AS cohort FROM m)
          SELECT 'M' || lpad(member_id::VARCHAR, 9, '0') AS member_id, m.org_id, q AS quarter,
                 (q >= o.cohort)::INTEGER AS aqc,
                 100 + 5 * q + (hash(member_id) % 100)::DOUBLE + 40 * random() - 50 * (q >= o.cohort)::INTEGER AS spending
          FROM m JOIN o USING (org_id), range({T}) p(q)
          ORDER BY member_id, quarter
        ) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 1000000)""")
    if claims:
        con.execute(f"""
            COPY (SELECT member_id, org_id, DATE '2015-01-01' + INTERVAL (quarter * 3) MONTH + INTERVAL (k * 20) DAY AS service_date,
                         CASE k WHEN 0 THEN 'inpatient' WHEN 1 THEN 'outpatient' ELSE 'pharmacy' END AS category,
                         spending / 3 AS allowed, aqc
                  FROM read_parquet('{path}'), range(3) r(k))
            TO '{path[:-8]}_claims.parquet' (FORMAT parquet, ROW_GROUP_SIZE 1000000)""")


def _child(kind: str, path: str) -> dict:
    import warnings

    warnings.simplefilter("ignore")
    import evalkit as ek

    t0 = time.perf_counter()
    if kind == "cells":
        res = ek.scale.twfe(path, **ROLES)
    elif kind == "rows":
        import duckdb

        from scale_50m import _rows_frame  # DuckDB encodes the string ids to integers before pandas

        df = _rows_frame(duckdb.connect(), path)
        res = ek.did.twfe(df, **{**ROLES, "unit": "member", "cluster": "org"})
    elif kind == "claims":
        cp = ek.scale.read_claims(path[:-8] + "_claims.parquet", unit="member_id", time="service_date",
                                  time_grain="quarter", keep=["org_id", "aqc"],
                                  aggregate={"spending": "sum:allowed",
                                             "spend_ip": ("sum", "allowed", {"category": "inpatient"})})
        res = ek.scale.twfe(cp.data, **{**ROLES, "time": "service_date"})
    else:
        raise ValueError(kind)
    wall = time.perf_counter() - t0
    # this process's own peak (VmHWM); ru_maxrss would include the parent's RSS at fork time (the parent
    # generated the data in DuckDB), which Linux carries across fork + exec
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        with open("/proc/self/status") as f:
            rss = next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        pass
    return {"kind": kind, "seconds": wall, "peak_rss_mb": rss, "estimate": res.estimate, "std_error": res.std_error,
            "nobs": res.nobs, "notes": res.conventions.notes[:1]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7])
    ap.add_argument("--paths", nargs="+", default=["cells", "rows"])
    ap.add_argument("--claims", action="store_true", help="also time claim lines -> read_claims -> cells")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        sys.stdout.write(json.dumps(_child(*a.child)) + "\n")
        return 0
    work = a.workdir or tempfile.mkdtemp(prefix="ek-scale-")
    os.makedirs(work, exist_ok=True)
    try:
        return _run(a, work)
    finally:
        if a.workdir is None:  # a temporary directory of ours: delete the generated data
            import shutil

            shutil.rmtree(work, ignore_errors=True)


def _run(a, work: str) -> int:
    kinds = list(a.paths) + (["claims"] if a.claims and "claims" not in a.paths else [])
    rows = []
    for size in a.sizes:
        n = int(size)
        path = os.path.join(work, f"panel_{n}.parquet")
        if not os.path.exists(path):
            t0 = time.perf_counter()
            generate(path, n, claims="claims" in kinds)
            sys.stderr.write(f"generated {n:,} rows in {time.perf_counter() - t0:.1f}s\n")
        for kind in kinds:
            try:
                p = subprocess.run([sys.executable, __file__, "--child", kind, path], capture_output=True, text=True,
                                   timeout=a.timeout)
                if p.returncode != 0:
                    r = {"kind": kind, "status": "error", "detail": p.stderr.strip().splitlines()[-1:]}
                else:
                    r = {**json.loads(p.stdout.strip().splitlines()[-1]), "status": "ok"}
            except subprocess.TimeoutExpired:
                r = {"kind": kind, "status": "timeout"}
            r["rows"] = n
            rows.append(r)
            sys.stderr.write(json.dumps(r) + "\n")
    # agreement check between the paths at each size
    for n in {r["rows"] for r in rows}:
        ok = [r for r in rows if r["rows"] == n and r.get("status") == "ok"]
        if len(ok) > 1:
            e0, s0 = ok[0]["estimate"], ok[0]["std_error"]
            agree = all(abs(r["estimate"] - e0) <= 1e-9 * abs(e0) and abs(r["std_error"] - s0) <= 1e-9 * s0 for r in ok)
            for r in ok:
                r["paths_agree_1e-9"] = agree
    print(f"{'rows':>12} {'path':>7} {'seconds':>9} {'peak MB':>9} {'estimate':>14} {'std_error':>12} agree")
    for r in rows:
        if r.get("status") == "ok":
            print(f"{r['rows']:>12,} {r['kind']:>7} {r['seconds']:>9.2f} {r['peak_rss_mb']:>9.0f} {r['estimate']:>14.8f} "
                  f"{r['std_error']:>12.8f} {r.get('paths_agree_1e-9', '')}")
        else:
            print(f"{r['rows']:>12,} {r['kind']:>7} {r['status']}")
    if a.out:
        os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
        with open(a.out, "w") as fh:
            json.dump({"machine": {"cpus": os.cpu_count()}, "results": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
