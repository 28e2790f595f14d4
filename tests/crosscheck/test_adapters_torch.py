"""Hostile input on refgrad.crosscheck.torch: per-sample gradients at scale and with non-finite samples,
the feeders against torch's own signatures and refusals, memory sharing, tensors without dense data."""
import warnings

import numpy as np
import pytest

import refgrad

torch = pytest.importorskip("torch")
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

import refgrad.crosscheck.torch as ct  # noqa: E402  (after the skip)

F = torch.nn.functional
D = torch.distributions


def _reinforce(n, seed=0, bad=None):
    """REINFORCE surrogate on 3 bits: loss_i = f_i * log p(b_i); gradient f_i * (b_i - sigmoid(logits))."""
    u = torch.as_tensor(np.random.default_rng(seed).random((n, 3)))
    lg = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    b = (u > torch.sigmoid(-lg)).to(torch.float64)
    f = ((b - 0.45) ** 2).sum(-1)
    if bad is not None:
        for i, value in bad.items():
            f[i] = value
    losses = f.detach() * D.Bernoulli(logits=lg).log_prob(b).sum(-1)
    exact = f.numpy()[:, None] * (b.numpy() - 1 / (1 + np.exp(-np.array([0.3, -1.0, 2.0]))))
    return lg, losses, exact


class _Elements(TorchDispatchMode):
    """Counts the elements of every tensor an operation returns (the work and memory of a call)."""

    def __init__(self):
        super().__init__()
        self.total = 0
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.total += t.numel()
                self.largest = max(self.largest, t.numel())
        return out


# ----------------------------------------------------------------------------- per-sample gradients


def test_batched_per_sample_gradients_are_linear_in_n():
    counts = {}
    for n in (300, 3000):
        lg, losses, exact = _reinforce(n)
        with _Elements() as mode:
            g = ct.per_sample_gradients(lambda: losses, lg)
        np.testing.assert_allclose(g, exact, rtol=1e-14, atol=1e-15)
        counts[n] = (mode.total, mode.largest)
        assert mode.largest <= 4 * n * 3, "no tensor larger than a few times the n x P result (no n x n identity)"
    assert counts[3000][0] <= 15 * counts[300][0], f"work grows faster than n: {counts}"


def test_batched_per_sample_gradients_at_scale():
    n = 100_000
    lg, losses, exact = _reinforce(n, seed=1)
    g = ct.per_sample_gradients(lambda: losses, lg)
    assert g.shape == (n, 3)
    np.testing.assert_allclose(g, exact, rtol=1e-14, atol=1e-15)


def test_batched_equals_per_sample_graphs():
    """Bitwise equal to one graph per sample on REINFORCE; to rounding on torch's gumbel_softmax."""
    lg, losses, _ = _reinforce(200, seed=2)
    batched = ct.per_sample_gradients(lambda: losses, lg)
    u = torch.as_tensor(np.random.default_rng(2).random((200, 3)))

    def one(i):
        b = (u[i] > torch.sigmoid(-lg)).to(torch.float64)
        return ((b - 0.45) ** 2).sum().detach() * D.Bernoulli(logits=lg).log_prob(b).sum()

    np.testing.assert_array_equal(batched, ct.per_sample_gradients(one, lg, n=200))
    n, logits = 64, np.array([[0.3, -1.2, 2.0], [1.0, 0.0, -0.5]])
    uu = refgrad.random.uniform(3, (n, 2, 3))
    for hard in (False, True):
        p = torch.tensor(logits, requires_grad=True)
        with ct.feed_uniforms(uu):
            y = F.gumbel_softmax(p.expand(n, 2, 3), tau=0.7, hard=hard)
        batched = ct.per_sample_gradients(lambda: ((y - 0.3) ** 2).sum((-1, -2)), p)

        def one(i, hard=hard, p=p):
            with ct.feed_uniforms(uu[i]):
                yi = F.gumbel_softmax(p, tau=0.7, hard=hard)
            return ((yi - 0.3) ** 2).sum()

        np.testing.assert_allclose(batched, ct.per_sample_gradients(one, p, n=n), rtol=0, atol=1e-15)


def test_non_finite_sample_leaves_the_others_untouched():
    lg, losses, exact = _reinforce(50, seed=3, bad={7: float("nan"), 31: float("inf")})
    g = ct.per_sample_gradients(lambda: losses, lg)
    others = np.setdiff1d(np.arange(50), [7, 31])
    np.testing.assert_allclose(g[others], exact[others], rtol=1e-14, atol=1e-15)
    assert np.isnan(g[7]).all() and not np.isfinite(g[31]).any()
    # a non-finite parameter use in one sample (w_i = NaN / inf scaling the parameter itself)
    a = torch.tensor([0.5, -2.0], dtype=torch.float64, requires_grad=True)
    w = torch.ones(6, 1, dtype=torch.float64)
    w[1], w[4] = float("nan"), float("inf")
    g = ct.per_sample_gradients(lambda: ((a * w) ** 2).sum(-1), a)
    np.testing.assert_array_equal(g[[0, 2, 3, 5]], np.tile([1.0, -4.0], (4, 1)))
    assert not np.isfinite(g[[1, 4]]).any()


