"""Data contract (validation of long panels) and built-in data sets."""
from .schema import DropRecord, TimeAxis, ValidatedPanel, check_clusters, validate_panel

__all__ = ["DropRecord", "TimeAxis", "ValidatedPanel", "check_clusters", "validate_panel"]
