"""event_study rejects non-integer window arguments with a SpecificationError naming the argument."""
import warnings

import pytest

import evalkit as ek
from evalkit.errors import SpecificationError


@pytest.fixture(scope="module")
def mpdta():
    return ek.datasets.load_mpdta()


def _fit(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ek.did.event_study(df, outcome="lemp", unit="countyreal", time="year", cohort="first.treat", **kw)


@pytest.mark.parametrize("kw, name", [
    ({"leads": "x"}, "leads"), ({"lags": "x"}, "lags"), ({"leads": 2.5}, "leads"), ({"lags": 1.0}, "lags"),
    ({"leads": True}, "leads"), ({"leads": -2}, "leads"), ({"bin_endpoints": "yes"}, "bin_endpoints"),
])
def test_bad_window_arguments_raise_specification_error(mpdta, kw, name):
    with pytest.raises(SpecificationError, match=repr(name)):
        _fit(mpdta, **kw)


def test_numpy_integer_window_accepted(mpdta):
    import numpy as np
    r = _fit(mpdta, leads=np.int64(2), lags=np.int64(2))
    assert set(r.table["event_time"]) <= set(range(-2, 3))
