"""refgrad.crosscheck.torch: tensor conversion, noise converters matched to torch 2.13.0, per-sample gradients."""
import subprocess
import sys

import numpy as np
import pytest

import refgrad
from refgrad.distributions import Bernoulli, Categorical
from refgrad.objectives import SquaredDistance
from refgrad.relaxations import binary_concrete_sample, concrete_sample, exp_concrete_sample

torch = pytest.importorskip("torch")
import refgrad.crosscheck.torch as ct  # noqa: E402  (after the skip)

F = torch.nn.functional
D = torch.distributions
from torch.distributions.relaxed_bernoulli import LogitRelaxedBernoulli  # noqa: E402  (not re-exported)
from torch.distributions.relaxed_categorical import ExpRelaxedCategorical  # noqa: E402


def _u(seed, shape):
    return refgrad.random.uniform(seed, shape)


def test_core_does_not_import_frameworks():
    code = "import sys, refgrad, refgrad.crosscheck; print(sorted(m for m in ('torch', 'jax') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- conversion


@pytest.mark.parametrize("dtype,expected", [(torch.float32, np.float32), (torch.float64, np.float64),
                                            (torch.float16, np.float32), (torch.bfloat16, np.float32),
                                            (torch.int64, np.int64), (torch.bool, np.bool_)])
def test_to_numpy_dtypes(dtype, expected):
    t = torch.tensor([1.0, 0.0, 3.0]).to(dtype)
    a = ct.to_numpy(t)
    assert a.dtype == expected and a.shape == (3,)
    np.testing.assert_array_equal(a, np.array([1, 0, 3]).astype(expected))


def test_to_numpy_zero_d_requires_grad_nested():
    x = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    y = x * 2
    a = ct.to_numpy(y)
    assert a.shape == () and a.dtype == np.float64 and a == 5.0
    nested = ct.to_numpy({"a": [x, (y, 1.5)], "b": np.float32(2)})
    assert isinstance(nested["a"], list) and isinstance(nested["a"][1], tuple)
    assert nested["a"][1][0] == 5.0 and nested["a"][1][1].shape == () and nested["b"].dtype == np.float32
    a = ct.to_numpy(x)
    a[()] = 7.0  # a copy: the tensor is untouched
    assert x.item() == 2.5


@pytest.mark.parametrize("bad", ["1.5", None, object()])
def test_to_numpy_rejects(bad):
    with pytest.raises(TypeError, match="tensor, an array, a number"):
        ct.to_numpy(bad)


def test_from_numpy():
    a = np.array([0.1, 0.2])
    assert ct.from_numpy(a).dtype == torch.float64
    like = torch.zeros(1, dtype=torch.float32)
    t = ct.from_numpy(a, like=like)
    assert t.dtype == torch.float32 and t.device == like.device
    assert ct.from_numpy(a, dtype=torch.float16).dtype == torch.float16
    with pytest.raises(TypeError, match="like"):
        ct.from_numpy(a, like=np.zeros(1))
    with pytest.raises(TypeError, match="dtype"):
        ct.from_numpy(a, dtype=np.float32)
    with pytest.raises(TypeError, match="a must hold real numbers"):
        ct.from_numpy(["x"])


# ----------------------------------------------------------------------------- exponential noise


def test_exponential_round_trips():
    u = np.concatenate([_u(1, 2000), [2.0**-53, 1 - 2.0**-53, 0.5, 1e-300]])
    e = ct.exponential_from_uniforms(u)
    assert e.dtype == np.float64 and np.all(e > 0) and np.all(np.isfinite(e))
    back = ct.uniforms_from_exponential(e)
    # u -> e -> u: relative error <= (1 + |log u|) eps, <= ~700 eps at u = 1e-300
    assert np.all(np.abs(back - u) <= (2 + np.abs(np.log(u))) * 2.0**-52 * u)
    # e -> u -> e near u -> 1: absolute error about 2**-53 (stated precision)
    small = np.array([1e-15, 1e-10, 1e-7, 1e-3])
    again = ct.exponential_from_uniforms(ct.uniforms_from_exponential(small))
    assert np.all(np.abs(again - small) <= 2.0**-53 + 4 * 2.0**-53 * small)
    assert not np.all(again == small)  # the precision loss is real near u = 1
    t = torch.tensor([0.25, 2.0], dtype=torch.float32)  # tensors accepted, widened exactly
    np.testing.assert_array_equal(ct.uniforms_from_exponential(t), np.exp(-np.array([0.25, 2.0])))


@pytest.mark.parametrize("bad,match", [(0.0, "finite and > 0"), (-1.0, "finite and > 0"), (np.inf, "finite"),
                                       (np.nan, "no NaN"), (1e-17, "rounds to 1"), (800.0, "to 0 for e > 744")])
