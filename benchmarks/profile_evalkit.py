"""Where does evalkit's TWFE spend its time? Function- and line-level profile of a warm call.

    python benchmarks/profile_evalkit.py --rows 8e6 [--unbalanced 0.1] [--pyspy]

1. Generates the benchmark panel (benchmarks/generate.py), makes one cold call of ``ek.did.twfe``.
2. Profiles ``--calls`` warm calls with cProfile using **CPU time** (``time.process_time``) as the
   clock, so that other work on the machine does not distort the shares; writes
   ``<out>.pstats`` and a summary ``<out>.txt`` (evalkit functions by own and cumulative time).
3. With ``--pyspy`` (py-spy installed in the bench venv), re-runs itself under ``py-spy record``
   and attributes the samples taken during the warm calls to the innermost evalkit source line;
   appends the top lines to ``<out>.txt``.
"""
from __future__ import annotations

import argparse
import collections
import cProfile
import io
import linecache
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from generate import DEFAULT_SEED, make_panel  # noqa: E402

KW = dict(outcome="y", unit="unit", time="t", treatment="d", covariates=["x"], cluster="cl", vcov="CR1")


def _cold(ek, df):
    return ek.did.twfe(df, **KW)


def _warm(ek, df):
    return ek.did.twfe(df, **KW)


def _evalkit_table(stats: pstats.Stats, total: float, top: int = 25) -> str:
    rows = []
    for (file, line, func), (cc, nc, tt, ct, callers) in stats.stats.items():
        if f"{os.sep}evalkit{os.sep}" in file and f"{os.sep}benchmarks{os.sep}" not in file:
            rel = file[file.rindex(f"{os.sep}evalkit{os.sep}") + 1:]
            rows.append((ct, tt, nc, f"{rel}:{line} {func}"))
    rows.sort(reverse=True)
    out = [f"{'cum CPU s':>10} {'cum %':>6} {'own CPU s':>10} {'own %':>6} {'calls':>6}  function"]
    for ct, tt, nc, name in rows[:top]:
        out.append(f"{ct:10.3f} {100 * ct / total:6.1f} {tt:10.3f} {100 * tt / total:6.1f} {nc:6d}  {name}")
    return "\n".join(out)


def _callees_of_hot(stats: pstats.Stats, total: float, top: int = 20) -> str:
    """Non-evalkit functions (numpy/pandas internals) by own time, with their evalkit callers."""
    rows = []
    for (file, line, func), (cc, nc, tt, ct, callers) in stats.stats.items():
        if f"{os.sep}evalkit{os.sep}" in file:
            continue
        by = sorted(((v[3] if isinstance(v, tuple) else 0.0, f"{os.path.basename(k[0])}:{k[1]} {k[2]}")
                     for k, v in callers.items()), reverse=True)[:2]
        rows.append((tt, nc, f"{os.path.basename(file)}:{line} {func}", ", ".join(f"{n} ({t:.2f}s)" for t, n in by)))
    rows.sort(reverse=True)
    out = [f"{'own CPU s':>10} {'own %':>6} {'calls':>6}  function  <- main callers (cum s)"]
    for tt, nc, name, by in rows[:top]:
        out.append(f"{tt:10.3f} {100 * tt / total:6.1f} {nc:6d}  {name}  <- {by}")
    return "\n".join(out)


