"""Built-in data sets: the synthetic AQC claims panel and public reference data."""
from .data.datasets import load_mpdta
from .data.synthetic import AQCTruth, SimulatedAQC, simulate_aqc

__all__ = ["simulate_aqc", "SimulatedAQC", "AQCTruth", "load_mpdta"]
