"""Exact moments of REBAR, RELAX and gumbel_rao (``derivative="total"``) over the latent, against mpmath.

``exact.moments`` integrates these estimators over the law of the latent given the sample
(:func:`refgrad.estimators.relaxed.latent_form`): given ``b`` the estimate is a term of ``z`` plus a term of
``z̃``, independent with the law of ``z | b``, and the conditional mean is integrated at one latent with
``1 − ∂z̃/∂ℓ`` written without cancellation (REBAR's ``E[c] = 0`` otherwise cancels to ``e^{−|ℓ|}`` of its
terms).  The references below are written here from the estimators' definitions, in other variables:

* a bit, ``f = SquaredDistance(T)``: ``z = ℓ + L`` (density ``e^{−|x|}/(1 + e^{−|x|})²`` at ``x = z − ℓ``) and
  the conditional sample of the REBAR paper's appendix in its uniform ``v``,
  ``z̃ = log(1 + v e^ℓ) − log(1 − v)``, ``∂z̃/∂ℓ = v e^ℓ/(1 + v e^ℓ)`` (b = 1) and
  ``z̃ = log v − log(1 + (1 − v) e^{−ℓ})``, ``∂z̃/∂ℓ = (1 − v) e^{−ℓ}/(1 + (1 − v) e^{−ℓ})`` (b = 0);
* given ``b`` the estimate is ``A(z) + B(v)``, so ``E[ĝ | b] = E[A | b] + E[B]`` and
  ``Var(ĝ | b) = Var(A | b) + Var(B)``, each a one-dimensional ``mpmath.quad`` split at the images of
  ``ℓ``, ``ℓ ± 1``, ``ℓ ± 10``, ``±τ``, ``±10τ``, ``±100τ`` (and scaled first: mpmath's quad stops on an
  absolute error).

The mean of REBAR is ``Σ_b P(b) E[ĝ | b]`` whose terms cancel to ``e^{−|ℓ|}`` of their size, so the references
run at ``30 + |ℓ|/ln 10 + 10`` digits (40 at ℓ = 0; 344 at ``|ℓ| = 700``, where one takes 2–3 minutes).
The mean is also compared with ``exact.gradient`` (REBAR and RELAX are unbiased).

Tolerance: relative ``1e-10`` on mean and variance.  Grid ``|ℓ| ∈ {0, 8, 30, 50, 100, 700, ±inf} × τ ∈ {0.01,
0.1, 0.5, 1, 10}`` (both signs) in the slow tests; the default run takes a subset.
"""
import math

import mpmath
import numpy as np
import pytest

import refgrad
from refgrad import exact
from refgrad.distributions import Bernoulli, Categorical
from refgrad.estimators.relax import RelaxSurrogate
from refgrad.objectives import SquaredDistance

RTOL = 1e-10
T = 0.2
DPS = 30
INF = np.inf
LOGITS = (0.0, 8.0, -8.0, 30.0, -30.0, 50.0, -50.0, 100.0, -100.0, 700.0, -700.0, INF, -INF)
TAUS = (0.01, 0.1, 0.5, 1.0, 10.0)
FULL = [(ell, t) for ell in LOGITS for t in TAUS]
DEFAULT = [(0.0, 0.5), (8.0, 10.0), (-30.0, 0.01), (50.0, 0.5), (-50.0, 10.0), (100.0, 0.1), (INF, 0.5),
           (-INF, 1.0)]
WORST = {}


# ------------------------------------------------------------------------------ mpmath references


def _slope(u):
    e = mpmath.exp(-abs(u))
    return e / (1 + e) ** 2


def _sig(u):
    return 1 / (1 + mpmath.exp(-u))


