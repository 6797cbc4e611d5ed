"""The ``evalkit`` command line: ``demo``, ``run SPEC``, ``validate DATA --spec SPEC``, ``power BASELINE_CSV``.

Exit codes: 0 success; 1 ``validate`` found data that break the contract; 2 a user error (bad
spec, missing file, invalid data or options), reported as one line on stderr without a
traceback. Progress goes to stderr only: progress bars (tqdm) when stderr is a terminal or with
``--progress``, else timed step messages (``--quiet`` silences both); results go to stdout.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

from ._version import __version__
from .errors import DataError, EvalkitError, SpecificationError

__all__ = ["main", "build_parser"]

DEFAULT_DEMO_OUT = Path("reports") / "demo"
DEMO_SEED = 20240101
DEMO_MEMBERS = 20_000

_DESCRIPTION = """\
evalkit: evaluate health-care payment programs (difference-in-differences and related designs).

commands:
  demo       simulate AQC-style claims, run the DiD evaluation, write an HTML report
  run        build a report from a YAML/TOML spec
  validate   check a data file against the data contract of a spec (no estimation)
  power      detectability table (MDE, power, candidates) from a baseline CSV of group rates

Every report folder holds index.html, results.json, results.csv (every estimate; identical
across re-runs of the same spec on the same data), spec.yaml and manifest.json (data hash,
package versions, seeds, timestamp).
"""

_EPILOG = """\
examples:
  evalkit demo                                  # writes reports/demo/
  evalkit demo --out /tmp/aqc --members 5000    # a smaller, faster demo elsewhere
  evalkit run reports/demo/spec.yaml --out /tmp/rerun
  evalkit run reports/examples/palliative.yaml  # matched palliative-care evaluation -> reports/palliative/
  evalkit validate claims.csv --spec myspec.yaml
  evalkit power baseline.csv --reduction 0.5 --out detectability.csv

