"""Accuracy at the extremes against mpmath (50 digits).

Log-probabilities, scores, enumeration weights, the exact expectation and every coordinate of the exact
gradient, for the three discrete families, at parameters ±10, ±30, ±37, ±40, ±100, ±700 and ±inf (alone and
mixed, d up to 6), with objectives whose value is large beside one coordinate's own contribution.

The references below are written from the definitions, by direct enumeration in mpmath; where a definition
would cancel even at 50 digits (``1 − σ(ℓ)`` at ℓ = 700 is ``1 − (1 − 1e-304)``), the reference uses the
mathematically identical non-cancelling form (``σ(−ℓ)``, ``log1p``, the sum of the other probabilities), as
noted at each place.  The gradient reference is the score-function sum ``Σ_b q(b) f(b) ∇ log q(b)``, which
is independent of the difference formula that :func:`refgrad.exact.gradient` uses; at 50 digits its
cancellation (up to ~1e14 in these problems) leaves more than 30 correct digits.

Tolerances: relative ``1e-12`` wherever the reference is a normal double.  For the gradient the bound is
``1e-12 · S_j`` with ``S_j = Σ_b q(b) |c_j D_j(b)|`` the sum of the absolute terms of the difference formula
(see :func:`refgrad.exact.gradient`); ``S_j = |∂_j L|`` whenever the differences ``D_j`` have one sign --
always so for the bit families with the objectives used here (asserted), so there the test is strictly
relative.  Where the reference is below the smallest normal double, an absolute error up to that number
is allowed.
"""
import itertools

import mpmath
import numpy as np
import pytest

from refgrad import exact
from refgrad.distributions import Bernoulli, Categorical, GaussianThreshold
from refgrad.objectives import FunctionObjective, Linear, SquaredDistance, Table

EPS = np.finfo(np.float64).eps
TINY = np.finfo(np.float64).tiny
RTOL = 1e-12
INF = np.inf
DPS = 50

BIT_FAMILIES = {"bernoulli": Bernoulli, "gaussian_threshold": GaussianThreshold}

EXTREMES = (10.0, 30.0, 37.0, 40.0, 100.0, 700.0, INF)
BIT_PARAMS = [[s * v] for v in EXTREMES for s in (1.0, -1.0)] + [
    [40.0, -40.0],
    [10.0, -37.0],
    [37.0, -10.0, 100.0],
    [700.0, -700.0, 30.0, -30.0],
    [INF, -37.0, 10.0, -100.0, 40.0],
    [10.0, -30.0, 37.0, -40.0, 100.0, -700.0],
    [-INF, 30.0, -10.0, INF, 700.0, -37.0],
]
CAT_PARAMS = [
    [[50.0, 0.0]],
    [[-40.0, 0.0]],
    [[0.0, 37.0]],
    [[40.0, 0.0, -40.0]],
    [[700.0, -700.0, 0.0]],
    [[INF, 0.0, -INF]],
    [[INF, INF, -30.0]],
    [[-INF, 10.0, -10.0]],
    [[10.0, -30.0], [37.0, -37.0], [-100.0, 100.0]],
    [[-INF, 30.0, -10.0], [700.0, 40.0, -40.0]],
    [[v, 0.0] for v in (10.0, -30.0, 37.0, -40.0, 100.0, -700.0)],
    [[10.0, -10.0, 30.0, -30.0], [INF, 0.0, 40.0, -INF], [-100.0, 100.0, 0.0, 37.0]],
    [[10.0, -10.0, 0.0], [30.0, -30.0, 0.0], [37.0, -37.0, 1.0], [40.0, -40.0, -1.0], [100.0, -100.0, 2.0],
     [700.0, -700.0, -INF]],
]


@pytest.fixture(autouse=True)
def _fifty_digits():
    with mpmath.workdps(DPS):
        yield


def mp(x):
    """The double ``x`` as an mpf (exactly; ±inf kept)."""
    return mpmath.mpf(float(x))


# ------------------------------------------------------------------------------ references, per variable


def ref_log_ncdf(y):
    """log Φ(y); for y > 0 as log1p(−Φ(−y)) (log of 1 − 1e-200 would round to 0 at 50 digits)."""
    if y == mpmath.inf:
        return mpmath.mpf(0)
    if y == -mpmath.inf:
        return -mpmath.inf
    return mpmath.log1p(-mpmath.ncdf(-y)) if y > 0 else mpmath.log(mpmath.ncdf(y))


