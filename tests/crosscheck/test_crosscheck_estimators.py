"""check_estimator and check_same_estimates on refgrad's own estimators and on deliberately wrong ones."""
import numpy as np
import pytest
from scipy import stats as sps

import refgrad
from refgrad import objectives
from refgrad.crosscheck import check_estimator, check_same_estimates

D2, F2 = refgrad.Bernoulli([0.3, -1.0]), objectives.SquaredDistance([0.45, 0.2])
D1, F1 = refgrad.Bernoulli([0.3]), objectives.SquaredDistance([0.45])
CASES = {"reinforce": (D2, F2, {}), "disarm": (D2, F2, {}), "rebar": (D1, F1, {}),
         "gumbel_softmax": (D1, F1, {"tau": 0.5})}


def _rate(name, reps, n=1000, alpha=0.05):
    dist, f, opts = CASES[name]
    unbiased = refgrad.ESTIMATORS[name].unbiased
    rejected = 0
    for seed in range(reps):
        x = refgrad.estimate(name, dist, f, n=n, rng=seed, **opts)
        rejected += not check_estimator(x, dist, f, unbiased=unbiased, name=name, alpha=alpha, **opts).passed
    return rejected / reps


def _interval(reps, alpha=0.05, level=0.99):
    lo, hi = sps.binom.interval(level, reps, alpha)
    return lo / reps, hi / reps


@pytest.mark.parametrize("name", ["reinforce", "disarm", "gumbel_softmax"])
def test_false_alarm_rate(name):
    lo, hi = _interval(200)
    rate = _rate(name, 200)
    assert lo <= rate <= hi, (name, rate, lo, hi)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_false_alarm_rate_slow(name):
    lo, hi = _interval(1000)
    rate = _rate(name, 1000)
    print(f"\n{name}: false-alarm rate {rate:.3f} at alpha 0.05 (99 % interval [{lo:.3f}, {hi:.3f}])")
    if name == "rebar":  # measured 0.014 before the exact-covariance mean test: conservative
        assert rate <= hi, (name, rate, hi)
    else:
        assert lo <= rate <= hi, (name, rate, lo, hi)


def test_rebar_passes():
    x = refgrad.estimate("rebar", D1, F1, n=2000, rng=3)
    v = check_estimator(x, D1, F1, name="rebar")
    assert v.passed and len(v.parts) == 2, v
    assert check_estimator(x.astype(np.float32), D1, F1).passed


def test_power_against_shift_bias_and_variance():
    x = refgrad.estimate("disarm", D2, F2, n=2000, rng=5)
    assert check_estimator(x, D2, F2, name="disarm").passed
    shifted = check_estimator(x + np.array([0.0, 0.02]), D2, F2, name="disarm")
    assert shifted.diagnosis == "wrong" and not shifted.parts[0].passed
    assert "coordinate (1)" in shifted.parts[0].explanation
    scaled = check_estimator(x.mean(axis=0) + 1.3 * (x - x.mean(axis=0)), D2, F2, name="disarm")
    assert not scaled.passed and scaled.parts[0].passed and not scaled.parts[1].passed
    assert "variance off by" in scaled.explanation
    g = refgrad.estimate("gumbel_softmax", D1, F1, n=20000, rng=7, tau=0.5)
    assert not check_estimator(g, D1, F1).passed  # biased, declared unbiased
    assert check_estimator(g, D1, F1, unbiased=False, name="gumbel_softmax", tau=0.5).passed


def test_zero_variance_coordinate_decided_exactly():
    dist = refgrad.Bernoulli([0.3, np.inf])  # the second bit is deterministic: its gradient is 0 exactly
    f = objectives.SquaredDistance([0.45, 0.2])
    x = refgrad.estimate("reinforce", dist, f, n=500, rng=1)
    assert check_estimator(x, dist, f, name="reinforce").passed
    noisy = x.copy()
    noisy[:, 1] += np.random.default_rng(0).normal(scale=1e-3, size=500)
    assert check_estimator(noisy, dist, f, name="reinforce").diagnosis == "certain failure"


