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
        check_log_prob(np.zeros(3), [0.0, 0.5, 1.5], 0.0, 0.5, "binary_concrete")
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


# ---------------------------------------------------------------------------
# boundary points: the density's limit, not a refusal
# ---------------------------------------------------------------------------
# Binary Concrete: p(x) = τ α x^(-τ-1) (1-x)^(-τ-1) / (α x^-τ + (1-x)^-τ)², α = e^ℓ, so
# p(x) ~ (τ/α) x^(τ-1) as x -> 0 and τ α (1-x)^(τ-1) as x -> 1: log p -> +inf (τ < 1), ∓ℓ (τ = 1), -inf (τ > 1).


def _binary_truth(x, ell, tau):
    """log p at x in [0, 1]: the formula inside, the derived limit at 0 and 1."""
    inside = R.binary_concrete_log_density(np.clip(x, 0.25, 0.75), ell, tau)
    edge = np.inf if tau < 1 else (-np.inf if tau > 1 else None)
    at0 = -ell if edge is None else edge
    at1 = ell if edge is None else edge
    return np.where(x == 0.0, at0, np.where(x == 1.0, at1, inside))


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_binary_concrete_boundary_limits(tau):
    ell, x = 0.7, np.array([0.0, 0.3, 1.0, 0.6])
    truth = _binary_truth(x, ell, tau)
    # the derived limit against the density itself next to the boundary
    near = R.binary_concrete_log_density(np.array([1e-12, 1.0 - 1e-12]), ell, tau)
    if tau == 1.0:
        assert np.allclose(near, [-ell, ell], atol=1e-10)
    else:
        assert np.all(np.sign(near) == np.sign(truth[[0, 2]])) and np.all(np.abs(near) > 10)
    v = check_log_prob(truth, x, ell, tau, "binary_concrete")
    assert v.passed and v.compared["boundary points"] == 2, v
    for wrong in (np.inf, -np.inf, np.nan, 30.0):  # +inf is TFP's value at 0 and 1
        values = truth.copy()
        values[[0, 2]] = wrong
        v = check_log_prob(values, x, ell, tau, "binary_concrete")
        if wrong == truth[0]:
            assert v.passed, v  # TFP's +inf is the limit when τ < 1; -inf is the limit when τ > 1
        else:
            assert v.diagnosis == "wrong" and v.compared["off the limit at boundary points"] == 2, (wrong, v)
            assert "boundary point" in v.explanation


def test_binary_concrete_boundary_float32_and_infinite_logits():
    # float32 points flushed to 0 and rounded to 1, float32 values; τ = 1 gives finite limits
    x = np.array([0.0, 1.0, 0.25], dtype=np.float32)
    values = np.array([-1.5, 1.5, R.binary_concrete_log_density(0.25, 1.5, 1.0)], dtype=np.float32)
    assert check_log_prob(values, x, 1.5, 1.0, "binary_concrete").passed
    values[0] = np.float32(-1.5) * (1 + 1e-5)
    assert check_log_prob(values, x, 1.5, 1.0, "binary_concrete").diagnosis == "wrong"
    # infinite logits: a point mass, refgrad's -inf everywhere; NaN there stays a convention
    assert check_log_prob(np.array([-np.inf, -np.inf]), [0.0, 1.0], [np.inf, -np.inf], 0.5,
                          "binary_concrete").passed
    assert check_log_prob(np.array([np.nan, -np.inf]), [0.0, 1.0], [np.inf, -np.inf], 0.5,
                          "binary_concrete").diagnosis == "convention"


def test_logit_binary_concrete_infinite_points():
    # the logistic density τ σ(τy - ℓ) σ(ℓ - τy) -> 0 as y -> ±inf, at every τ
    y = np.array([-np.inf, 0.2, np.inf])
    inside = np.log(0.5) - np.abs(0.5 * 0.2 - 0.3) - 2 * np.log1p(np.exp(-np.abs(0.5 * 0.2 - 0.3)))
    truth = np.array([-np.inf, inside, -np.inf])
    assert check_log_prob(truth, y, 0.3, 0.5, "logit_binary_concrete").passed
    for wrong in (np.inf, np.nan, -800.0):
        values = truth.copy()
        values[2] = wrong
        assert check_log_prob(values, y, 0.3, 0.5, "logit_binary_concrete").diagnosis == "wrong"