def ref_bit_log_probs(family, x):
    """(log P(b = 1), log P(b = 0)) of one bit with parameter ``x``."""
    x = mp(x)
    if family == "bernoulli":
        if mpmath.isinf(x):
            return (mpmath.mpf(0), -mpmath.inf) if x > 0 else (-mpmath.inf, mpmath.mpf(0))
        return -mpmath.log1p(mpmath.exp(-x)), -mpmath.log1p(mpmath.exp(x))
    return ref_log_ncdf(x), ref_log_ncdf(-x)


def ref_bit_score(family, x, bit):
    """∂ log P(b) / ∂x: Bernoulli b − σ(x) written σ(−x) at b = 1; threshold ±φ/Φ (±inf at impossible bits)."""
    log_p1, log_p0 = ref_bit_log_probs(family, x)
    x = mp(x)
    if family == "bernoulli":
        return mpmath.exp(log_p0) if bit else -mpmath.exp(log_p1)
    if bit:
        if mpmath.isinf(x):
            return mpmath.mpf(0) if x > 0 else mpmath.inf
        return mpmath.npdf(x) / mpmath.ncdf(x)
    if mpmath.isinf(x):
        return -mpmath.inf if x > 0 else mpmath.mpf(0)
    return -mpmath.npdf(x) / mpmath.ncdf(-x)


def ref_bit_weight(family, x):
    """dP(b = 1)/dx: σ(x)σ(−x) or φ(x)."""
    log_p1, log_p0 = ref_bit_log_probs(family, x)
    if family == "bernoulli":
        return mpmath.exp(log_p1 + log_p0)
    return mpmath.npdf(mp(x))


def ref_row_log_probs(row):
    """log softmax(row)_k as −log1p(Σ_{j≠k} exp(ℓ_j − ℓ_k)); +inf entries share the mass equally."""
    row = [mp(v) for v in row]
    plus = [v == mpmath.inf for v in row]
    if any(plus):
        count = sum(plus)
        return [-mpmath.log(count) if p else -mpmath.inf for p in plus]
    out = []
    for k, lk in enumerate(row):
        if lk == -mpmath.inf:
            out.append(-mpmath.inf)
            continue
        rest = mpmath.fsum(mpmath.exp(lj - lk) for j, lj in enumerate(row) if j != k)
        out.append(-mpmath.log1p(rest))
    return out


# ------------------------------------------------------------------------------ references, per problem


class Reference:
    """log q, q, score and f on every configuration of a product distribution, at 50 digits."""

    def __init__(self, family, params, f_mp):
        self.family = family
        self.params = np.asarray(params, dtype=float)
        self.f_mp = f_mp
        if family == "categorical":
            self.d, self.K = self.params.shape
            self.logp = [ref_row_log_probs(row) for row in self.params]
        else:
            self.d, self.K = self.params.shape[0], 2
            # logp[i][digit]: digit 1 is b_i = 1
            self.logp = [list(reversed(ref_bit_log_probs(family, x))) for x in self.params]
        self.p = [[mpmath.exp(v) for v in row] for row in self.logp]
        self.configs = list(itertools.product(range(self.K), repeat=self.d))
        self.f = {c: f_mp(c) for c in self.configs}

    def log_q(self, c):
        return mpmath.fsum(self.logp[i][c[i]] for i in range(self.d))

    def q(self, c):
        return mpmath.fprod(self.p[i][c[i]] for i in range(self.d))

    def score(self, c):
        """Flat list over the parameters."""
        if self.family != "categorical":
            return [ref_bit_score(self.family, x, c[i]) for i, x in enumerate(self.params)]
        out = []
        for i in range(self.d):
            for k in range(self.K):
                if k == c[i]:  # 1 − p_ik, as the sum of the other probabilities
                    out.append(mpmath.fsum(self.p[i][j] for j in range(self.K) if j != k))
                else:
                    out.append(-self.p[i][k])
        return out

    def possible(self):
        return [c for c in self.configs if self.q(c) > 0]

    def expectation(self):
        """(Σ q f, Σ q |f|)."""
        terms = [self.q(c) * self.f[c] for c in self.possible()]
        return mpmath.fsum(terms), mpmath.fsum(abs(t) for t in terms)

    def gradient(self):
        """Score-function sum Σ_b q(b) f(b) ∂ log q(b), flat; and its own rounding bound at DPS digits.

        The bound ``10**(5 − DPS) Σ_b q |f s|`` matters only where the truth is (near) 0, e.g. where ``f`` does
        not depend on a variable at all (SquaredDistance(0.45) on one-hot rows is constant).
        """
        sums = [[] for _ in range(self.d * (self.K if self.family == "categorical" else 1))]
        for c in self.possible():
            qf = self.q(c) * self.f[c]
            for j, s in enumerate(self.score(c)):
                sums[j].append(qf * s)
        noise = mpmath.mpf(10) ** (5 - DPS)
        return [mpmath.fsum(t) for t in sums], [noise * mpmath.fsum(abs(x) for x in t) for t in sums]

    def abs_terms(self):
        """S_j = Σ_b q(b) |c_j D_j(b)| of the difference formula (see the module docstring), flat."""
        sums = []
        possible = self.possible()
        for i in range(self.d):
            if self.family == "categorical":
                for k in range(self.K):
                    total = mpmath.fsum(
                        self.q(c) * abs(self.f[c[:i] + (k,) + c[i + 1:]] - self.f[c]) for c in possible
                    )
                    sums.append(self.p[i][k] * total)
            else:
                total = mpmath.fsum(
                    self.q(c) * abs(self.f[c[:i] + (1,) + c[i + 1:]] - self.f[c[:i] + (0,) + c[i + 1:]])
                    for c in possible
                )
                sums.append(ref_bit_weight(self.family, self.params[i]) * total)
        return sums


