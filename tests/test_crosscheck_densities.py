"""check_log_prob: refgrad's own densities pass (float64, float32), wrong ones get the right diagnosis."""
import math

import numpy as np
import pytest

from refgrad import relaxations as R
from refgrad.crosscheck import check_log_prob
from refgrad.distributions import Categorical

ELL = np.array([1.0, -2.0, 0.5, 3.0])


def _exp_points(tau, n=300, seed=0, ell=ELL):
    return R.exp_concrete_sample(ell, tau, np.random.default_rng(seed).uniform(size=(n, ell.size)))


def _concrete_points(tau, n=300, seed=0):
    x = R.concrete_sample(ELL, tau, np.random.default_rng(seed).uniform(size=(n, ELL.size)))
    return x[(x.astype(np.float32) > 0).all(axis=-1)]


def _exp_concrete32(y, ell, tau):
    """A plain float32 implementation (the formula as frameworks write it)."""
    y, ell, tau = y.astype(np.float32), ell.astype(np.float32), np.float32(tau)
    K = y.shape[-1]
    a = ell - tau * y
    m = a.max(axis=-1, keepdims=True)
    lse = m[..., 0] + np.log(np.exp(a - m).sum(axis=-1))
    return np.float32(math.lgamma(K)) + (K - 1) * np.log(tau) + a.sum(axis=-1) - K * lse


@pytest.mark.parametrize("tau", [1.0, 0.1, 0.01])
def test_exp_concrete_float64_and_float32_pass(tau):
    y = _exp_points(tau)
    ref = R.exp_concrete_log_density(y, ELL, tau)
    assert check_log_prob(ref, y, ELL, tau, "exp_concrete").passed
    v = check_log_prob(ref.astype(np.float32), y.astype(np.float32), ELL, tau, "exp_concrete")
    assert v.passed, v
    assert v.compared["renormalised points"] > 0  # float32 log-points are off refgrad's 1e-9
    with pytest.raises(ValueError):
        R.exp_concrete_log_density(y.astype(np.float32), ELL, tau)  # what the renormalisation avoids
    own = check_log_prob(_exp_concrete32(y.astype(np.float32), ELL, tau), y.astype(np.float32),
                         ELL.astype(np.float32), tau, "exp_concrete")
    assert own.passed and own.statistic < 0.5, own


@pytest.mark.parametrize("tau", [1.0, 0.1])
def test_concrete_near_boundary_float32_pass(tau):
    x = _concrete_points(tau)
    ref = R.concrete_log_density(x, ELL, tau)
    x32 = x.astype(np.float32)
    assert (x32.max(axis=-1) > 1 - 1e-6).any() or tau == 1.0  # points near a vertex at tau = 0.1
    v = check_log_prob(ref.astype(np.float32), x32, ELL, tau, "concrete")
    assert v.passed, v
    assert v.compared["largest simplex deviation"] > 1e-9


def test_binary_and_logit_families_pass():
    rng = np.random.default_rng(2)
    for tau in (0.1, 1.0, 5.0):
        x = R.binary_concrete_sample(np.full(400, 0.7), tau, rng.uniform(size=400))
        x = x[(x.astype(np.float32) > 0) & (x.astype(np.float32) < 1)]
        ref = R.binary_concrete_log_density(x, 0.7, tau)
        assert check_log_prob(ref.astype(np.float32), x.astype(np.float32), 0.7, tau, "binary_concrete").passed
        y = np.log(x) - np.log1p(-x)
        # the logit density: binary density + log x + log(1 - x)
        v = check_log_prob(ref + np.log(x) + np.log1p(-x), y, 0.7, tau, "logit_binary_concrete")
        assert v.passed, v