# Concrete on the simplex, Lebesgue on x_1..x_{K-1}: with m coordinates at 0, m = 1 gives
# p ~ x_z^(τ(K-1) - 1) (finite at τ(K-1) = 1: log((K-1)!) + (K-1) log τ + (1-K) ℓ_z + Σ_{k≠z}(ℓ_k - (τ+1) log x_k));
# m >= 2: +inf when τ(K-1) <= 1, -inf when Kτ > m(τ+1), no limit otherwise.
FACE_ELL = np.array([0.3, -0.7, 1.1, 0.2])
FACES = [(3, 0.5, [0.0, 0.4, 0.6], "finite"), (3, 0.3, [0.0, 0.4, 0.6], np.inf), (3, 0.8, [0.0, 0.4, 0.6], -np.inf),
         (4, 0.2, [0.0, 0.0, 0.4, 0.6], np.inf), (4, 3.5, [0.0, 0.0, 0.4, 0.6], -np.inf),
         (3, 0.4, [0.0, 0.0, 1.0], np.inf), (3, 2.5, [0.0, 0.0, 1.0], -np.inf)]


@pytest.mark.parametrize("K, tau, face, limit", FACES)
def test_concrete_face_limits(K, tau, face, limit):
    ell, face = FACE_ELL[:K], np.array(face)
    if limit == "finite":
        limit = (math.lgamma(K) + (K - 1) * math.log(tau) + (1 - K) * ell[0]
                 + sum(ell[k] - (tau + 1) * math.log(face[k]) for k in (1, 2)))
    # the density itself approaching the face along two directions moves towards the limit
    near = []
    for eps in (1e-8, 1e-30):
        x = np.where(face == 0, eps * np.arange(1, K + 1), face)
        near.append(float(R.concrete_log_density(x / x.sum(), ell, tau)))
    if np.isfinite(limit):
        assert abs(near[1] - limit) < 1e-9
    else:
        assert np.sign(near[1] - near[0]) == np.sign(limit) and abs(near[1]) > 20
    inner = np.array([0.2, 0.3, 0.5] if K == 3 else [0.1, 0.2, 0.3, 0.4])
    pts = np.stack([face, inner])
    truth = np.array([limit, float(R.concrete_log_density(inner, ell, tau))])
    v = check_log_prob(truth, pts, ell, tau, "concrete")
    assert v.passed and v.compared["boundary points"] == 1, v
    wrong = 0.0 if not np.isfinite(limit) else np.inf
    assert check_log_prob(np.array([wrong, truth[1]]), pts, ell, tau, "concrete").diagnosis == "wrong"
    other = -limit if not np.isfinite(limit) else limit + 1e-3
    assert check_log_prob(np.array([other, truth[1]]), pts, ell, tau, "concrete").diagnosis == "wrong"


def test_concrete_face_without_limit_is_refused():
    # two zeros, K = 4, τ = 1: τ(K-1) = 3 > 1 and Kτ = 4 <= m(τ+1) = 4, the limit depends on the direction
    with pytest.raises(ValueError, match="points.*no limit"):
        check_log_prob(np.zeros(1), np.array([[0.0, 0.0, 0.4, 0.6]]), FACE_ELL, 1.0, "concrete")


def test_exp_concrete_minus_inf_entries():
    ell, tau = FACE_ELL[:3], 0.5
    with np.errstate(divide="ignore"):
        y = np.log(np.array([[0.4, 0.6, 0.0], [0.0, 0.6, 0.4], [0.2, 0.3, 0.5]]))
    inner = float(R.exp_concrete_log_density(y[2], ell, tau))
    # symmetric measure: the density vanishes at a face, log -> -inf for every τ
    assert check_log_prob(np.array([-np.inf, -np.inf, inner]), y, ell, tau, "exp_concrete").passed
    assert check_log_prob(np.array([np.inf, -np.inf, inner]), y, ell, tau, "exp_concrete").diagnosis == "wrong"
    # Lebesgue on y_1..y_{K-1}: log p = log p_concrete + Σ_{k<K} y_k, finite at y_K = -inf when τ(K-1) = 1
    face = (math.lgamma(3) + 2 * math.log(tau) - 2 * ell[2] + sum(ell[k] - (tau + 1) * y[0, k] for k in (0, 1))
            + y[0, 0] + y[0, 1])
    near = float(R.exp_concrete_log_density(np.log([0.4, 0.6 - 1e-30, 1e-30]), ell, tau, measure="lebesgue"))
    assert abs(near - face) < 1e-9
    inner_l = float(R.exp_concrete_log_density(y[2], ell, tau, measure="lebesgue"))
    v = check_log_prob(np.array([face, -np.inf, inner_l]), y, ell, tau, "exp_concrete", measure="lebesgue")
    assert v.passed, v
    assert check_log_prob(np.array([np.inf, -np.inf, inner_l]), y, ell, tau, "exp_concrete",
                          measure="lebesgue").diagnosis == "wrong"
