"""Reproducible reports from a declarative spec (YAML/TOML/dict): HTML + results.json/csv + manifest.

>>> import evalkit as ek
>>> rep = ek.report.build_report(ek.report.demo_spec(n_members=2000), "out/")   # doctest: +SKIP
"""
from .build import (
    DESIGNS,
    DesignSpec,
    ReportResult,
    build_report,
    demo_spec,
    load_data,
    load_spec,
    normalize_spec,
    register_design,
    validate_data,
)

__all__ = [
    "build_report",
    "demo_spec",
    "load_spec",
    "normalize_spec",
    "load_data",
    "validate_data",
    "register_design",
    "DESIGNS",
    "DesignSpec",
    "ReportResult",
]