def _quad(fun, pts):
    """``∫ fun`` over consecutive ``pts``, scaled first by its largest value at the inner and middle points."""
    pts = sorted(set(pts))
    probe = [(a + b) / 2 for a, b in zip(pts[:-1], pts[1:]) if mpmath.isfinite(a) and mpmath.isfinite(b)]
    probe += pts[1:-1]
    scale = max([abs(fun(x)) for x in probe] + [mpmath.mpf(0)]) or mpmath.mpf(1)
    return mpmath.quad(lambda x: fun(x) / scale, pts) * scale


def _network(sur):
    """``r(x)`` and ``r'(x)`` of a one-input surrogate, in mpmath."""
    w1 = [mpmath.mpf(float(x)) for x in sur.w1[:, 0]]
    b1 = [mpmath.mpf(float(x)) for x in sur.b1]
    w2 = [mpmath.mpf(float(x)) for x in sur.w2]
    b2 = mpmath.mpf(float(sur.b2))

    def r(x):
        return sum(c * mpmath.tanh(a * x + b) for a, b, c in zip(w1, b1, w2)) + b2

    def dr(x):
        return sum(c * a * (1 - mpmath.tanh(a * x + b) ** 2) for a, b, c in zip(w1, b1, w2))

    return r, dr


def _conditional(ell, b):
    """``z̃(v)``, ``∂z̃/∂ℓ(v)`` and the inverse ``v(z̃)`` of REBAR's conditional logistic (module docstring)."""
    e = mpmath.exp(ell)
    if b == 1:
        return (lambda v: mpmath.log(1 + v * e) - mpmath.log(1 - v),
                lambda v: v * e / (1 + v * e),
                lambda z: mpmath.expm1(z) / (e + mpmath.exp(z)))
    ei = mpmath.exp(-ell)
    return (lambda v: mpmath.log(v) - mpmath.log(1 + (1 - v) * ei),
            lambda v: (1 - v) * ei / (1 + (1 - v) * ei),
            lambda z: mpmath.exp(z) * (1 + ei) / (1 + mpmath.exp(z - ell)))


def _sides(ell, tau):
    """Per bit value: ``(b, z break points on its half-line, v break points)``."""
    marks = [ell] + [ell + m for m in (-10, -1, 1, 10)] + [s * m * tau for s in (-1, 1) for m in (1, 10, 100)]
    out = []
    for b, lo, hi in ((0, -mpmath.inf, mpmath.mpf(0)), (1, mpmath.mpf(0), mpmath.inf)):
        inner = [x for x in marks if lo < x < hi]
        vof = _conditional(ell, b)[2]
        vpts = [mpmath.mpf(0)] + [vof(x) for x in inner] + [mpmath.mpf(1)]
        out.append((b, [lo] + inner + [hi], [v for v in vpts if 0 <= v <= 1]))
    return out


def _digits(ell):
    """Working digits: ``30 + |ℓ|/ln 10 + 10`` (the rare side's terms are ``e^{−|ℓ|}`` of the common side's;
    at 30 digits the gumbel_rao reference at ℓ = 100, τ = 0.1 was off by 1.3e-4)."""
    return DPS + int(abs(ell) / math.log(10)) + 10


def rebar_reference(ell, tau, eta=1.0, surrogate=None):
    """(mean, variance) of REBAR (or RELAX with ``surrogate``, whose η and τ then apply) on one bit."""
    if surrogate is not None:
        eta, tau = surrogate.eta, surrogate.tau
    if not math.isfinite(ell):
        return mpmath.mpf(0), mpmath.mpf(0)
    with mpmath.workdps(_digits(ell)):
        ell, tau, eta = mpmath.mpf(ell), mpmath.mpf(tau), mpmath.mpf(eta)
        r, dr = _network(surrogate) if surrogate is not None else (lambda x: 0, lambda x: 0)
        th = _sig(ell)

        def control(z):  # c(z) = η f(σ_τ(z)) + r(σ_τ(z)) and its z-derivative
            x = _sig(z / tau)
            return eta * (x - T) ** 2 + r(x), _slope(z / tau) / tau * (eta * 2 * (x - T) + dr(x))

        rows = []
        for b, zpts, vpts in _sides(ell, tau):
            s, fb = b - th, (b - T) ** 2
            zt, sl, _ = _conditional(ell, b)

            def dens(z):
                return _slope(z - ell)

            def A(z):
                return fb * s + control(z)[1]

            def B(v):
                c, dc = control(zt(v))
                return -(sl(v) * dc + c * s)

            q = _quad(dens, zpts)
            ma = _quad(lambda z: A(z) * dens(z), zpts) / q
            va = _quad(lambda z: (A(z) - ma) ** 2 * dens(z), zpts) / q
            mb = _quad(B, vpts)
            vb = _quad(lambda v: (B(v) - mb) ** 2, vpts)
            rows.append((q, ma + mb, va + vb))
        mean = sum(q * m for q, m, _ in rows)
        var = sum(q * ((m - mean) ** 2 + v) for q, m, v in rows)
        return +mean, +var