def test_discrete_families_pass_with_infinite_logits():
    ell = np.array([[0.3, -np.inf, 2.0], [np.inf, np.inf, 0.0]])
    idx = np.array([[0, 2], [1, 0]])  # batch (2, 2) against logits rows (2, K) broadcast: shape (2, 2)
    table = Categorical(ell).log_probs
    ref = table[np.arange(2), idx]
    assert check_log_prob(ref, idx, ell, family="categorical").passed
    assert check_log_prob(ref.astype(np.float32), idx, ell, family="categorical").passed
    one_hot = np.eye(3)[idx]
    assert check_log_prob(ref, one_hot, ell, family="categorical").passed
    bits = np.array([0, 1, 1])
    lb = np.array([-1.0, 40.0, -np.inf])
    ref_b = np.array([-np.logaddexp(0, -1.0), -np.logaddexp(0, -40.0), -np.inf])
    assert check_log_prob(ref_b, bits, lb, family="bernoulli").passed


def test_batched_temperatures_and_shape_diagnosis():
    taus = np.array([0.05, 0.5, 1.0, 4.0])
    y = np.stack([_exp_points(t, n=1, seed=i)[0] for i, t in enumerate(taus)])
    ref = np.array([R.exp_concrete_log_density(y[i], ELL, taus[i]) for i in range(4)])
    assert check_log_prob(ref, y, ELL, taus, "exp_concrete").passed
    wrong_shape = np.tile(ref, (4, 1))  # (B, B) instead of (B,)
    v = check_log_prob(wrong_shape, y, ELL, taus, "exp_concrete")
    assert v.diagnosis == "shape" and v.compared["expected shape"] == "(4,)"
    assert v.compared["actual shape"] == "(4, 4)"


def test_normalising_constant_is_convention():
    x = _concrete_points(1.0)
    v = check_log_prob(R.concrete_log_density(x, ELL, 1.0) - math.lgamma(4), x, ELL, 1.0, "concrete")
    assert v.diagnosis == "convention" and "log((K-1)!)" in v.compared["constant is"]
    assert abs(v.compared["constant"] + math.log(6)) < 1e-9
    ell = np.array([[0.5, 1.0, -1.0]])
    idx = np.array([0, 1, 2, 1])
    v = check_log_prob(np.broadcast_to(ell, (4, 3))[np.arange(4), idx], idx, ell, family="categorical")
    assert v.diagnosis == "convention" and "logsumexp" in v.compared["constant is"]


@pytest.mark.parametrize("tau", [1.0, 0.1])
def test_change_of_measure_is_named(tau):
    y = _exp_points(tau)
    leb = R.exp_concrete_log_density(y, ELL, tau, measure="lebesgue")
    v = check_log_prob(leb, y, ELL, tau, "exp_concrete")
    assert v.diagnosis == "measure" and "Lebesgue" in v.compared["measure"] and "y_K" in v.compared["measure"]
    sym = R.exp_concrete_log_density(y, ELL, tau)
    assert check_log_prob(sym, y, ELL, tau, "exp_concrete", measure="lebesgue").diagnosis == "measure"
    assert check_log_prob(leb.astype(np.float32), y.astype(np.float32), ELL, tau, "exp_concrete",
                          measure="lebesgue").passed
    x = _concrete_points(tau)
    v = check_log_prob(R.exp_concrete_log_density(np.log(x), ELL, tau), x, ELL, tau, "concrete")
    assert v.diagnosis == "measure" and "Σ_k log x_k" in v.compared["measure"]
    xb = np.linspace(0.05, 0.95, 19)
    logit_density = R.binary_concrete_log_density(xb, 0.3, tau) + np.log(xb) + np.log1p(-xb)
    v = check_log_prob(logit_density, xb, 0.3, tau, "binary_concrete")
    assert v.diagnosis == "measure" and "logit" in v.compared["measure"]


def test_nan_at_impossible_points_is_convention_nan_elsewhere_wrong():
    ell = np.array([0.3, -np.inf, 2.0])
    idx = np.array([0, 1, 2, 1])
    ref = Categorical(ell[None]).log_probs[0][idx]
    nan_impossible = np.where(np.isinf(ref), np.nan, ref)
    v = check_log_prob(nan_impossible, idx, ell, family="categorical")
    assert v.diagnosis == "convention" and "impossible" in v.explanation
    nan_possible = ref.copy()
    nan_possible[0] = np.nan
    v = check_log_prob(nan_possible, idx, ell, family="categorical")
    assert v.diagnosis == "wrong" and v.worst[0]["index"] == (0,)
    xb = np.array([0.2, 0.5])
    v = check_log_prob([np.nan, np.nan], xb, [np.inf, 1.0], 0.5, "binary_concrete")
    assert v.diagnosis == "wrong"  # the finite logit's point is possible