def test_estimator_input_refused():
    x = refgrad.estimate("reinforce", D2, F2, n=50, rng=1)
    with pytest.raises(ValueError, match="samples"):
        check_estimator(x[:, :1], D2, F2)
    with pytest.raises(ValueError, match="name"):
        check_estimator(x, D2, F2, unbiased=False)
    bad = x.copy()
    bad[4, 0] = np.nan
    v = check_estimator(bad, D2, F2)
    assert v.diagnosis == "wrong" and v.worst[0]["row"] == 4


def _numpy_reinforce(u, logits, target, dtype):
    """REINFORCE for Bernoulli bits, b = 1[u > σ(-ℓ)], ĝ = f(b) (b - σ(ℓ)), in the given dtype."""
    u, ell, t = u.astype(dtype), np.asarray(logits, dtype), np.asarray(target, dtype)
    b = (u > 1 / (1 + np.exp(ell))).astype(dtype)
    fb = ((b - t) ** 2).sum(axis=1, keepdims=True)
    return fb * (b - 1 / (1 + np.exp(-ell)))


def _numpy_disarm(u, logits, target, dtype):
    """DisARM (Dong et al. 2020): b1 = 1[u > 1-θ], b2 = 1[u < θ], ĝ = ½ (f(b1) - f(b2)) (-1)^{b2} 1[b1≠b2] σ(|ℓ|)."""
    u, ell, t = u.astype(dtype), np.asarray(logits, dtype), np.asarray(target, dtype)
    theta = 1 / (1 + np.exp(-ell))
    b1, b2 = (u > 1 - theta).astype(dtype), (u < theta).astype(dtype)
    fd = ((b1 - t) ** 2).sum(axis=1, keepdims=True) - ((b2 - t) ** 2).sum(axis=1, keepdims=True)
    return 0.5 * fd * (-1.0) ** b2 * (b1 != b2) / (1 + np.exp(-np.abs(ell)))


@pytest.mark.parametrize("name,impl", [("reinforce", _numpy_reinforce), ("disarm", _numpy_disarm)])
def test_same_estimates_numpy_float64_and_float32(name, impl):
    noise = refgrad.ESTIMATORS[name].draw_noise(D2, 3000, rng=11)
    ours = impl(noise["u"], D2.logits, F2.target, np.float64)
    v = check_same_estimates(ours, name, D2, F2, noise)
    assert v.passed and v.compared["largest error"] < 1e-15, v
    u32 = {"u": noise["u"].astype(np.float32)}
    v32 = check_same_estimates(impl(u32["u"], D2.logits, F2.target, np.float32), name, D2, F2, u32)
    assert v32.passed, v32
    v_against_64 = check_same_estimates(impl(u32["u"], D2.logits, F2.target, np.float32), name, D2, F2, noise)
    assert v_against_64.passed, v_against_64  # float32-rounded noise: accepted through the rounded evaluation


def test_same_estimates_detects_perturbation_and_shape():
    noise = refgrad.ESTIMATORS["reinforce"].draw_noise(D2, 1000, rng=12)
    ours = _numpy_reinforce(noise["u"], D2.logits, F2.target, np.float64)
    bad = ours.copy()
    bad[17, 1] *= 1.001
    bad[400] = np.nan
    v = check_same_estimates(bad, "reinforce", D2, F2, noise)
    assert v.diagnosis == "wrong" and v.compared["rows beyond tolerance"] == 2 and v.compared["NaN rows"] == 1
    assert {w["row"] for w in v.worst} == {17, 400} and "u" in v.worst[0]["noise"]
    v = check_same_estimates(_numpy_reinforce(noise["u"], D2.logits, F2.target, np.float32) * 1.0001, "reinforce",
                             D2, F2, noise)
    assert not v.passed and v.compared["fraction beyond tolerance"] > 0.2  # small estimates sit below the column scale
    v = check_same_estimates(ours[:, :1], "reinforce", D2, F2, noise)
    assert v.diagnosis == "shape"