# ------------------------------------------------------------------------------ objectives and their twins


def bit_objectives(d):
    """name -> (objective, mpmath twin on the bit tuple)."""
    far_first = np.array([0.4999999] + [-1e3] * (d - 1))
    far_last = np.array([-1e3] * (d - 1) + [0.4999999])
    weights = np.array([1e8, 1.0, 1e-6, -3.0, 1e3, -1e-3])[:d]
    coef = 2.0 ** (-3.0 * np.arange(d))
    table = np.empty((2,) * d)
    for c in itertools.product(range(2), repeat=d):
        # increasing in every bit; a large offset beside contributions down to 2**-15
        table[c] = 1e6 + float(np.dot(coef, c)) + 0.25 * float(np.prod(c))
    a = 0.5 ** np.arange(d)

    def poly(z):
        return 2.0 + z @ a + 0.5 * z[:, 0] * z[:, -1]

    def sq_mp(t):
        return lambda c: mpmath.fsum((mp(b) - mp(ti)) ** 2 for b, ti in zip(c, np.broadcast_to(t, (d,))))

    return {
        "sq045": (SquaredDistance(0.45), sq_mp(0.45)),
        "sq_far_first": (SquaredDistance(far_first), sq_mp(far_first)),
        "sq_far_last": (SquaredDistance(far_last), sq_mp(far_last)),
        "linear": (Linear(weights), lambda c: mpmath.fsum(mp(w) * b for w, b in zip(weights, c))),
        "table": (Table(table), lambda c: mp(table[c])),
        "function": (
            FunctionObjective(poly, name="poly"),
            lambda c: 2 + mpmath.fsum(mp(ai) * b for ai, b in zip(a, c)) + mpmath.mpf(0.5) * c[0] * c[-1],
        ),
    }


def cat_objectives(d, K):
    """name -> (objective, mpmath twin on the tuple of category indices)."""
    far = np.full((d, K), -1e3)
    far[0, :2] = [0.4999999, 0.5]
    weights = np.array([1e8, 1.0, 1e-6, 1e3])[:K] * (10.0 ** -np.arange(d))[:, None]
    coef = (np.arange(K) + 1.0) ** 2 * (2.0 ** -np.arange(d))[:, None]
    table = np.empty((K,) * d)
    for c in itertools.product(range(K), repeat=d):
        table[c] = 1e6 + sum(coef[i, ci] for i, ci in enumerate(c)) + 0.25 * float(np.prod(c))

    def poly(z):
        return 1.0 + np.einsum("nik,ik->n", z, coef) + z[:, 0, -1] * z[:, -1, -1]  # increasing in each index

    def sq_mp(t):
        t = np.broadcast_to(t, (d, K))
        return lambda c: mpmath.fsum(
            (mpmath.mpf(int(k == c[i])) - mp(t[i, k])) ** 2 for i in range(d) for k in range(K)
        )

    return {
        "sq045": (SquaredDistance(0.45), sq_mp(0.45)),
        "sq_far": (SquaredDistance(far), sq_mp(far)),
        "linear": (Linear(weights), lambda c: mpmath.fsum(mp(weights[i, ci]) for i, ci in enumerate(c))),
        "table": (Table(table), lambda c: mp(table[c])),
        "function": (
            FunctionObjective(poly, name="poly"),
            lambda c: (1 + mpmath.fsum(mp(coef[i, ci]) for i, ci in enumerate(c))
                       + int(c[0] == K - 1) * int(c[-1] == K - 1)),
        ),
    }


# ------------------------------------------------------------------------------ comparison