def test_fewer_samples_than_parameters_isolated_too():
    """n <= P takes n reverse passes; a non-finite entry sends it to the column-by-column form."""
    a = torch.linspace(-1.0, 1.0, 8, dtype=torch.float64, requires_grad=True)
    w = torch.arange(1.0, 7.0, dtype=torch.float64)[:, None]
    w[2], w[3] = float("nan"), float("-inf")
    g = ct.per_sample_gradients(lambda: ((a * w) ** 2).sum(-1), a)
    expected = 2 * w.numpy() ** 2 * a.detach().numpy()
    np.testing.assert_array_equal(g[[0, 1, 4, 5]], expected[[0, 1, 4, 5]])
    assert not np.isfinite(g[[2, 3]]).any()
    fine = torch.arange(1.0, 7.0, dtype=torch.float64)[:, None]
    g = ct.per_sample_gradients(lambda: ((a * fine) ** 2).sum(-1), a)
    np.testing.assert_allclose(g, 2 * fine.numpy() ** 2 * a.detach().numpy(), rtol=1e-15)


def test_complex_refused_by_name_without_a_warning():
    c = torch.ones(2, dtype=torch.complex128, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"params is a complex tensor"):
            ct.per_sample_gradients(lambda i: (c.abs() ** 2).sum(), c, n=2)
        with pytest.raises(ValueError, match=r"params\[1\] is a complex tensor"):
            ct.per_sample_gradients(lambda: torch.ones(2), [torch.ones(1, requires_grad=True), c])
    a = torch.ones(2, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=r"surrogate\(0\) must return .*real float dtype"):
        ct.per_sample_gradients(lambda i: (a * 1j).sum(), a, n=2)
    with pytest.raises(ValueError, match=r"surrogate\(\) must return .*real float dtype"):
        ct.per_sample_gradients(lambda: a * 1j, a)


def test_non_scalar_and_oversized_refused_by_name():
    a = torch.ones(2, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=r"surrogate\(0\) must return a scalar .* shape \(2,\)"):
        ct.per_sample_gradients(lambda i: a * 2, a, n=3)
    with pytest.raises(ValueError, match=r"surrogate\(\) must return a non-empty 1-d .* shape \(2, 2\)"):
        ct.per_sample_gradients(lambda: a * torch.ones(2, 1), a)
    with pytest.raises(ValueError, match=r"surrogate\(0\) must return .*got 'x'"):
        ct.per_sample_gradients(lambda i: "x", a, n=1)
    with pytest.raises(ValueError, match=r"surrogate\(\) returned a tensor that does not require grad"):
        ct.per_sample_gradients(lambda: a.detach() * torch.ones(2), a)
    with pytest.raises(ValueError, match=r"surrogate\(0\) returned a tensor that does not require grad"):
        ct.per_sample_gradients(lambda i: a.sum().detach(), a, n=2)
    big = torch.ones(10**6, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=r"n=1000 would need 7.45 GiB.*4 GiB budget"):
        ct.per_sample_gradients(lambda i: big.sum(), big, n=1000)