def test_same_estimates_accepts_a_flip_from_float32_rounding():
    noise = refgrad.ESTIMATORS["reinforce"].draw_noise(D2, 200, rng=13)
    thr = 1 / (1 + np.exp(0.3))  # b_0 = 1[u_0 > σ(-ℓ_0)]
    u0 = next(c for c in (thr * (1 + 1e-12), thr * (1 - 1e-12)) if (np.float32(c) > thr) != (c > thr))
    noise["u"][0, 0] = u0  # float32 rounding moves u_0 across the threshold: b_0 flips
    foreign = _numpy_reinforce(noise["u"].astype(np.float32), D2.logits, F2.target, np.float32)
    v = check_same_estimates(foreign, "reinforce", D2, F2, noise)
    assert v.passed, v  # accepted: the noise moved by its float32 rounding flips the row
    # the same float32 results handed over as float64 (as the torch and JAX per-sample-gradient helpers
    # return them) are still float32 computations: accepted too
    assert check_same_estimates(foreign.astype(np.float64), "reinforce", D2, F2, noise).passed
    # a float64 computation that flips the row is wrong
    flipped = _numpy_reinforce(noise["u"], D2.logits, F2.target, np.float64)
    flipped[0] = foreign[0]
    assert not check_same_estimates(flipped, "reinforce", D2, F2, noise).passed


def test_same_estimates_accepts_rounding_of_a_tiny_coordinate_at_the_row_scale():
    # Gumbel-softmax on a categorical whose last category is nearly impossible: its gradient
    # coordinate is ~1e-190 in every row, while the row's other coordinates are O(0.1).  A foreign
    # implementation that computes the softmax Jacobian in another order leaves an absolute error of a
    # few eps times the row's scale in that coordinate (seen with jax.grad: 5.7e-15 against 1.7e-193);
    # that is legitimate float64 rounding and must pass, while an error of 1e-3 of the row scale must not.
    dist = refgrad.Categorical(np.array([[1.0, 0.0, -440.0]]))
    f = refgrad.objectives.SquaredDistance(np.array([[0.3, 0.3, 0.3]]))
    noise = refgrad.ESTIMATORS["gumbel_softmax"].draw_noise(dist, 300, rng=14, tau=0.5)
    ref = refgrad.estimate("gumbel_softmax", dist, f, noise=noise, tau=0.5)
    assert np.abs(ref[:, 0, 2]).max() < 1e-150 and np.abs(ref[:, 0, :2]).max() > 1e-2
    row_scale = np.abs(ref).max(axis=(1, 2))
    foreign = ref.copy()
    foreign[:, 0, 2] += 4 * np.finfo(np.float64).eps * row_scale
    v = check_same_estimates(foreign, "gumbel_softmax", dist, f, noise, tau=0.5)
    assert v.passed, v
    foreign[:, 0, 2] = ref[:, 0, 2] + 1e-3 * row_scale
    assert not check_same_estimates(foreign, "gumbel_softmax", dist, f, noise, tau=0.5).passed


@pytest.mark.parametrize("tau", [0.01, 0.1])
def test_same_estimates_accepts_the_rounding_of_logit_plus_noise(tau):
    # A Gumbel-softmax written the usual way (as with jax.nn.softmax and jax.grad) rounds ℓ + G and
    # (ℓ + G)/τ before anything else: with logits of 50 and τ = 0.01 or 10 that alone moves the
    # gradient by ~100 eps of its size (seen: 270 eps at τ = 0.01, 120 eps at τ = 10).  Emulated
    # here by refgrad's own estimate at logits moved by that rounding, eps (|ℓ| + |G|) ≤ eps (|ℓ| + 40).
    logits = np.array([[1.0, 0.0, -0.5], [50.0, -50.0, 0.0]])
    dist = refgrad.Categorical(logits)
    f = refgrad.objectives.SquaredDistance(np.full(logits.shape, 0.3))
    noise = refgrad.ESTIMATORS["gumbel_softmax"].draw_noise(dist, 400, rng=15, tau=tau)
    signs = np.array([1.0, -1.0, 1.0])  # the roundings of different entries differ
    moved = refgrad.Categorical(logits + 0.5 * signs * np.finfo(np.float64).eps * (np.abs(logits) + 40.0))
    foreign = refgrad.estimate("gumbel_softmax", moved, f, noise=noise, tau=tau)
    ref = refgrad.estimate("gumbel_softmax", dist, f, noise=noise, tau=tau)
    assert np.abs(foreign - ref).max() > 16 * np.finfo(np.float64).eps * np.abs(ref).max()  # beyond the base term
    assert check_same_estimates(foreign, "gumbel_softmax", dist, f, noise, tau=tau).passed
    assert not check_same_estimates(ref * (1 + 1e-9), "gumbel_softmax", dist, f, noise, tau=tau).passed


