"""How cost grows with rows: seconds per million rows and log-log slopes of time vs rows.

Shared by run.py (TWFE) and cs_report.py (Callaway-Sant'Anna). For each library and panel variant
the warm wall time and the warm CPU time at the issue's sizes (10^5, 10^6, 10^7 rows) give

* ``s / M rows`` at each size (flat = linear cost),
* the least-squares slope of log(time) on log(rows) over the three sizes, and
* the slope from 10^6 to 10^7 rows alone (fixed per-call overheads dominate at 10^5 rows and pull the
  three-point slope below 1 even for a linear algorithm).

A slope of 1 is linear in rows, 2 quadratic. The CPU-time slope is the cross-check against load from
other jobs on a shared machine (wall times of one row of the table can be inflated by it).
"""
from __future__ import annotations

import math

GROWTH_SIZES = (100_000, 1_000_000, 10_000_000)


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(y) on log(x); None with fewer than two positive points."""
    pts = [(math.log(x), math.log(y)) for x, y in points if x and y and x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else None


def _f(x: float | None, fmt: str = ".2f") -> str:
    return "—" if x is None else format(x, fmt)


def growth_rows(results: list[dict], libraries, variants) -> list[dict]:
    """One dict per (variant, library) with the per-size times and the slopes.

    ``variants`` is a list of (label, predicate on a result row)."""
    out = []
    for label, pred in variants:
        for lib in libraries:
            by = {}
            for r in results:
                if r["library"] == lib and r.get("status") == "ok" and pred(r) and int(r["rows_requested"]) in GROWTH_SIZES:
                    by[int(r["rows_requested"])] = r
            status = {int(r["rows_requested"]): r.get("status") for r in results
                      if r["library"] == lib and pred(r) and r.get("status") != "ok" and int(r["rows_requested"]) in GROWTH_SIZES}
            if not by and not status:
                continue
            wall = [(by[n]["rows"], by[n]["warm_s"]) for n in GROWTH_SIZES if n in by]
            cpu = [(by[n]["rows"], by[n].get("warm_cpu_s")) for n in GROWTH_SIZES if n in by]
            top = [n for n in (1_000_000, 10_000_000) if n in by]
            out.append({
                "variant": label, "library": lib,
                "warm_s": {n: by[n]["warm_s"] for n in by}, "rows": {n: by[n]["rows"] for n in by},
                "s_per_mrows": {n: by[n]["warm_s"] / (by[n]["rows"] / 1e6) for n in by},
                "status": status,
                "slope_wall": slope(wall) if len(wall) == len(GROWTH_SIZES) else None,
                "slope_cpu": slope(cpu) if len(cpu) == len(GROWTH_SIZES) else None,
                "slope_wall_top": slope([(by[n]["rows"], by[n]["warm_s"]) for n in top]) if len(top) == 2 else None,
                "slope_cpu_top": slope([(by[n]["rows"], by[n].get("warm_cpu_s")) for n in top]) if len(top) == 2 else None,
            })
    return out


def growth_markdown(results: list[dict], libraries, variants, title: str = "### How cost grows with rows") -> list[str]:
    rows = growth_rows(results, libraries, variants)
    if not rows:
        return []
    lines = [title, "",
             "Warm wall seconds per million rows at 10^5 / 10^6 / 10^7 rows (flat = linear), and the slope of "
             "log(time) on log(rows): over the three sizes, and from 10^6 to 10^7 alone (1 = linear, 2 = quadratic; "
             "per-call overheads pull the three-size slope below 1 at small sizes). `CPU` = the same slope from "
             "warm CPU time, the cross-check against load.", "",
             "| panel | library | s / M rows @1e5 | @1e6 | @1e7 | slope 1e5→1e7 (wall / CPU) | slope 1e6→1e7 (wall / CPU) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for g in rows:
        cells = []
        for n in GROWTH_SIZES:
            if n in g["s_per_mrows"]:
                cells.append(_f(g["s_per_mrows"][n], ".3g"))
            elif n in g["status"]:
                cells.append(f"**{str(g['status'][n]).upper()}**")
            else:
                cells.append("—")
        lines.append(f"| {g['variant']} | {g['library']} | {' | '.join(cells)} | "
                     f"{_f(g['slope_wall'])} / {_f(g['slope_cpu'])} | {_f(g['slope_wall_top'])} / {_f(g['slope_cpu_top'])} |")
    return lines