def test_fallback_without_double_backward_warns_and_agrees():
    class Square(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 2 * x * grad

    a = torch.tensor([0.5, -2.0], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([[1.0], [-1.0], [2.0], [-2.0]], dtype=torch.float64)  # rows add up to 0
    with pytest.warns(RuntimeWarning, match="double backward"):
        g = ct.per_sample_gradients(lambda: ((Square.apply(a) + a) * w).sum(-1), a)
    np.testing.assert_array_equal(g, w.numpy() * (2 * np.array([0.5, -2.0]) + 1))


def test_backward_detached_from_its_gradient_is_caught():
    """A custom backward that detaches its incoming gradient: the rows no longer add up to J^T 1."""
    class Cube(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 3 * x ** 2 * grad.detach()

    a = torch.tensor([0.5, -2.0], dtype=torch.float64, requires_grad=True)
    w = torch.arange(1.0, 5.0, dtype=torch.float64)[:, None]
    with pytest.warns(RuntimeWarning, match="double backward"):
        g = ct.per_sample_gradients(lambda: ((Cube.apply(a) + a) * w).sum(-1), a)
    np.testing.assert_allclose(g, w.numpy() * (3 * np.array([0.5, -2.0]) ** 2 + 1), rtol=1e-15)


# ----------------------------------------------------------------------------- feeders


def _outcome(call):
    try:
        out = call()
    except Exception as e:  # noqa: BLE001 - the point is to compare exceptions
        return type(e), str(e)
    return "ok", (tuple(out.shape), out.dtype, out.requires_grad)


RAND_CALLS = {
    "ints": lambda: torch.rand(2, 3),
    "tuple": lambda: torch.rand((2, 3)),
    "list": lambda: torch.rand([2, 3]),
    "Size": lambda: torch.rand(torch.Size([2, 3])),
    "size=": lambda: torch.rand(size=(2, 3)),
    "size=list": lambda: torch.rand(size=[6]),
    "0-d": lambda: torch.rand(()),
    "numpy int": lambda: torch.rand(np.int64(4)),
    "float64": lambda: torch.rand(3, dtype=torch.float64),
    "float16": lambda: torch.rand(3, dtype=torch.float16),
    "complex": lambda: torch.rand(2, dtype=torch.complex128),
    "requires_grad": lambda: torch.rand(2, requires_grad=True),
    "generator": lambda: torch.rand(2, generator=torch.Generator().manual_seed(0)),
    "out": lambda: torch.rand(4, out=torch.empty(1, dtype=torch.float64)),
    "negative": lambda: torch.rand(-1),
    "negative in tuple": lambda: torch.rand((2, -3)),
    "no size": lambda: torch.rand(),
    "float size": lambda: torch.rand(2.5),
    "int dtype": lambda: torch.rand(2, dtype=torch.int64),
    "bool dtype": lambda: torch.rand(2, dtype=torch.bool),
    "memory_format": lambda: torch.rand(2, memory_format=torch.contiguous_format),
    "bad generator": lambda: torch.rand(2, generator=3),
    "names": lambda: torch.rand(2, names=("a",)),
    "two sizes": lambda: torch.rand([2, 3], 4),
    "size twice": lambda: torch.rand(2, size=(2,)),
}


@pytest.mark.parametrize("name", sorted(RAND_CALLS))
def test_feed_rand_accepts_and_refuses_what_torch_does(name):
    call = RAND_CALLS[name]
    expected = _outcome(call)
    u = refgrad.random.uniform(0, 16)
    state = torch.get_rng_state()
    with ct.feed_rand(u) as feed:
        got = _outcome(call)
    assert got == expected
    assert torch.equal(torch.get_rng_state(), state), "the global random state is left as it was"
    if expected[0] == "ok":
        size = int(np.prod(expected[1][0])) * (2 if expected[1][1].is_complex else 1)
        assert feed.consumed == size
    else:
        assert feed.consumed == 0 and feed.calls == []


def test_feed_rand_values_in_every_form():
    u = np.array([0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 0.0625])
    out = torch.empty(0, dtype=torch.float64)
    with ct.feed_rand(u) as feed:
        a = torch.rand(size=(2,), dtype=torch.float64)
        b = torch.rand((), dtype=torch.float64)
        c = torch.rand(1, dtype=torch.complex128)
        d = torch.rand(2, out=out, dtype=torch.float64, requires_grad=False)
        e = torch.rand(1, dtype=torch.float64, requires_grad=True)
    assert a.tolist() == [0.125, 0.25] and b.item() == 0.375 and c.item() == complex(0.5, 0.625)
    assert d is out and out.tolist() == [0.75, 0.875]
    assert e.is_leaf and e.requires_grad and e.item() == 0.0625
    assert feed.remaining == 0 and feed.calls == [(2,), (), (1, 2), (2,), (1,)]


EXPONENTIAL_CALLS = {
    "default": lambda: torch.empty(3).exponential_(),
    "lambd": lambda: torch.empty(3, dtype=torch.float64).exponential_(2.5),
    "lambd kw": lambda: torch.empty(3, dtype=torch.float64).exponential_(lambd=4.0),
    "generator": lambda: torch.empty(3).exponential_(generator=torch.Generator().manual_seed(1)),
    "zero": lambda: torch.empty(3).exponential_(0.0),
    "negative": lambda: torch.empty(3).exponential_(-1.0),
    "nan": lambda: torch.empty(3).exponential_(float("nan")),
    "int tensor": lambda: torch.zeros(3, dtype=torch.int64).exponential_(),
    "bool tensor": lambda: torch.zeros(3, dtype=torch.bool).exponential_(),
    "complex tensor": lambda: torch.zeros(3, dtype=torch.complex64).exponential_(),
    "leaf requiring grad": lambda: torch.zeros(3, requires_grad=True).exponential_(),
    "view of such a leaf": lambda: torch.zeros(3, requires_grad=True)[:2].exponential_(),
    "bad generator": lambda: torch.empty(3).exponential_(generator=3),
    "extra argument": lambda: torch.empty(3).exponential_(1.0, 2.0),
}


@pytest.mark.parametrize("name", sorted(EXPONENTIAL_CALLS))
def test_feed_exponential_accepts_and_refuses_what_torch_does(name):
    call = EXPONENTIAL_CALLS[name]
    expected = _outcome(call)
    state = torch.get_rng_state()
    with ct.feed_exponential(np.arange(1.0, 9.0)) as feed:
        got = _outcome(call)
    assert got == expected
    assert torch.equal(torch.get_rng_state(), state)
    assert feed.consumed == (3 if expected[0] == "ok" else 0)


def test_feed_exponential_under_no_grad_and_autograd():
    leaf = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    with ct.feed_exponential([1.0, 3.0]), torch.no_grad():
        leaf.exponential_(2.0)  # torch allows this under no_grad
    assert leaf.tolist() == [0.5, 1.5]
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    with ct.feed_exponential([1.0, 2.0]):
        y = (x * 3).exponential_()
    (g,) = torch.autograd.grad((y * x).sum(), x)
    assert y.tolist() == [1.0, 2.0] and g.tolist() == [1.0, 2.0]  # d(y x)/dx = y: y's draw has no gradient


def test_nested_feeds_do_not_take_from_the_outer_feed():
    with ct.feed_rand([0.5, 0.5]) as outer:
        with ct.feed_rand([0.25]) as inner:
            t = torch.rand(1, dtype=torch.float64)
    assert t.item() == 0.25 and inner.consumed == 1 and outer.consumed == 0


# ----------------------------------------------------------------------------- memory sharing


def test_from_numpy_never_shares_memory():
    for a in (np.array([0.25, 0.5]), np.arange(6.0).reshape(2, 3)[:, ::2], np.array([1, 2], dtype=np.int64)):
        before = a.copy()
        t = ct.from_numpy(a)
        a[...] = 7
        np.testing.assert_array_equal(t.numpy(), before)
        t.fill_(-1)
        assert (a == 7).all()
    t = ct.from_numpy(np.ones(2, dtype=np.float32), like=torch.zeros(1, dtype=torch.float32))
    assert not np.shares_memory(t.numpy(), np.ones(2))


# ----------------------------------------------------------------------------- tensors without dense data


def _odd_tensors():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantised and nested tensors warn that they are deprecated / prototype
        return {
            "meta": torch.zeros(3, device="meta"),
            "sparse": torch.tensor([0.5, 0.0, 0.25]).to_sparse(),
            "sparse_csr": torch.tensor([[0.5, 0.0], [0.0, 0.25]]).to_sparse_csr(),
            "quantised": torch.quantize_per_tensor(torch.tensor([0.5, 0.3, 0.2]), 0.1, 0, torch.quint8),
            "nested": torch.nested.nested_tensor([torch.ones(2) / 2, torch.ones(3) / 2]),
        }


@pytest.mark.parametrize("kind", ["meta", "sparse", "sparse_csr", "quantised", "nested"])
def test_odd_tensors_refused_by_name(kind):
    t = _odd_tensors()[kind]
    accepted = "accepted are dense"
    with pytest.raises(ValueError, match=rf"^x is .*{accepted}"):
        ct.to_numpy(t)
    with pytest.raises(ValueError, match=rf"^x is .*{accepted}"):
        ct.to_numpy({"a": [t]})
    with pytest.raises(ValueError, match=rf"^like is .*{accepted}"):
        ct.from_numpy(np.ones(2), like=t)
    with pytest.raises(ValueError, match=rf"^a is .*{accepted}"):
        ct.from_numpy(t)
    with pytest.raises(ValueError, match=rf"^e is .*{accepted}"):
        ct.uniforms_from_exponential(t)
    for f in (ct.exponential_from_uniforms, ct.rsample_uniforms, lambda u: ct.feed_rand(u).__enter__(),
              lambda u: ct.feed_uniforms(u).__enter__()):
        with pytest.raises(ValueError, match=rf"^u is .*{accepted}"):
            f(t)
    with pytest.raises(ValueError, match=rf"^e is .*{accepted}"):
        ct.feed_exponential(t).__enter__()
    if kind == "meta":
        p = torch.zeros(3, device="meta", requires_grad=True)
        with pytest.raises(ValueError, match=rf"^params is .*{accepted}"):
            ct.per_sample_gradients(lambda: p * torch.ones(2, 1, device="meta"), p)
        a = torch.ones(3, requires_grad=True)
        with pytest.raises(ValueError, match=rf"surrogate\(\) returned is .*{accepted}"):
            ct.per_sample_gradients(lambda: torch.ones(2, device="meta"), a)
