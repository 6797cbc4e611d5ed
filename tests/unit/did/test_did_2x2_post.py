"""did_2x2 with post=: one effect per period, post marks the post-treatment periods (code, docs, conventions agree)."""
import numpy as np
import pandas as pd
import pytest

import evalkit as ek


def _rcs(seed=1, n=800):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"g": rng.integers(0, 2, n), "yr": rng.choice([2000, 2001, 2002, 2003], n)})
    df["post"] = (df.yr >= 2002).astype(int)
    df["x"] = rng.normal(size=n)
    df["y"] = 1 + 0.5 * df.g + 0.3 * (df.yr - 2000) + 2 * df.g * df.post + 0.5 * df.x + rng.normal(size=n)
    return df


def test_post_keeps_one_effect_per_period():
    df = _rcs()
    res = ek.did.did_2x2(df, outcome="y", group="g", time="yr", post="post", covariates=["x"])
    n = len(df)
    X = np.column_stack([df.g * df.post, df.x, np.ones(n), df.g, pd.get_dummies(df.yr).to_numpy(float)[:, 1:]])
    y = df.y.to_numpy()
    b = np.linalg.lstsq(X, y, rcond=None)[0]
    e = y - X @ b
    bread = np.linalg.inv(X.T @ X)
    V = bread @ (X * e[:, None] ** 2).T @ X @ bread * n / (n - X.shape[1])
    assert res.estimate == pytest.approx(b[0], abs=1e-10)
    assert res.std_error == pytest.approx(np.sqrt(V[0, 0]), rel=1e-9)
    note = res.conventions.notes[0]
    assert "one effect per period of 'yr' (4 periods)" in note and "post-treatment periods: 2002, 2003" in note
    assert note in res.with_vcov("iid").conventions.notes
    doc = " ".join(ek.did.did_2x2.__doc__.split())
    assert "one effect per period" in doc and "single post dummy" not in doc.replace("(a single post dummy would not)", "")


def test_post_varying_within_a_period_is_a_data_error():
    df = _rcs()
    df.loc[df.index[:5], "post"] = 1 - df.loc[df.index[:5], "post"]
    with pytest.raises(ek.DataError, match=r"post='post' varies within periods of 'yr'.*time='post'"):
        ek.did.did_2x2(df, outcome="y", group="g", time="yr", post="post")
    with pytest.raises(ek.DataError, match=r"post='post' is 1 in every row"):
        ek.did.did_2x2(_rcs().assign(post=1), outcome="y", group="g", time="yr", post="post")


def test_pooling_periods_by_passing_post_as_time():
    df = _rcs()
    res = ek.did.did_2x2(df, outcome="y", group="g", time="post")
    n = len(df)
    X = np.column_stack([np.ones(n), df.g, df.post, df.g * df.post]).astype(float)
    b = np.linalg.lstsq(X, df.y.to_numpy(), rcond=None)[0]
    assert res.estimate == pytest.approx(b[3], abs=1e-10)
