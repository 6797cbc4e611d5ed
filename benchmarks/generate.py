"""Deterministic claims-sized panel for the TWFE benchmarks (seeded numpy, no files).

Every benchmark subprocess regenerates its data from ``(rows, unbalanced, seed)`` with
:func:`make_panel`, so all libraries see bit-identical frames and data generation is never
inside a timed region.

Design
------
* ``n_units = rows // T`` units (members) observed in periods ``t = 1..T`` (T = 8).
* 200 clusters (organisations); every unit belongs to exactly one cluster (units nested).
* Staggered, absorbing 0/1 treatment assigned at the cluster level: each cluster enters the
  program in period 3, 5 or 7, or never (probabilities 0.25 each).
* One covariate ``x`` (e.g. a risk score), correlated with the unit effect.
* ``y = alpha_unit + lambda_t + u_cluster,t + TAU * d + BETA_X * x + eps`` with a planted effect
  ``TAU = 0.5`` (homogeneous, so TWFE is unbiased here: the benchmark is about speed and numerical
  agreement, not about staggered-adoption bias).
* ``unbalanced=0.10`` drops 10% of the unit-periods at random (enrollment churn); a unit may
  end up with a single row (a singleton), which every library keeps (see run.py).

Columns: ``unit`` (int64 member id; rows sorted by unit then t unless ``shuffle``), ``t`` (int64), ``cl`` (int64),
``d`` (int8 0/1), ``x`` (float64), ``y`` (float64).

Run ``python benchmarks/generate.py --rows 100000 [--unbalanced 0.10]`` to print a summary.
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

T = 8
N_CLUSTERS = 200
COHORTS = (3, 5, 7)  # entry periods; a fourth, equally likely, option is "never"
#: the Callaway-Sant'Anna design (``design="cs"``): four entry cohorts plus never, 1/5 each
CS_COHORTS = (3, 4, 5, 6)
TAU = 0.5
BETA_X = 0.3
DEFAULT_SEED = 20240601


def make_panel(rows: int, *, unbalanced: float = 0.0, seed: int = DEFAULT_SEED, T: int = T,
               n_clusters: int = N_CLUSTERS, shuffle: bool = False, cohorts: tuple = COHORTS) -> pd.DataFrame:
    """Balanced ``(rows // T) x T`` panel, optionally with a random share of unit-periods dropped.

    Rows come sorted by unit then period (the usual layout of a claims extract); ``shuffle=True``
    permutes them at random (same rows, same estimates) to time the general, unsorted code paths.
    ``cohorts`` are the entry periods (each as likely as "never"); the frame gets a column ``g``
    (the unit's first treated period, 0 = never treated) for the staggered (CS) benchmarks.
    The default draws exactly the TWFE benchmark's data.
    """
    if not 0.0 <= unbalanced < 1.0:
        raise ValueError("unbalanced must be in [0, 1)")
    rng = np.random.default_rng(seed)
    n_units = rows // T
    if n_units < n_clusters:
        raise ValueError(f"rows={rows} gives {n_units} units, fewer than the {n_clusters} clusters")
    n = n_units * T

    # unit-level draws
    unit_cl = rng.integers(0, n_clusters, size=n_units)
    alpha = rng.normal(0.0, 1.0, size=n_units)
    # cluster-level draws: program entry period (0 = never) and a cluster random effect per period
    cl_cohort = rng.choice(np.array(tuple(cohorts) + (0,), dtype=np.int64), size=n_clusters)
    cl_shock = rng.normal(0.0, 0.3, size=(n_clusters, T))
    lam = np.linspace(0.0, 1.0, T) + rng.normal(0.0, 0.1, size=T)

    unit = np.repeat(np.arange(n_units, dtype=np.int64), T)
    t = np.tile(np.arange(1, T + 1, dtype=np.int64), n_units)
    cl = np.repeat(unit_cl.astype(np.int64), T)
    coh = cl_cohort[cl]
    d = ((coh > 0) & (t >= coh)).astype(np.int8)
    x = 0.5 * np.repeat(alpha, T) + rng.normal(0.0, 1.0, size=n)
    y = (np.repeat(alpha, T) + lam[t - 1] + cl_shock[cl, t - 1] + TAU * d + BETA_X * x
         + rng.normal(0.0, 1.0, size=n))
    with_g = tuple(cohorts) != COHORTS
    if not with_g:
        del coh

    if unbalanced > 0:
        keep = rng.random(n) >= unbalanced
        unit, t, cl, d, x, y = (a[keep] for a in (unit, t, cl, d, x, y))
        if with_g:
            coh = coh[keep]

    if shuffle:
        perm = np.random.default_rng(seed + 1).permutation(len(unit))
        unit, t, cl, d, x, y = (a[perm] for a in (unit, t, cl, d, x, y))
        if with_g:
            coh = coh[perm]

    cols = {"unit": unit, "t": t, "cl": cl, "d": d, "x": x, "y": y}
    if with_g:
        cols["g"] = coh
    return pd.DataFrame(cols)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--unbalanced", type=float, default=0.0, help="share of unit-periods dropped at random")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--shuffle", action="store_true", help="rows in random order")
    a = p.parse_args(argv)
    df = make_panel(a.rows, unbalanced=a.unbalanced, seed=a.seed, shuffle=a.shuffle)
    print(df.head())
    print(f"rows={len(df)} units={df['unit'].nunique()} clusters={df['cl'].nunique()} "
          f"treated share={df['d'].mean():.3f} memory={df.memory_usage(deep=True).sum() / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
