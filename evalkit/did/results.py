"""Results of the regression-based DiD designs."""
from __future__ import annotations

from dataclasses import dataclass

from ..inference.vcov import SmallSampleCorrection
from ..results import EffectResult

__all__ = ["DiDResult"]


@dataclass(frozen=True, repr=False)
class DiDResult(EffectResult):
    """Difference-in-differences estimate(s) with their inference and conventions.

    The headline ``estimate``/``std_error``/``p_value`` refer to the first term (the treatment
    effect); ``to_frame()`` lists every reported term. ``with_vcov()`` returns a new result with
    other standard errors on the same fit.
    """

    def with_vcov(self, vcov: str, *, ssc: SmallSampleCorrection | None = None, level: float | None = None,
                  seed=None, n_boot: int = 999, boot_weights: str = "rademacher") -> "DiDResult":
        """Same point estimates, other inference (``"iid"``, ``"HC1"``, ``"CR0"``, ``"CR1"``, ``"CR2"``, ``"wild"``)."""
        from ._engine import build_conventions, infer

        ctx = self.extra["_context"]
        lvl = self.conventions.level if level is None else level
        table, vr, extra = infer(ctx, vcov, small_sample=ssc, level=lvl, seed=seed, n_boot=n_boot, boot_weights=boot_weights)
        conv = build_conventions(self.conventions.estimator, vr, level=lvl, weights=self.conventions.weights,
                                 fe=ctx.fe, absorb_info=ctx.absorb_info,
                                 reference_period=self.conventions.reference_period, seed=seed,
                                 notes=self.conventions.notes)
        for col in self.table.columns:  # keep design columns such as event_time
            if col not in table.columns:
                table[col] = self.table[col].to_numpy()
        return type(self)(table, vr.vcov, conv, self.sample, {**self.extra, **extra})

    def plot(self, ax=None, **kwargs):
        """Effect estimates with confidence intervals (a forest plot of the effect terms); returns the Axes."""
        from ..plots import plot_coefficients

        return plot_coefficients(self, ax=ax, **kwargs)
