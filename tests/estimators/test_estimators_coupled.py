"""Stick-breaking DisARM estimators (plain, Rao-Blackwellised, importance-weighted): exact moments,
a literal twin with finite-difference Jacobians, the K = 2 reduction to DisARM, the variance ordering,
noise/rng agreement, cost, Monte Carlo unbiasedness and mutation tests.

* Exact checks integrate the piecewise-constant estimates over the d (K − 1) uniforms
  (``exact.moments``, method "piecewise") and compare the mean with ``exact.gradient`` to 1e-12.
* Monte Carlo checks use ``refgrad.testing.assert_unbiased`` / ``assert_biased`` at alpha = 1e-3,
  seed 3, n = 4000 (calibration of those tests: see refgrad.testing).
"""
import numpy as np
import pytest
from scipy import special

import refgrad.estimators.coupled as coupled
from estimator_checks import central_fd
from refgrad import exact, testing
from refgrad.distributions import Bernoulli, Categorical
from refgrad.estimators._base import ESTIMATORS, estimate
from refgrad.objectives import FunctionObjective, Table

NAMES = ["disarm_stick_breaking", "disarm_stick_breaking_rb", "disarm_stick_breaking_iw"]


def problems():
    rng = np.random.default_rng(7)
    return {
        "k3": (Categorical(np.array([[1.5, 0.2, -0.4]])), Table(np.array([0.0, 1.0, 3.0]))),
        "k4": (Categorical(np.array([[0.3, 1.2, -0.5, 0.8]])), Table(rng.normal(size=4))),
        "2x3": (Categorical(np.array([[0.3, -0.5, 1.0], [2.0, 0.0, -1.0]])), Table(rng.normal(size=(3, 3)))),
        "2x4": (Categorical(np.array([[1.5, 0.2, -0.4, -1.0], [0.3, -0.5, 1.0, 0.0]])),
                Table(np.random.default_rng(11).normal(size=(4, 4)) ** 2)),
        "inf": (Categorical(np.array([[0.5, -np.inf, 0.1, 2.0], [1.0, 0.0, -2.0, -np.inf]])),
                Table(rng.normal(size=(4, 4)))),
    }


# ---------------------------------------------------------------- independent twin


def stick_logits(logits):
    """η_j = ℓ_j − log Σ_{m>j} exp ℓ_m, j = 0 … K − 2 (finite logits only)."""
    return np.array([logits[j] - special.logsumexp(logits[j + 1:]) for j in range(logits.size - 1)])


def twin(form, logits, f, u):
    """One estimate from one (d, K − 1) block of uniforms, by loops; ∂η/∂ℓ by central differences."""
    d, K = logits.shape
    order = [np.argsort(special.softmax(logits[v]), kind="stable") if form == 2 else np.arange(K) for v in range(d)]
    cats, bits = np.zeros((2, d), int), np.zeros((2, d, K - 1))
    for v in range(d):
        sig = special.expit(stick_logits(logits[v][order[v]]))
        for chain in range(2):
            bits[chain, v] = (u[v] > 1 - sig) if chain == 0 else (u[v] < sig)
            hit = np.flatnonzero(bits[chain, v])
            cats[chain, v] = order[v][hit[0] if hit.size else K - 1]
    value = [float(f.value(np.eye(K)[cats[c]][None])[0]) for c in range(2)]
    delta = value[0] - value[1]
    g = np.zeros((d, K))
    for v in range(d):
        lv = logits[v][order[v]]
        p = special.softmax(lv)
        sig = special.expit(stick_logits(lv))
        if form == 2:  # ½ Δ (e_a − e_b) p_a p_b / q_c(a, b), q_c as the unsimplified product of stick events
            a, b = (np.flatnonzero(order[v] == cats[c, v])[0] for c in range(2))
            if a != b:
                m, M = min(a, b), max(a, b)
                qc = np.prod(np.maximum(0, 1 - 2 * sig[:m])) * min(sig[m], 1 - sig[m]) * p[M] / p[m + 1:].sum()
                g[v, order[v][a]] += 0.5 * delta * p[a] * p[b] / qc
                g[v, order[v][b]] -= 0.5 * delta * p[a] * p[b] / qc
            continue
        jac = central_fd(stick_logits, lv, h=1e-6)  # (K − 1, K)
        stopped = [np.cumsum(bits[c, v]) - bits[c, v] > 0 for c in range(2)]  # stopped before stick j
        gamma = np.zeros(K - 1)
        for j in range(K - 1):
            if bits[0, v, j] != bits[1, v, j] and (form == 0 or not (stopped[0][j] and stopped[1][j])):
                gamma[j] = 0.5 * delta * (-1.0) ** bits[1, v, j] * special.expit(abs(stick_logits(lv)[j]))
        g[v] = gamma @ jac
    return g


