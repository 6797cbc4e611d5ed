"""Review regressions: n_for_disparity's forwarded **design keywords are checked up front."""
import pytest

from evalkit.errors import SpecificationError
from evalkit.power import n_for_disparity


def test_mistyped_design_keyword_is_a_specification_error_naming_it_and_the_valid_ones():
    with pytest.raises(SpecificationError, match=r"'rhoo'.*rho, icc") as e:
        n_for_disparity(0.708, 0.638, reduction=0.5, shares=(0.8, 0.2), rhoo=0.5)
    assert "race_accuracy" in str(e.value) and "n_for_disparity" in str(e.value)


def test_valid_design_keywords_still_forwarded():
    r = n_for_disparity(0.708, 0.638, reduction=0.5, shares=(0.8, 0.2), rho=0.5, alpha=0.05, variance="alternative")
    assert r.n_total == 9423