def gumbel_rao_total_reference(ell, tau, k):
    """(mean, variance) of gumbel_rao with ``derivative="total"`` and ``k`` draws on one bit:
    ``ĝ = (1/k) Σ_j ∂z̃_j/∂ℓ σ'(z̃_j/τ)/τ · 2(b − T)``."""
    if not math.isfinite(ell):
        return mpmath.mpf(0), mpmath.mpf(0)
    with mpmath.workdps(_digits(ell)):
        ell, tau = mpmath.mpf(ell), mpmath.mpf(tau)
        th = _sig(ell)
        rows = []
        for b, _, vpts in _sides(ell, tau):
            zt, sl, _ = _conditional(ell, b)

            def h(v):
                return sl(v) * _slope(zt(v) / tau) / tau * 2 * (b - T)

            m = _quad(h, vpts)
            v = _quad(lambda x: (h(x) - m) ** 2, vpts)
            rows.append((th if b == 1 else 1 - th, m, v))
        mean = sum(q * m for q, m, _ in rows)
        var = sum(q * ((m - mean) ** 2 + v / k) for q, m, v in rows)
        return +mean, +var


def _rel(x, ref):
    ref = mpmath.mpf(ref)
    if ref == 0:
        return 0.0 if x == 0 else np.inf
    return float(abs(mpmath.mpf(float(x)) - ref) / abs(ref))


def _check(key, m, ref_mean, ref_var, where):
    em, ev = _rel(m.mean[0], ref_mean), _rel(m.variance[0], ref_var)
    WORST[key] = max(WORST.get(key, 0.0), em, ev)
    assert em <= RTOL and ev <= RTOL, (
        f"{where}: mean {m.mean[0]!r} vs {mpmath.nstr(ref_mean, 17)} (rel {em:.2e}), "
        f"variance {m.variance[0]!r} vs {mpmath.nstr(ref_var, 17)} (rel {ev:.2e})")


def _rebar(ell, tau):
    d, f = Bernoulli([ell]), SquaredDistance(T)
    m = exact.moments("rebar", d, f, tau=tau, eta=0.8)
    _check("rebar", m, *rebar_reference(ell, tau, eta=0.8), f"rebar Bernoulli({ell}) tau={tau}")
    g = exact.gradient(d, f)[0]
    assert abs(m.mean[0] - g) <= RTOL * abs(g) or g == m.mean[0] == 0.0


def _surrogate(tau):
    return RelaxSurrogate.from_params((1,), np.array([[1.5], [-2.0]]), np.array([0.3, -0.1]), np.array([0.4, 0.25]),
                                      b2=0.1, eta=0.7, tau=tau)


def _relax(ell, tau):
    sur = _surrogate(tau)
    m = exact.moments("relax", Bernoulli([ell]), SquaredDistance(T), surrogate=sur)
    _check("relax", m, *rebar_reference(ell, tau, surrogate=sur), f"relax Bernoulli({ell}) tau={tau}")


