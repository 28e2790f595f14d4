"""unbiasedness_test's ``calibration`` says what decided: "exact" only when nothing random was left
(a constant coordinate off its target), not when the F p-value merely underflowed to 0."""
import numpy as np

from refgrad import stats


def test_an_underflowed_p_value_is_asymptotic_not_exact():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(4000, 3)).astype(float)  # varies in every coordinate
    r = stats.unbiasedness_test(x, np.full(3, 0.1), alpha=1e-3)
    assert r.reject and r.pvalue == 0.0
    assert r.calibration == "asymptotic", r.calibration
    assert any("below the smallest double" in note for note in r.notes)


def test_a_constant_coordinate_off_target_is_decided_exactly():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 2))
    x[:, 1] = 0.25
    r = stats.unbiasedness_test(x, np.array([0.0, 0.0]), alpha=1e-3)
    assert r.reject and r.pvalue == 0.0 and r.calibration == "exact"
