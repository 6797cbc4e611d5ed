"""ValidatedPanel.unit_entry / unit_has_untreated: per-unit treatment summary used by fast paths.

Checked against a brute-force per-unit computation on sorted and shuffled churned panels, and
against the row-based fallback of twfe's staggered-adoption check.
"""
import dataclasses

import numpy as np
import pytest

import evalkit as ek
from evalkit.data.schema import validate_panel
from evalkit.did.twfe import _staggered


@pytest.fixture(scope="module")
def aqc():
    df, _ = ek.datasets.simulate_aqc(seed=3, n_members=1500)
    return df


def _brute(vp):
    T = vp.n_periods
    n_u = int(vp.unit.max()) + 1
    entry = np.full(n_u, T)
    has_off = np.zeros(n_u, bool)
    for u, t, d in zip(vp.unit, vp.time, vp.treatment):
        if d == 1:
            entry[u] = min(entry[u], t)
        else:
            has_off[u] = True
    return entry, has_off


@pytest.mark.filterwarnings("ignore::evalkit.errors.SingletonWarning")
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("frac", [1.0, 0.6])
def test_unit_entry_matches_brute_force(aqc, shuffle, frac):
    d = aqc.sample(frac=frac, random_state=2) if frac < 1 else aqc
    d = d.sample(frac=1.0, random_state=5) if shuffle else d
    vp = validate_panel(d, outcome="spending", unit="member_id", time="quarter", treatment="aqc")
    entry, has_off = _brute(vp)
    np.testing.assert_array_equal(vp.unit_entry, entry)
    np.testing.assert_array_equal(vp.unit_has_untreated, has_off)
    assert not vp.unit_entry.flags.writeable
    slow = dataclasses.replace(vp, unit_entry=None, unit_has_untreated=None)
    assert _staggered(vp) == _staggered(slow) is True
    # one entry cohort: not staggered on the full panel; under churn a member first seen treated
    # later than the entry quarter (with untreated rows before the gap) switches later, in both paths
    one = d[(d.entry_year == 2010) | d.entry_year.isna()]
    vp1 = validate_panel(one, outcome="spending", unit="member_id", time="quarter", treatment="aqc")
    fast1 = _staggered(vp1)
    assert fast1 == _staggered(dataclasses.replace(vp1, unit_entry=None, unit_has_untreated=None))
    if frac == 1.0:
        assert fast1 is False


@pytest.mark.filterwarnings("ignore::evalkit.errors.SingletonWarning")
@pytest.mark.filterwarnings("ignore::evalkit.errors.DroppedRowsWarning")
def test_unit_entry_absent_after_row_drops(aqc):
    vp = validate_panel(aqc.sample(frac=0.6, random_state=2), outcome="spending", unit="member_id",
                        time="quarter", treatment="aqc", drop_singletons=True)
    assert any("singleton" in str(r).lower() for r in vp.dropped)
    assert vp.unit_entry is None and vp.unit_has_untreated is None
