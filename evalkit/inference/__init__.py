"""Shared inference: fixed-effect absorption, covariance estimators, bootstrap."""
from .absorb import FixedEffects, absorb
from .vcov import VCOV_TYPES, SmallSampleCorrection, VcovResult, compute_vcov, ssc, wild_cluster_bootstrap

__all__ = ["FixedEffects", "absorb", "VCOV_TYPES", "SmallSampleCorrection", "VcovResult", "compute_vcov", "ssc", "wild_cluster_bootstrap"]