def run_profile(a) -> None:
    import evalkit as ek

    warnings.simplefilter("ignore")
    df = make_panel(a.rows, unbalanced=a.unbalanced, seed=a.seed, shuffle=a.shuffle)
    t0 = time.perf_counter()
    _cold(ek, df)
    cold = time.perf_counter() - t0
    if a.mode == "pyspy-child":
        for _ in range(a.calls):
            _warm(ek, df)
        return
    prof = cProfile.Profile(time.process_time)
    w0, c0 = time.perf_counter(), time.process_time()
    prof.enable()
    for _ in range(a.calls):
        _warm(ek, df)
    prof.disable()
    wall, cpu = (time.perf_counter() - w0) / a.calls, (time.process_time() - c0) / a.calls
    prof.dump_stats(a.out + ".pstats")
    st = pstats.Stats(a.out + ".pstats")
    total = cpu * a.calls
    from _worker import _evalkit_source

    src = _evalkit_source()
    head = (f"evalkit {src.get('evalkit_git', '?')} (source hash {src['evalkit_src_sha']}) "
            f"TWFE profile: rows={len(df):,} (requested {a.rows:,}, unbalanced={a.unbalanced}"
            f"{', rows shuffled' if a.shuffle else ''}), "
            f"{a.calls} warm call(s) under cProfile with a CPU-time clock\n"
            f"per call: {cpu:.2f} CPU s, {wall:.2f} wall s (load avg {os.getloadavg()[0]:.1f}); cold call {cold:.2f} wall s\n"
            f"(percentages are of the warm calls' total CPU time, {total:.2f} s; profiler overhead included)\n")
    body = ("\n## evalkit functions (cumulative = including callees)\n" + _evalkit_table(st, total)
            + "\n\n## library internals by own time\n" + _callees_of_hot(st, total) + "\n")
    with open(a.out + ".txt", "w") as f:
        f.write(head + body)
    print(head + body)


_EVALKIT = re.compile(r"(^|/)evalkit/")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def run_pyspy(a) -> None:
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    raw = tempfile.mktemp(suffix=".txt")
    cmd = [spy, "record", "-r", str(a.rate), "-f", "raw", "-o", raw, "--", sys.executable, os.path.abspath(__file__),
           "--rows", str(a.rows), "--unbalanced", str(a.unbalanced), "--seed", str(a.seed), "--calls", str(a.calls),
           *(["--shuffle"] if a.shuffle else []),
           "--mode", "pyspy-child"]
    subprocess.run(cmd, check=True, capture_output=True)
    by_line, by_func = collections.Counter(), collections.Counter()
    total = 0
    with open(raw) as f:
        for row in f:
            stack, _, count = row.rstrip("\n").rpartition(" ")
            frames = stack.split(";")
            if not any(fr.startswith("_warm (") for fr in frames):
                continue
            n = int(count)
            total += n
            inner = None
            for fr in frames:
                m = _FRAME.match(fr)
                if m and _EVALKIT.search(m["file"]) and "benchmarks/" not in m["file"]:
                    inner = m
            if inner is None:
                continue
            rel = inner["file"][_EVALKIT.search(inner["file"]).start():].lstrip("/")
            path = os.path.join(os.path.dirname(HERE), rel)  # py-spy shortens paths
            by_line[(rel, int(inner["line"]), inner["func"], linecache.getline(path, int(inner["line"])).strip())] += n
            by_func[f"{rel} {inner['func']}"] += n
    os.unlink(raw)
    lines = [f"\n## py-spy: samples in the warm calls by innermost evalkit line ({total} samples at {a.rate} Hz)\n",
             f"{'%':>6}  location  source"]
    for (rel, ln, func, src), n in by_line.most_common(a.top):
        lines.append(f"{100 * n / total:6.1f}  {rel}:{ln} ({func})  {src[:110]}")
    lines += ["", "## py-spy: by innermost evalkit function", f"{'%':>6}  function"]
    for name, n in by_func.most_common(a.top):
        lines.append(f"{100 * n / total:6.1f}  {name}")
    text = "\n".join(lines) + "\n"
    with open(a.out + ".txt", "a") as f:
        f.write(text)
    print(text)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=lambda s: int(float(s)), default=8_000_000)
    ap.add_argument("--unbalanced", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--shuffle", action="store_true", help="rows in random order (see generate.py)")
    ap.add_argument("--calls", type=int, default=1, help="warm calls profiled")
    ap.add_argument("--pyspy", action="store_true", help="also a line-level py-spy profile")
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--out", default=None, help="output path stem (default results/profile_evalkit_<rows>_<bal>)")
    ap.add_argument("--mode", default="profile", choices=("profile", "pyspy-child"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.out is None:
        a.out = os.path.join(HERE, "results", f"profile_evalkit_{a.rows}_{'bal' if a.unbalanced == 0 else 'unbal'}"
                                                      f"{'_shuffled' if a.shuffle else ''}")
    if a.mode == "pyspy-child":
        run_profile(a)
        return
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    run_profile(a)
    if a.pyspy:
        run_pyspy(a)


if __name__ == "__main__":
    main()