def _gumbel_rao_total(ell, tau, k=3):
    m = exact.moments("gumbel_rao", Bernoulli([ell]), SquaredDistance(T), tau=tau, k=k, derivative="total")
    _check("gumbel_rao total", m, *gumbel_rao_total_reference(ell, tau, k),
           f"gumbel_rao(total) Bernoulli({ell}) tau={tau}")


# ------------------------------------------------------------------------------ tests: one bit


@pytest.mark.parametrize("ell, tau", DEFAULT)
def test_rebar_bernoulli_moments(ell, tau):
    _rebar(ell, tau)


@pytest.mark.slow
@pytest.mark.parametrize("ell, tau", FULL)
def test_rebar_bernoulli_moments_full_grid(ell, tau):
    _rebar(ell, tau)


@pytest.mark.parametrize("ell, tau", [(0.0, 0.5), (-30.0, 10.0), (50.0, 0.01), (INF, 1.0)])
def test_relax_bernoulli_moments(ell, tau):
    _relax(ell, tau)


@pytest.mark.slow
@pytest.mark.parametrize("ell, tau", FULL)
def test_relax_bernoulli_moments_full_grid(ell, tau):
    _relax(ell, tau)


@pytest.mark.parametrize("ell, tau", DEFAULT)
def test_gumbel_rao_total_bernoulli_moments(ell, tau):
    _gumbel_rao_total(ell, tau)


@pytest.mark.slow
@pytest.mark.parametrize("ell, tau", FULL)
def test_gumbel_rao_total_bernoulli_moments_full_grid(ell, tau):
    _gumbel_rao_total(ell, tau)


def test_worst_errors_table():
    """Prints the worst relative errors of the cases run in this session (for the module docstring)."""
    for key, value in sorted(WORST.items()):
        print(key, f"{value:.1e}")


# ------------------------------------------------------------------------------ the latent terms are the estimator


def _latent_case(name, dist):
    spec = refgrad.ESTIMATORS[name]
    opts = {"rebar": {"tau": 0.3, "eta": np.linspace(0.5, 1.2, int(np.prod(dist.param_shape))).reshape(
                dist.param_shape)},
            "relax": {"surrogate": RelaxSurrogate(tuple(dist.event_shape), hidden=3, eta=0.8, tau=0.4, rng=1)},
            "gumbel_rao": {"tau": 0.3, "k": 1, "derivative": "total"}}[name]
    return spec, opts, spec.check_options(dist, dict(spec.defaults, **opts))


DISTS = [Bernoulli([0.7, -1.2]), Categorical([[0.3, -0.4, 1.1]]), Categorical([[INF, INF, 0.0], [0.2, -INF, 1.0]]),
         Bernoulli([INF, -2.0])]