def test_wrong_values_and_worst_points():
    y = _exp_points(0.5)
    ref = R.exp_concrete_log_density(y, ELL, 0.5)
    bad = ref.copy()
    bad[7] += 1e-3
    v = check_log_prob(bad, y, ELL, 0.5, "exp_concrete")
    assert v.diagnosis == "wrong" and v.worst[0]["index"] == (7,) and v.compared["beyond tolerance"] == 1
    # a float32 rounding of the logits inside the foreign formula is legitimate; 1e-4 relative is not
    v = check_log_prob(ref * (1 + 1e-4) + 1e-4 * y[:, 0], y, ELL, 0.5, "exp_concrete")
    assert v.diagnosis == "wrong"


def test_bad_input_refused():
    y = _exp_points(0.5, n=5).astype(np.float32)
    off = y.copy()
    off[3, 0] += 1e-3
    with pytest.raises(ValueError, match="points"):
        check_log_prob(np.zeros(5), off, ELL, 0.5, "exp_concrete")
    with pytest.raises(ValueError, match="family"):
        check_log_prob(np.zeros(5), y, ELL, 0.5, "gumbel")
    with pytest.raises(ValueError, match="tau"):
        check_log_prob(np.zeros(5), y, ELL, -1.0, "exp_concrete")
    with pytest.raises(ValueError, match="tau"):
        check_log_prob(np.zeros(5), y, ELL, None, "exp_concrete")
    with pytest.raises(ValueError, match="measure"):
        check_log_prob(np.zeros(5), np.exp(y), ELL, 0.5, "concrete", measure="lebesgue")
    with pytest.raises(ValueError, match="points"):
        check_log_prob(np.zeros(3), [0.0, 0.5, 1.0], 0.0, 0.5, "binary_concrete")
    with pytest.raises(ValueError, match="logits"):
        check_log_prob(np.zeros(2), [0, 1], [np.nan, 0.0], family="bernoulli")


def test_verdict_is_plain_data():
    import json

    y = _exp_points(0.5, n=20)
    v = check_log_prob(R.exp_concrete_log_density(y, ELL, 0.5, measure="lebesgue"), y, ELL, 0.5, "exp_concrete")
    json.dumps(v.to_dict())
    assert "worst points" in str(v)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_points_computed_from_large_scores_are_renormalised_not_refused(dtype):
    # y = s - logsumexp(s) with scores s = (ℓ + G)/τ of size ~4000 (τ = 0.01, logits up to 40),
    # as PyTorch's ExpRelaxedCategorical computes its samples: logsumexp(y) is off by a few ulps of
    # |s|, ~1e-13 in float64 (seen: 1.4e-14 from torch), far more than K roundings of y.
    ell, tau = np.array([40.0, 38.0, 39.5]), 0.01
    g = -np.log(-np.log(np.random.default_rng(5).uniform(size=(400, 3))))
    s = ((ell + g) / tau).astype(dtype)
    m = s.max(axis=-1, keepdims=True)
    y = s - (m + np.log(np.exp(s - m).sum(axis=-1, keepdims=True)))
    dev = np.abs(np.log(np.exp(y.astype(np.float64)).sum(axis=-1)))
    assert dev.max() > 8 * 3 * np.finfo(dtype).eps  # beyond the old K-roundings allowance
    yy = y.astype(np.float64) - np.log(np.exp(y.astype(np.float64)).sum(axis=-1, keepdims=True))
    values = R.exp_concrete_log_density(yy, ell, tau).astype(dtype)
    v = check_log_prob(values, y, ell, tau, family="exp_concrete")
    assert v.passed, v
    assert v.compared["renormalised points"] > 0
