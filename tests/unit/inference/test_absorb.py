"""Fixed-effect absorption: every path equals dummy-variable least squares."""
import importlib

import numpy as np
import pytest

from evalkit.inference.absorb import FixedEffects, absorb

absorb_mod = importlib.import_module("evalkit.inference.absorb")  # the module (the package re-exports the function)


def _panel(seed, n_units=150, T=6, drop=0.25, shuffle=False):
    rng = np.random.default_rng(seed)
    u = np.repeat(np.arange(n_units), T)
    t = np.tile(np.arange(T), n_units)
    keep = rng.random(u.size) > drop
    u, t = u[keep], t[keep]
    u = np.unique(u, return_inverse=True)[1]
    if shuffle:
        p = rng.permutation(u.size)
        u, t = u[p], t[p]
    Z = rng.normal(size=(u.size, 3))
    w = rng.uniform(0.5, 2.0, u.size)
    return u, t, Z, w


def _dummy_resid(u, t, Z, w=None):
    D = np.column_stack([np.eye(u.max() + 1)[u], np.eye(t.max() + 1)[t][:, 1:]])
    sw = np.ones(len(u)) if w is None else np.sqrt(w)
    b = np.linalg.lstsq(D * sw[:, None], Z * sw[:, None], rcond=None)[0]
    return Z - D @ b


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("drop", [0.0, 0.25])
def test_two_way_paths_equal_dummy_ols(shuffle, weighted, drop):
    u, t, Z, w = _panel(1, drop=drop, shuffle=shuffle)
    w = w if weighted else None
    want = _dummy_resid(u, t, Z, w)
    got, info = absorb(Z, FixedEffects((u, t), ("u", "t")), w)
    assert info.method == "two-way exact"
    np.testing.assert_allclose(got, want, atol=1e-10)
    # alternating projections (a third, redundant effect forces that path)
    got3, info3 = absorb(Z, FixedEffects((u, t, np.zeros_like(u)), ("u", "t", "c")), w)
    assert info3.method == "alternating projections"
    np.testing.assert_allclose(got3, want, atol=1e-9)


def test_blocked_incidence_product_equals_single_block(monkeypatch):
    u, t, Z, w = _panel(2, n_units=300, drop=0.3)
    want = _dummy_resid(u, t, Z, w)
    monkeypatch.setattr(absorb_mod, "_BLOCK_CELLS", 6 * 7)  # 7 units per block
    got, _ = absorb(Z, FixedEffects((u, t), ("u", "t")), w)
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_many_periods_use_the_sparse_product():
    rng = np.random.default_rng(3)
    n_units, T = 40, 80
    u = np.repeat(np.arange(n_units), T)
    t = np.tile(np.arange(T), n_units)
    keep = rng.random(u.size) > 0.3
    u, t = np.unique(u[keep], return_inverse=True)[1], t[keep]
    Z = rng.normal(size=(u.size, 2))
    got, info = absorb(Z, FixedEffects((u, t), ("u", "t")))
    np.testing.assert_allclose(got, _dummy_resid(u, t, Z), atol=1e-9)
    assert info.n_params == n_units + T - 1


def test_one_way_and_intercept():
    u, t, Z, w = _panel(4)
    got, info = absorb(Z, FixedEffects((u,), ("u",)), w)
    means = np.array([np.average(Z[u == g], axis=0, weights=w[u == g]) for g in range(u.max() + 1)])
    np.testing.assert_allclose(got, Z - means[u], atol=1e-12)
    got0, info0 = absorb(Z, None)
    np.testing.assert_allclose(got0, Z - Z.mean(axis=0), atol=1e-12)
    assert info.n_params == u.max() + 1 and info0.n_params == 1