def test_uniforms_from_exponential_rejects(bad, match):
    with pytest.raises(ValueError, match=match):
        ct.uniforms_from_exponential([1.0, bad])


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5, np.nan])
def test_exponential_from_uniforms_rejects(bad):
    with pytest.raises(ValueError, match=r"strictly inside \(0, 1\)"):
        ct.exponential_from_uniforms([0.5, bad])


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-13), (torch.float32, 2e-6)])
@pytest.mark.parametrize("tau", [0.5, 2.0])
def test_gumbel_softmax_fed_refgrad_noise(dtype, tol, tau):
    logits = np.array([[0.3, -1.2, 2.0, 0.0], [5.0, -5.0, 0.1, 1.0]])
    u = _u(2, (64, 2, 4))
    lg = torch.tensor(logits, dtype=dtype).expand(64, 2, 4)
    with ct.feed_uniforms(u) as feed:
        y = F.gumbel_softmax(lg, tau=tau)
    assert feed.calls == [(64, 2, 4)] and feed.remaining == 0
    # bitwise: torch's own transform of the fed exponentials
    e = torch.tensor(ct.exponential_from_uniforms(u), dtype=dtype)
    assert torch.equal(y, ((lg + -e.log()) / tau).softmax(-1))
    np.testing.assert_allclose(ct.to_numpy(y), concrete_sample(logits, tau, u), rtol=0, atol=tol)
    assert "exponential_" not in torch.Tensor.__dict__  # restored


def test_gumbel_softmax_hard_and_backward_match_estimators():
    logits = np.array([[0.3, -1.2, 2.0], [1.0, 0.0, -0.5]])
    t, tau, n = 0.3, 0.7, 40
    u = _u(3, (n, 2, 3))
    dist, f = Categorical(logits), SquaredDistance(t)
    lg = torch.tensor(logits, requires_grad=True)
    for hard, name in ((False, "gumbel_softmax"), (True, "straight_through")):
        def surrogate(i, hard=hard):
            with ct.feed_uniforms(u[i]):
                y = F.gumbel_softmax(lg, tau=tau, hard=hard)
            return ((y - t) ** 2).sum()

        grads = ct.per_sample_gradients(surrogate, lg, n=n)
        expected = refgrad.estimate(name, dist, f, noise={"u": u}, tau=tau)
        assert grads.shape == (n, 2, 3)
        np.testing.assert_allclose(grads, expected, rtol=1e-10, atol=1e-12)
    with ct.feed_uniforms(u):
        y = F.gumbel_softmax(torch.tensor(logits).expand(n, 2, 3), tau=tau, hard=True)
    b = refgrad.random.categorical_gumbel_max(logits, u)
    np.testing.assert_array_equal(ct.to_numpy(y).argmax(-1), b)


def test_feed_errors_and_restore():
    with pytest.raises(ValueError, match="needs 6 more"):
        with ct.feed_uniforms(_u(4, 5)):
            F.gumbel_softmax(torch.zeros(2, 3), tau=1.0)
    assert "exponential_" not in torch.Tensor.__dict__
    x = torch.empty(3).exponential_()  # the real sampler again
    assert torch.all(x > 0)
    with ct.feed_exponential([1.0, 2.0]):
        v = torch.empty(2, dtype=torch.float64).exponential_(2.0)
    np.testing.assert_array_equal(v.numpy(), [0.5, 1.0])


# ----------------------------------------------------------------------------- rsample's uniforms


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rsample_fed_refgrad_uniforms(dtype):
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    n, tau = 50, 0.6
    bits = np.array([0.4, -2.0, 3.0])
    cat = np.array([[0.4, -2.0, 3.0], [0.0, 0.0, 1.0]])
    ub, uc = _u(5, (n, 3)), _u(6, (n, 2, 3))
    temp = torch.tensor(tau, dtype=dtype)
    cases = [
        (LogitRelaxedBernoulli(temp, logits=torch.tensor(bits, dtype=dtype)), ub,
         lambda v: (bits + np.log(v) - np.log1p(-v)) / tau),
        (D.RelaxedBernoulli(temp, logits=torch.tensor(bits, dtype=dtype)), ub,
         lambda v: binary_concrete_sample(bits, tau, v)),
        (ExpRelaxedCategorical(temp, logits=torch.tensor(cat, dtype=dtype)), uc,
         lambda v: exp_concrete_sample(cat, tau, v)),
        (D.RelaxedOneHotCategorical(temp, logits=torch.tensor(cat, dtype=dtype)), uc,
         lambda v: concrete_sample(cat, tau, v)),
    ]
    for dist, u, reference in cases:
        with ct.feed_rand(u) as feed:
            x = dist.rsample((n,))
        assert feed.remaining == 0 and feed.calls == [u.shape]
        used, report = ct.rsample_uniforms(u, dtype)
        assert report["clamped"] == 0
        np.testing.assert_allclose(ct.to_numpy(x), reference(used), rtol=tol, atol=tol)