# ---------------------------------------------------------------- tests


def test_registered_specs():
    cat = Categorical(np.zeros((3, 5)))
    for name in NAMES:
        spec = ESTIMATORS[name]
        assert spec.unbiased and spec.families == ("categorical",) and spec.defaults == {}
        assert spec.shape_in_noise == "piecewise_constant" and "Dong, Mnih & Tucker" in spec.doc
        assert spec.cost_of(cat) == 2 and spec.noise_layout(cat)[0].shape == (3, 4)
        assert spec.breakpoints(cat)["u"].shape == (3, 4, 2)


@pytest.mark.parametrize("case", ["k3", "k4", "2x3", "2x4", "inf"])
@pytest.mark.parametrize("name", NAMES)
def test_exact_mean_is_the_exact_gradient(name, case):
    dist, f = problems()[case]
    mom = exact.moments(name, dist, f)
    assert mom.method == "piecewise"
    np.testing.assert_allclose(mom.mean, exact.gradient(dist, f), rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", ["k3", "k4", "2x3", "2x4"])
@pytest.mark.parametrize("form", [0, 1, 2])
def test_estimate_is_the_literal_formula(form, case):
    dist, f = problems()[case]
    noise = ESTIMATORS[NAMES[form]].draw_noise(dist, 12, rng=5)
    g = estimate(NAMES[form], dist, f, noise=noise)
    for row in range(12):
        np.testing.assert_allclose(g[row], twin(form, dist.logits, f, noise["u"][row]), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_two_categories_is_disarm(name):
    # one stick: DisARM on Bernoulli(ℓ_s − ℓ_o), bit 1 <-> the stick's category s (s = 0; for the IW form
    # s is the less probable category, so rows 0 and 2 swap there)
    logits = np.array([[0.7, -0.4], [-2.0, 1.0], [0.0, 0.0], [1.5, 0.3]])
    first = np.zeros(4, int)
    if name == NAMES[2]:
        first = (logits[:, 0] > logits[:, 1]).astype(int)
    rows = np.arange(4)
    table = np.random.default_rng(2).normal(size=(2, 2, 2, 2))
    cat, bern = Categorical(logits), Bernoulli(logits[rows, first] - logits[rows, 1 - first])
    f_cat = FunctionObjective(lambda z: table[tuple(z[:, :, 1].astype(int).T)])
    f_bern = FunctionObjective(lambda z: table[tuple(np.where(z == 1.0, first, 1 - first).T)])
    u = ESTIMATORS["disarm"].draw_noise(bern, 200, rng=4)["u"]
    g_bern = estimate("disarm", bern, f_bern, noise={"u": u})
    g_cat = estimate(name, cat, f_cat, noise={"u": u[:, :, None]})
    assert np.count_nonzero(g_bern) > 200
    np.testing.assert_allclose(g_cat[:, rows, first], g_bern, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(g_cat[:, rows, 1 - first], -g_bern, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("case", ["k4", "2x3", "2x4"])
def test_rao_blackwellised_variance_is_at_most_the_plain_one(case):
    dist, f = problems()[case]
    plain = exact.moments(NAMES[0], dist, f).variance
    rb = exact.moments(NAMES[1], dist, f).variance
    assert np.all(rb <= plain + 1e-14)
    if case != "2x3":  # a stick skipped by both chains needs σ(η_0) > ½
        assert np.any(rb < plain - 1e-4)


def test_equal_cost_comparison_in_the_docstring():
    dist, f = problems()["2x4"]
    documented = {NAMES[0]: 1.96259, NAMES[1]: 1.55765, NAMES[2]: 1.46586, "reinforce": 1.38530, "rloo": 1.71252}
    for name, value in documented.items():
        mom = exact.moments(name, dist, f)
        assert abs(np.sum(mom.variance_per_cost) - value) < 1e-5, name
    assert "1.96259" in ESTIMATORS[NAMES[0]].doc and "1.71252" in ESTIMATORS[NAMES[0]].doc


def test_given_order_biases_the_importance_weighted_form(monkeypatch):
    # the docstring's numbers: sticks in the given order leave pairs out of the coupling's support
    dist, f = problems()["k3"]
    monkeypatch.setattr(coupled, "stick_order", lambda dist, form: np.arange(dist.K)[None].repeat(dist.d, 0))
    mean = exact.moments(NAMES[2], dist, f).mean
    np.testing.assert_allclose(mean, [[-0.35663, 0.13476, 0.22187]], atol=1e-5)
    np.testing.assert_allclose(exact.gradient(dist, f), [[-0.35663, 0.09445, 0.26218]], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_noise_equals_rng(name):
    dist, f = problems()["2x3"]
    noise = ESTIMATORS[name].draw_noise(dist, 30, rng=8)
    np.testing.assert_array_equal(estimate(name, dist, f, n=30, rng=8), estimate(name, dist, f, noise=noise))


@pytest.mark.parametrize("name", NAMES)
def test_cost_counts_the_evaluations_of_f(name):
    dist, f = problems()["2x3"]
    rows = []
    counted = FunctionObjective(lambda z: (rows.append(z.shape[0]), f.value(z))[1])
    estimate(name, dist, counted, n=7, rng=1)
    assert sum(rows) == 7 * ESTIMATORS[name].cost_of(dist)


@pytest.mark.parametrize("name", NAMES)
def test_monte_carlo_unbiased(name):
    dist, f = problems()["2x4"]
    testing.assert_unbiased(name, dist, f, n=20000, rng=3, alpha=1e-3)


def _reach_of_chain_one(real):
    def mutated(u, uc, hi, lo):
        c1, c2, reach, k1, k2 = real(u, uc, hi, lo)
        stopped = (np.cumsum(c1, axis=-1) - c1) > 0
        return c1, c2, np.where(stopped, 0.0, 1.0), k1, k2
    return mutated


def _half_chain_rule(real):
    def mutated(dist, order=None):
        hi, lo, inv_tail, p = real(dist, order)
        return hi, lo, 0.5 * inv_tail, p
    return mutated


def _heavier_weight(real):
    def mutated(fdiff, k1, k2, hi, lo, order):
        return real(fdiff, k1, k2, np.sqrt(hi), lo, order)
    return mutated


@pytest.mark.filterwarnings("ignore::refgrad.testing.HeavyTailWarning")  # a mutant's zero coordinates
@pytest.mark.filterwarnings("ignore::refgrad.testing.InconclusiveWarning")  # a mutant's constant directions
@pytest.mark.parametrize("name, target, mutation", [
    (NAMES[0], "stick_parameters", _half_chain_rule),  # halve the −p_k Σ γ_j / T_{j+1} term
    (NAMES[1], "stick_pairs", _reach_of_chain_one),  # keep only the sticks chain 1 reaches
    (NAMES[2], "_importance_combine", _heavier_weight),  # a wrong stick probability in the weight
])
def test_mutations_are_caught(monkeypatch, name, target, mutation):
    dist, f = problems()["2x4"]
    monkeypatch.setattr(coupled, target, mutation(getattr(coupled, target)))
    bias = np.abs(exact.moments(name, dist, f).mean - exact.gradient(dist, f)).max()
    assert bias > 1e-3
    testing.assert_biased(name, dist, f, n=20000, rng=3, alpha=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs(name):
    dist, f = problems()["k3"]
    with pytest.raises(ValueError, match="unknown option"):
        estimate(name, dist, f, n=2, rng=0, m=2)
    with pytest.raises(ValueError, match="family 'bernoulli'"):
        estimate(name, Bernoulli(np.zeros(2)), Table(np.zeros((2, 2))), n=2, rng=0)
    with pytest.raises(ValueError, match=r"noise\['u'\] must have shape"):
        estimate(name, dist, f, noise={"u": np.full((3, 3), 0.5)})