def assert_matches(got, ref, bound=None, what=""):
    """|got − ref| ≤ RTOL |ref| (or ≤ bound), entrywise; infinities must match exactly."""
    got = np.asarray(got, dtype=float).ravel()
    assert len(got) == len(ref), what
    for j, (g, r) in enumerate(zip(got, ref)):
        if mpmath.isinf(r):
            assert g == float(r), f"{what}[{j}]: got {g!r}, reference {r}"
            continue
        tol = RTOL * abs(r) if bound is None else mpmath.mpf(bound[j])
        if abs(r) < TINY:
            tol = max(tol, mpmath.mpf(TINY))
        err = abs(mp(g) - r)
        assert err <= tol, f"{what}[{j}]: got {g!r}, reference {mpmath.nstr(r, 20)}, error {mpmath.nstr(err, 3)}"


def bit_case_ids():
    return [str(p) for p in BIT_PARAMS]


def cat_case_ids():
    return [f"cat{i}" for i in range(len(CAT_PARAMS))]


# ------------------------------------------------------------------------------ log-probabilities and scores


@pytest.mark.parametrize("family", sorted(BIT_FAMILIES))
@pytest.mark.parametrize("params", BIT_PARAMS, ids=bit_case_ids())
def test_bit_log_prob_score_and_weights(family, params):
    dist = BIT_FAMILIES[family](params)
    ref = Reference(family, params, lambda c: mpmath.mpf(0))
    configs = np.array(ref.configs, dtype=float)
    assert_matches(dist.log_prob(configs), [ref.log_q(c) for c in ref.configs], what="log_prob")
    for c, row in zip(ref.configs, dist.score(configs)):
        assert_matches(row, ref.score(c), what=f"score at {c}")
    enumerated, probs = dist.enumerate()
    np.testing.assert_array_equal(enumerated, configs)
    assert_matches(probs, [ref.q(c) for c in ref.configs], what="enumeration weights")
    assert_matches(dist.probs, [ref.p[i][1] for i in range(ref.d)], what="probs")


@pytest.mark.parametrize("logits", CAT_PARAMS, ids=cat_case_ids())
def test_categorical_log_probs_log_prob_score_and_weights(logits):
    dist = Categorical(logits)
    ref = Reference("categorical", logits, lambda c: mpmath.mpf(0))
    assert_matches(dist.log_probs, [v for row in ref.logp for v in row], what="log_probs")
    assert_matches(dist.probs, [v for row in ref.p for v in row], what="probs")
    configs, probs = dist.enumerate()
    assert_matches(probs, [ref.q(c) for c in ref.configs], what="enumeration weights")
    assert_matches(dist.log_prob(configs), [ref.log_q(c) for c in ref.configs], what="log_prob")
    for c, row in zip(ref.configs, dist.score(configs)):
        assert_matches(row, ref.score(c), what=f"score at {c}")


def test_categorical_log_probs_of_the_issue():
    """The case reported in the issue: log_probs of [[50, 0]] gave [0, −50]."""
    lp = Categorical([[50.0, 0.0]]).log_probs
    np.testing.assert_allclose(lp, [[-1.9287498479639178e-22, -50.0]], rtol=1e-15)
    assert lp[0, 0] != 0.0


def test_bernoulli_score_of_the_issue():
    """σ(−ℓ) at b = 1 (was 1 − fl(σ(ℓ)): 0 from ℓ ≈ 37 on)."""
    s = Bernoulli([40.0, -40.0]).score(np.array([[1.0, 0.0]]))
    np.testing.assert_allclose(s, [[4.248354255291589e-18, -4.248354255291589e-18]], rtol=1e-15)


# ------------------------------------------------------------------------------ expectation and gradient


def bit_problems():
    for family in sorted(BIT_FAMILIES):
        for params in BIT_PARAMS:
            for name in bit_objectives(len(params)):
                yield pytest.param(family, params, name, id=f"{family}-{params}-{name}")


def cat_problems():
    for i, logits in enumerate(CAT_PARAMS):
        d, K = np.shape(logits)
        for name in cat_objectives(d, K):
            if d * K > 12 and name not in ("sq_far", "linear", "table"):
                continue  # the largest support (3**6): three objectives suffice
            yield pytest.param(logits, name, id=f"cat{i}-{name}")


def check_expectation(dist, ref, f):
    value, abs_sum = ref.expectation()
    # documented bound: (d + 3) eps Σ q |f|
    bound = (ref.d + 3) * EPS * abs_sum
    assert_matches([exact.expectation(dist, f)], [value], bound=[bound], what="expectation")