def test_rsample_uniforms_clamp_report():
    u = np.array([1e-9, 0.5, 1 - 1e-9, 1 - 2.0**-53, 2.0**-53])
    v32, r32 = ct.rsample_uniforms(u, torch.float32)
    eps = float(torch.finfo(torch.float32).eps)
    assert v32.dtype == np.float64
    np.testing.assert_array_equal(v32, [eps, 0.5, np.float32(1 - eps), np.float32(1 - eps), eps])
    assert (r32["clamped_low"], r32["clamped_high"], r32["clamped"], r32["n"]) == (2, 2, 4, 5)
    v64, r64 = ct.rsample_uniforms(u, torch.float64)
    assert (r64["clamped_low"], r64["clamped_high"]) == (1, 1)
    np.testing.assert_array_equal(v64[:3], u[:3])
    with pytest.raises(TypeError, match="dtype"):
        ct.rsample_uniforms(u, np.float32)
    with pytest.raises(ValueError, match="strictly inside"):
        ct.rsample_uniforms([0.0, 0.5])


def test_feed_rand_restores():
    original = torch.rand
    with pytest.raises(ValueError, match="needs"):
        with ct.feed_rand(_u(7, 3)):
            torch.rand(2, 2)
    assert torch.rand is original
    with ct.feed_rand([0.25, 0.5]):
        t = torch.rand(2, dtype=torch.float64)
    np.testing.assert_array_equal(t.numpy(), [0.25, 0.5])


# ----------------------------------------------------------------------------- per-sample gradients


def _reinforce_torch(logits, u, t):
    lg = torch.tensor(logits, requires_grad=True)
    b = (torch.as_tensor(u) > torch.sigmoid(-lg)).to(torch.float64)  # refgrad's Bernoulli.from_uniforms
    log_prob = D.Bernoulli(logits=lg).log_prob(b).sum(-1)
    f = ((b - t) ** 2).sum(-1)
    return lg, f.detach() * log_prob


def test_per_sample_gradients_reinforce():
    logits, t, n = np.array([0.3, -1.0, 2.0]), 0.45, 200
    u = _u(8, (n, 3))
    expected = refgrad.estimate("reinforce", Bernoulli(logits), SquaredDistance(t), noise={"u": u})
    lg, losses = _reinforce_torch(logits, u, t)
    batched = ct.per_sample_gradients(lambda: losses, lg)
    assert batched.shape == (n, 3) and batched.dtype == np.float64
    np.testing.assert_allclose(batched, expected, rtol=1e-12, atol=1e-14)
    looped = ct.per_sample_gradients(lambda i: losses[i], lg, n=n)
    np.testing.assert_allclose(looped, expected, rtol=1e-12, atol=1e-14)
    wrong = ct.per_sample_gradients(lambda: losses * 1.01, lg)  # a biased estimator is seen
    assert not np.allclose(wrong, expected, rtol=1e-6)


def test_per_sample_gradients_list_and_unused():
    a = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[3.0]], dtype=torch.float64, requires_grad=True)
    x = torch.arange(4, dtype=torch.float64)
    ga, gb = ct.per_sample_gradients(lambda: x * a.sum() ** 2, [a, b])
    assert ga.shape == (4, 2) and gb.shape == (4, 1, 1) and not gb.any()
    np.testing.assert_allclose(ga, (2 * 3.0 * x.numpy())[:, None] * np.ones(2))


def test_per_sample_gradients_rejects():
    a = torch.ones(2, requires_grad=True)
    with pytest.raises(TypeError, match="params"):
        ct.per_sample_gradients(lambda: a, np.ones(2))
    with pytest.raises(ValueError, match="does not require grad"):
        ct.per_sample_gradients(lambda: a, torch.ones(2))
    with pytest.raises(ValueError, match="n must be"):
        ct.per_sample_gradients(lambda i: a.sum(), a, n=0)
    with pytest.raises(ValueError, match="scalar"):
        ct.per_sample_gradients(lambda i: a, a, n=2)
    with pytest.raises(ValueError, match="1-d tensor"):
        ct.per_sample_gradients(lambda: a.sum(), a)
    with pytest.raises(TypeError, match="callable"):
        ct.per_sample_gradients(3, a)