exit codes: 0 ok; 1 the data break the contract (validate); 2 user error (bad spec, file, options).
"""


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v


def _float_arg(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


_POWER_COLUMNS = ("system", "measure", "group", "n_reference", "n_minority", "baseline_gap_pp", "mde_pp", "share_of_gap",
                  "power", "precision_pp", "candidate")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    p = argparse.ArgumentParser(prog="evalkit", description=_DESCRIPTION, epilog=_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"evalkit {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser(
        "demo", help="simulate AQC-style claims and write the example evaluation report",
        description="Simulate an AQC-shaped member-quarter claims panel (evalkit.datasets.simulate_aqc), check the data "
                    "contract, estimate TWFE DiD effects on spending (organisation and quarter fixed effects, CR1 clustered "
                    "by organisation, adjusted for age, sex and risk score; plus wild cluster bootstrap, percent effect, "
                    "price vs utilization, by entry cohort, event study) and on four quality measures (linear probability "
                    "models in percentage points among eligible members), and write an HTML report with figures.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--out", metavar="DIR", type=Path, default=DEFAULT_DEMO_OUT,
                   help=f"output folder (default: {DEFAULT_DEMO_OUT}/, the checked-in example; use another folder for experiments)")
    d.add_argument("--seed", metavar="N", type=_nonneg_int, default=DEMO_SEED, help=f"simulation seed (default: {DEMO_SEED})")
    d.add_argument("--members", metavar="N", type=_positive_int, default=DEMO_MEMBERS,
                   help=f"simulated members (default: {DEMO_MEMBERS:,}; about 21 member-quarters each)")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    _progress_flag(d)
    d.set_defaults(func=_cmd_demo)

    r = sub.add_parser("run", help="build a report from a YAML/TOML spec",
                       description="Build a report from a declarative spec (YAML read with yaml.safe_load, or TOML): data "
                                   "source, column roles, designs with options, figures, output names. See "
                                   "docs/reports.md for the format and every design's options; reports/demo/spec.yaml and "
                                   "reports/examples/palliative.yaml are complete examples.")
    r.add_argument("spec", metavar="SPEC", type=Path, help="spec file (.yaml, .yml or .toml)")
    r.add_argument("--out", metavar="DIR", type=Path, default=None, help="output folder (default: reports/<spec name>/)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    _progress_flag(r)
    r.set_defaults(func=_cmd_run)

    v = sub.add_parser("validate", help="check a data file against a spec's data contract (no estimation)",
                       description="Check DATA (CSV or Parquet) against the data contract for every design of SPEC: column "
                                   "roles, types, missing values, duplicate unit-periods, absorbing treatment, pre-periods, "
                                   "untreated units, clusters. Lists every problem; exit 1 if any design fails.")
    v.add_argument("data", metavar="DATA", type=Path, help="data file (.csv or .parquet); replaces the spec's data source")
    v.add_argument("--spec", metavar="SPEC", type=Path, required=True, help="spec file naming the column roles and designs")
    v.set_defaults(func=_cmd_validate)

    w = sub.add_parser(
        "power", help="detectability table (MDE, power, candidates) from a baseline CSV of group rates",
        description="Per system, measure and minority group: the minimum detectable reduction of the gap to the "
                    "reference group (pp and share of the baseline gap), the power to detect the target reduction, "
                    "the CI half-width and whether the measure is a candidate, with the reason "
                    "(evalkit.equity.detectability; method in docs/equity.md). BASELINE_CSV is long format, one row per "
                    "system x measure x group, with columns system, measure, group, denominator, rate (a proportion), "
                    "higher_is_better (true/false), optional n_practices, icc, rho.",
        epilog="example: evalkit power baseline.csv --reduction 0.5 --post-years 2 --out detectability.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("baseline", metavar="BASELINE_CSV", type=Path, help="baseline table (.csv)")
    w.add_argument("--reduction", metavar="R", type=_float_arg, default=0.25,
                   help="target share of the baseline gap to close (default: 0.25)")
    w.add_argument("--alpha", metavar="A", type=_float_arg, default=0.05, help="significance level (default: 0.05)")
    w.add_argument("--power", metavar="P", type=_float_arg, default=0.8, help="target power (default: 0.8)")
    w.add_argument("--alternative", choices=("two-sided", "one-sided"), default="two-sided",
                   help="test (default: two-sided)")
    w.add_argument("--reference-group", metavar="G", default="White", help="reference group (default: White)")
    w.add_argument("--pre-years", metavar="M", type=_positive_int, default=1, help="baseline years pooled (default: 1)")
    w.add_argument("--post-years", metavar="R", type=_positive_int, default=1, help="contract years pooled (default: 1)")
    w.add_argument("--rho", metavar="RHO", type=_float_arg, default=0.0,
                   help="within-person correlation across years, where the CSV has no rho column (default: 0)")
    w.add_argument("--icc", metavar="ICC", type=_float_arg, default=0.0,
                   help="intraclass correlation within practices, where the CSV has no icc column (default: 0)")
    w.add_argument("--min-denominator", metavar="N", type=_nonneg_int, default=11,
                   help="small-cell suppression: groups with fewer patients are not candidates (default: 11)")
    w.add_argument("--out", metavar="FILE", type=Path, default=None,
                   help="write the full table as CSV to FILE (default: print the main columns)")
    w.set_defaults(func=_cmd_power)
    return p


def _progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars on stderr for the report steps and long loops (wild bootstrap, simulations); "
                        "default: on when stderr is a terminal and -q is not given. Results are identical either way.")


def _bars(args) -> bool:
    """Progress bars: --progress/--no-progress, else on for an interactive stderr unless -q."""
    if args.progress is not None:
        return bool(args.progress)
    return not args.quiet and _isatty(sys.stderr)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _progress(quiet: bool) -> Callable[[str], None] | None:
    """Timed step messages on stderr (when bars are off and not -q)."""
    if quiet:
        return None
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return say


def _report_done(rep, t0: float) -> int:
    print(f"Report written to {rep.out_dir}/ in {time.perf_counter() - t0:.1f} s:")
    root = rep.out_dir.resolve()
    for kind, path in rep.files.items():
        print(f"  {kind:<9} {rep.out_dir / path.relative_to(root)}")
    n_warn = sum(len(d["warnings"]) for d in rep.results["designs"])
    if n_warn:
        print(f"  ({n_warn} warning(s) recorded in the report's design sections)")
    return 0


def _cmd_demo(args) -> int:
    from .report import build_report, demo_spec

    t0 = time.perf_counter()
    spec = demo_spec(seed=args.seed, n_members=args.members)
    bars = _bars(args)
    rep = build_report(spec, args.out, progress=bars, on_step=_progress(args.quiet or bars))
    return _report_done(rep, t0)


def _cmd_run(args) -> int:
    from .report import build_report

    t0 = time.perf_counter()
    out = args.out if args.out is not None else Path("reports") / args.spec.stem
    bars = _bars(args)
    rep = build_report(args.spec, out, progress=bars, on_step=_progress(args.quiet or bars))
    return _report_done(rep, t0)


def _cmd_validate(args) -> int:
    from .report.build import load_data, load_spec, normalize_spec, validate_data

    raw, spec_dir = load_spec(args.spec)
    spec = normalize_spec(raw)
    loaded = load_data(spec["data"], spec_dir, path_override=args.data)
    checks = validate_data(loaded.frame, spec)
    n_bad = 0
    print(f"{args.data}: {loaded.source['n_rows']:,} rows, {loaded.source['n_columns']} columns")
    for c in checks:
        if c.ok:
            print(f"  ok     {c.design}: {c.message}")
            for w in c.warnings:
                print(f"         warning: {' '.join(w.split())}")
        else:
            n_bad += 1
            print(f"  ERROR  {c.design}: {c.message}")
    if n_bad:
        print(f"{n_bad} of {len(checks)} design(s) fail the data contract.", file=sys.stderr)
        return 1
    print(f"All {len(checks)} design(s) pass the data contract.")
    return 0


def _read_baseline(path: Path):
    import pandas as pd

    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    if path.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(path))
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{str(path)!r} could not be read as CSV: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}.") from None
    if "higher_is_better" in df.columns and df["higher_is_better"].dtype != bool:
        text = df["higher_is_better"].astype(str).str.strip().str.lower()
        mapping = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False, "1.0": True, "0.0": False}
        bad = sorted(set(text[~text.isin(list(mapping))]))
        if bad:
            raise DataError(f"Column 'higher_is_better' must be true/false (or 1/0, yes/no). Got {bad[:3]}.")
        df["higher_is_better"] = text.map(mapping).astype(bool)
    return df


def _cmd_power(args) -> int:
    import pandas as pd

    from .equity import detectability

    for name, v, lo, hi in (("--alpha", args.alpha, 0.0, 0.5), ("--power", args.power, 0.0, 1.0), ("--rho", args.rho, -1.0, 1.0),
                            ("--icc", args.icc, 0.0, 1.0)):
        inside = (lo <= v < hi) if name in ("--rho", "--icc") else (lo < v < hi)
        if not inside:
            raise SpecificationError(f"{name} must be in {'[' if name in ('--rho', '--icc') else '('}{lo:g}, {hi:g}). Got {v:g}.")
    if not 0 < args.reduction:
        raise SpecificationError(f"--reduction must be a positive share of the baseline gap (0.25 = a quarter). Got {args.reduction:g}.")
    if args.power <= args.alpha:
        raise SpecificationError(f"--power ({args.power:g}) must exceed --alpha ({args.alpha:g}).")
    base = _read_baseline(args.baseline)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        det = detectability(base, reference_group=args.reference_group, reduction=args.reduction, alpha=args.alpha,
                            power=args.power, alternative=args.alternative, rho=args.rho, icc=args.icc,
                            pre_years=args.pre_years, post_years=args.post_years, min_denominator=args.min_denominator)
    for w in rec:
        print(f"evalkit: warning: {' '.join(str(w.message).split())}", file=sys.stderr)
    n_cand = int(det["candidate"].sum())
    head = (f"Detectability of a {args.reduction:.0%} gap reduction (alpha {args.alpha:g}, {args.alternative}, target power "
            f"{args.power:g}, {args.pre_years} baseline / {args.post_years} contract year(s)): {len(det)} system x measure x group "
            f"rows, {n_cand} candidate(s).")
    if args.out is not None:
        out = args.out
        if out.resolve() == args.baseline.resolve():
            raise SpecificationError(f"--out {str(out)!r} is the input file; choose another name.")
        if out.exists() and out.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(out))
        if not out.parent.exists():
            raise FileNotFoundError(2, "No such directory", str(out.parent))
        from .report.build import _csv_safe

        _csv_safe(det).to_csv(out, index=False, lineterminator="\n", float_format="%.10g")
        print(head)
        print(f"Table written to {out}")
        return 0
    show = det[list(_POWER_COLUMNS)].copy()
    for c in ("n_reference", "n_minority"):
        show[c] = show[c].round().astype("Int64")
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.max_rows", None):
        print(head)
        print(show.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


_MAX_ERROR_CHARS = 2000


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"{exc.strerror}: {exc.filename!r}"
    if len(text) > _MAX_ERROR_CHARS:
        text = text[:_MAX_ERROR_CHARS] + f" ... ({len(text) - _MAX_ERROR_CHARS:,} more characters)"
    return text or type(exc).__name__


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of the CLI: one logging line (silenced by -q), no source excerpt."""
    logging.getLogger("evalkit").warning("%s: %s", category.__name__, " ".join(str(message).split()))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``evalkit`` console script and of ``python -m evalkit``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.WARNING, format="evalkit: %(levelname)s: %(message)s")
    try:
        import yaml

        yaml_error: type[BaseException] = yaml.YAMLError
    except ModuleNotFoundError:  # pragma: no cover - PyYAML is a core dependency
        yaml_error = EvalkitError
    loggers = (logging.getLogger(), logging.getLogger("evalkit"))
    saved_levels = [lg.level for lg in loggers]
    if getattr(args, "quiet", False):  # -q: errors only (also matplotlib's and other libraries' log warnings)
        for lg in loggers:
            lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # stray warnings (e.g. matplotlib's) become one logging line each instead of a
            # multi-line message on stderr; -q silences them with the rest of the CLI's chatter
            warnings.showwarning = _log_warning
            return int(args.func(args))
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (EvalkitError, OSError, UnicodeDecodeError, yaml_error) as exc:
        # OSError: missing/unreadable files, an --out that is a file, a full disk (one line, no traceback)
        print(f"evalkit: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evalkit: interrupted", file=sys.stderr)
        return 130
    finally:
        for lg, level in zip(loggers, saved_levels):
            lg.setLevel(level)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