def check_gradient(dist, ref, f, strictly_relative):
    g = exact.gradient(dist, f)
    assert g.shape == dist.param_shape
    truth, noise = ref.gradient()
    sums = ref.abs_terms()
    if strictly_relative:  # one-signed differences: the bound is relative to the coordinate itself
        for t, s, e in zip(truth, sums, noise):
            assert abs(abs(t) - s) <= 2 * e
    assert_matches(g, truth, bound=[RTOL * s + e for s, e in zip(sums, noise)], what="gradient")


@pytest.mark.parametrize("family, params, name", list(bit_problems()))
def test_bit_expectation_and_gradient(family, params, name):
    f, f_mp = bit_objectives(len(params))[name]
    dist = BIT_FAMILIES[family](params)
    ref = Reference(family, params, f_mp)
    check_expectation(dist, ref, f)
    check_gradient(dist, ref, f, strictly_relative=True)


@pytest.mark.parametrize("logits, name", list(cat_problems()))
def test_categorical_expectation_and_gradient(logits, name):
    d, K = np.shape(logits)
    f, f_mp = cat_objectives(d, K)[name]
    dist = Categorical(logits)
    ref = Reference("categorical", logits, f_mp)
    check_expectation(dist, ref, f)
    check_gradient(dist, ref, f, strictly_relative=(K == 2))


@pytest.mark.parametrize(
    "dist, f, expected",
    [
        (Bernoulli([40.0]), SquaredDistance(0.45), [4.248354255291589e-19]),
        (Categorical([[-40.0, 0.0]]), Linear([1.0, 2.0]), [[-4.248354255291589e-18, 4.248354255291589e-18]]),
    ],
)
def test_gradient_cases_of_the_issue(dist, f, expected):
    """Both had the wrong sign (−8.60e-19; the categorical's second coordinate)."""
    np.testing.assert_allclose(exact.gradient(dist, f), expected, rtol=1e-14)


# ------------------------------------------------------------------------------ exact moments' mean


MOMENT_PROBLEMS = (
    [("bernoulli", [s * v]) for v in EXTREMES for s in (1.0, -1.0)]
    + [("gaussian_threshold", [s * v]) for v in (10.0, 30.0, 37.0, INF) for s in (1.0, -1.0)]
    + [("bernoulli", p) for p in ([40.0, -10.0], [30.0, 37.0], [-INF, 100.0], [700.0, -37.0])]
    + [("gaussian_threshold", [30.0, -10.0]), ("categorical", [[40.0, 0.0]]), ("categorical", [[-37.0, 0.0]]),
       ("categorical", [[700.0, 0.0, -700.0]]), ("categorical", [[40.0, 0.0], [-37.0, 10.0]])]
)


def moment_problem(family, params):
    """(dist, f, mpmath twin): moderate objectives, so that the estimator's own rounding (~eps E|ĝ|) is small."""
    if family == "categorical":
        d, K = np.shape(params)
        weights = np.arange(1.0, K + 1.0) * np.ones((d, 1))
        return Categorical(params), Linear(weights), lambda c: mpmath.fsum(mp(weights[i, ci]) for i, ci in enumerate(c))
    d = len(params)
    return BIT_FAMILIES[family](params), SquaredDistance(0.45), bit_objectives(d)["sq045"][1]


@pytest.mark.parametrize("name", ["reinforce", "rloo"])
@pytest.mark.parametrize("family, params", MOMENT_PROBLEMS, ids=[f"{f}-{p}" for f, p in MOMENT_PROBLEMS])
def test_enumeration_moments_mean_at_extremes(name, family, params):
    """E[ĝ] by enumeration equals the mpmath gradient (the scores were 1 − fl(σ(ℓ)) = 0 from ℓ ≈ 37 on)."""
    dist, f, f_mp = moment_problem(family, params)
    ref = Reference(family, params, f_mp)
    truth, noise = ref.gradient()
    mean = exact.moments(name, dist, f).mean
    assert_matches(mean, truth, bound=[RTOL * abs(t) + e for t, e in zip(truth, noise)], what=f"{name} mean")


@pytest.mark.parametrize("family, params", MOMENT_PROBLEMS, ids=[f"{f}-{p}" for f, p in MOMENT_PROBLEMS])
def test_muprop_moments_mean_at_extremes(family, params):
    """MuProp's z̄-centred terms (σ(ℓ)σ(−ℓ), the categorical VJP, b − z̄) keep relative accuracy at large logits."""
    dist, f, f_mp = moment_problem(family, params)
    truth, noise = Reference(family, params, f_mp).gradient()
    mean = exact.moments("muprop", dist, f).mean
    assert_matches(mean, truth, bound=[RTOL * abs(t) + e for t, e in zip(truth, noise)], what="muprop mean")