@pytest.mark.parametrize("name", ["rebar", "relax", "gumbel_rao"])
@pytest.mark.parametrize("dist", DISTS, ids=["bits", "cat", "cat-inf", "bits-inf"])
def test_latent_terms_agree_with_compute(name, dist):
    """Σ terms(z, z̃) + f(b) s on the noise of ``compute`` is ``compute``'s estimate; the mean integrand at one
    latent is the sum of the terms there."""
    from refgrad.estimators import _latent
    from refgrad.estimators import rebar as R
    from refgrad.estimators.relaxed import latent_form

    f = SquaredDistance(T)
    spec, opts, full = _latent_case(name, dist)
    noise = spec.draw_noise(dist, 400, rng=3, **opts)
    got = refgrad.estimate(name, dist, f, noise=noise, **opts)
    parts, ldist, mean_fn = latent_form(name, dist, full)
    u = noise["u"]
    b = dist.from_uniforms(u)
    z = _latent.latent(dist, u)
    v = noise["v"][:, 0] if name == "gumbel_rao" else noise["v"]
    zt = R._Conditional(dist, b, v).z
    if name == "gumbel_rao":
        total = parts[0][0](dist, f, zt, b)
    else:
        const = R._bcast(f.value(b), len(dist.param_shape)) * dist.score(b)
        total = const + parts[0][0](dist, f, z, b) + parts[1][0](dist, f, zt, b)
        at_one = const + parts[0][0](dist, f, z, b) + parts[1][0](dist, f, z, b)
        np.testing.assert_allclose(mean_fn(dist, f, z, b), at_one, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(total, got, rtol=1e-11, atol=1e-13)


def test_fourth_moment_over_the_latent_agrees_with_the_uniforms():
    """At a moderate logit the uniforms' tanh-sinh quadrature is accurate: the latent fourth central moment
    (sum of independent terms given b) agrees with it."""
    from refgrad._moments.engine import _moments_by_integration
    from refgrad._moments.fourth import fourth_central_moments

    for name, ell, opts in (("rebar", 1.5, {"tau": 0.4, "eta": 0.9}), ("rebar", -4.0, {"tau": 2.0, "eta": 1.0}),
                            ("gumbel_rao", 1.5, {"tau": 0.4, "k": 1, "derivative": "total"})):
        dist, ff = Bernoulli(np.array([ell])), SquaredDistance(np.array([0.2]))
        spec = refgrad.ESTIMATORS[name]
        full = spec.check_options(dist, dict(spec.defaults, **opts))
        m = exact.moments(name, dist, ff, **opts)
        m4, how = fourth_central_moments(spec, dist, ff, full, m)
        assert how == "exact (quadrature over the latent)"
        mu = m.mean.reshape(1, -1)
        acc, _ = _moments_by_integration(
            spec, dist, ff, full, lambda noise: ((spec.compute(dist, ff, noise, **full).reshape(len(noise["u"]), -1)
                                                  - mu) ** 2), "quadrature", 6)
        np.testing.assert_allclose(m4.ravel(), np.diag(acc.s2), rtol=1e-8)


# ------------------------------------------------------------------------------ categorical rows


@pytest.mark.parametrize("row, tau", [([20.0, 0.0, -20.0], 10.0), ([8.0, 0.0, 1.0], 10.0), ([0.0, -INF, 8.0], 0.1),
                                      ([INF, INF, 0.0], 0.5), ([20.0, 0.0, -20.0], 0.01)])
def test_rebar_categorical_mean_is_the_exact_gradient(row, tau):
    """REBAR is unbiased: its mean over the latent equals the gradient by enumeration (relative 1e-10 per
    coordinate; a coordinate whose gradient is 0 within 1e-10 of the row's largest).  Not an mpmath check of
    the variance (a 2-D mpmath integral per term and sample value; not done here)."""
    d, f = Categorical([row]), SquaredDistance(np.array([[0.2, 0.5, 0.3]]))
    m = exact.moments("rebar", d, f, tau=tau)
    g = exact.gradient(d, f)
    scale = np.max(np.abs(g))
    assert np.all(np.abs(m.mean - g) <= RTOL * np.maximum(np.abs(g), scale * 1e-300)), (m.mean, g)
    assert np.all(np.isfinite(m.cov)) and np.all(m.variance >= 0)


@pytest.mark.parametrize("row", [[30.0, 0.0, -30.0], [50.0, 0.0, -50.0]])
def test_rebar_categorical_refused_beyond_the_shown_spread(row):
    """Beyond a finite-logit spread of 40 the latent form's mean was not accurate ((50, 0, −50), τ = 10: the dominant
    coordinate 7 % off; (30, 0, −30): 1.6e-8): refused with the range, never a wrong number."""
    from refgrad.estimators.relaxed import CATEGORICAL_SPREAD_LIMIT

    assert CATEGORICAL_SPREAD_LIMIT == 40.0
    with pytest.raises(ValueError, match="spread of the finite logits in a row of"):
        exact.moments("rebar", Categorical([row]), SquaredDistance(np.array([[0.2, 0.5, 0.3]])), tau=10.0)