def _numpy_gumbel_softmax(u, logits, target, tau):
    """Gumbel-softmax as usually written: y = softmax((ℓ + G)/τ), ĝ = (1/τ) y ⊙ (g − ⟨y, g⟩), g = 2(y − t)."""
    s = (logits + (-np.log(-np.log(u)))) / tau
    y = np.exp(s - s.max(axis=-1, keepdims=True))
    y /= y.sum(axis=-1, keepdims=True)
    g = 2.0 * (y - target)
    return y * (g - (y * g).sum(axis=-1, keepdims=True)) / tau


@pytest.mark.parametrize("tau", [0.01, 0.1, 1.0, 10.0])
def test_same_estimates_passes_a_textbook_gumbel_softmax_in_float64(tau):
    # The textbook VJP cancels: at τ = 10 with logits (50, −50, 0), g_0 − ⟨y, g⟩ ≈ 0.01 from terms of
    # 1.4, so its rounding is ~100 eps of the coordinate (seen from jax.grad: 95 eps of the row scale).
    logits = np.array([[1.0, 0.0, -0.5], [50.0, -50.0, 0.0]])
    dist = refgrad.Categorical(logits)
    f = refgrad.objectives.SquaredDistance(np.full(logits.shape, 0.3))
    noise = refgrad.ESTIMATORS["gumbel_softmax"].draw_noise(dist, 2000, rng=16, tau=tau)
    ours = _numpy_gumbel_softmax(noise["u"], logits, 0.3, tau)
    v = check_same_estimates(ours, "gumbel_softmax", dist, f, noise, tau=tau)
    assert v.passed, v.compared
    bad = ours.copy()
    bad[:, 0, 0] *= 1 + 1e-8
    assert not check_same_estimates(bad, "gumbel_softmax", dist, f, noise, tau=tau).passed


def test_same_estimates_allows_the_cancellation_of_the_softmax_vjp_at_small_tau():
    # Near a vertex (y_1 = 1 − 1e-12) the textbook VJP y ⊙ (g − ⟨y, g⟩)/τ computes 1 − y_1 by
    # subtraction: the coordinate (2.1e-10) comes out 9e-5 off in relative terms, an absolute error
    # of ~0.1 eps |g| / τ, the size of the terms it was computed from.  PyTorch's gumbel_softmax
    # backward gives the same numbers as the textbook form here; that is rounding, not a wrong formula.
    logits = np.array([[1.0, 0.0, -0.5], [2.0, -1.0, 0.5]])
    dist = refgrad.Categorical(logits)
    f = refgrad.objectives.SquaredDistance(np.full(logits.shape, 0.3))
    key = [0] + [ord(c) for c in "crosscheck_torch/gs-gumbel_softmax-float64-0.01"]
    u = refgrad.random.uniform(np.random.default_rng(np.random.SeedSequence(key)), (400, 2, 3))
    ours = _numpy_gumbel_softmax(u, logits, 0.3, 0.01)
    ref = refgrad.estimate("gumbel_softmax", dist, f, noise={"u": u}, tau=0.01)
    assert abs(ours[336, 1, 1] / ref[336, 1, 1] - 1) > 1e-5  # the cancellation is there
    assert check_same_estimates(ours, "gumbel_softmax", dist, f, {"u": u}, tau=0.01).passed
    bad = ours.copy()
    bad[:, 0, 0] *= 1 + 1e-8
    assert not check_same_estimates(bad, "gumbel_softmax", dist, f, {"u": u}, tau=0.01).passed
