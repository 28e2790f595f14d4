r"""Exact oracles by enumeration of the support.

For a product distribution ``q_φ`` over a finite support (Bernoulli,
Categorical, GaussianThreshold from :mod:`refgrad.distributions`),

.. math::

    L(φ) = E_{q_φ}[f(b)] = \sum_b q_φ(b) f(b), \qquad
    ∇_φ L = \sum_b q_φ(b) f(b) ∇_φ \log q_φ(b)

(the second identity is the score-function / log-derivative identity,
Williams 1992, eq. 9; ``f`` does not depend on ``φ``).  :func:`gradient` does not
sum that identity, whose terms cancel when ``f`` is large beside a coordinate's
own contribution, but the equivalent differences ``∂L/∂φ_j = c_j E_q[D_j(b)]``
(see its docstring).

The support is streamed in chunks of ``chunk_size`` configurations
(``dist.enumerate(start, stop)``), so memory does not grow with the support size;
supports larger than ``limit`` are refused before anything is evaluated.
Configurations with ``q(b) = 0`` (from ``±inf`` parameters) are skipped -- never
multiplied, so ``0 · inf`` cannot produce NaN -- and ``f`` is not evaluated on them.
Sums are accumulated with Neumaier's compensated summation across all chunks, so
the result is essentially independent of ``chunk_size`` and accurate to a few
ulps of ``Σ |terms|``.  Every chunk's output is checked (real numbers, one row
per configuration, the same row shape in every chunk) before it is accumulated.

Fast path.  For :class:`~refgrad.distributions.Bernoulli` and
:class:`~refgrad.distributions.Categorical` with a built-in
:class:`~refgrad.objectives.SquaredDistance` or :class:`~refgrad.objectives.Linear`
objective (exactly those classes, not subclasses), :func:`expectation`,
:func:`gradient` and :func:`expect` walk the support in (mixed-radix) Gray-code
order in a jitted, block-parallel kernel instead (:mod:`refgrad._oracle.gray`): the
same weights ``q(b)`` bit for bit, compensated sums, a result independent of the
thread count and equal to the chunked path to ``1e-13`` relative to the
objective's scale (``tests/test_exact_gray.py``).  Variables of probability one
are fixed and left out of the walk, so configurations of probability zero are
never visited.  Should the walk give a non-finite number (an objective that
overflows), the chunked path runs and reports it.  Smoke timing on 2 shared
cores, ``Bernoulli(d=20)`` with ``SquaredDistance(0.45)``: expectation 0.02-0.035 s,
gradient 0.02-0.043 s (chunked path 0.16 s / 0.17 s); ``d = 22``: 0.07-0.085 s each
(0.62 s / 0.69 s); command in :mod:`refgrad._oracle.gray`.  The module flag ``_GRAY``
(default True) switches the fast path off.
"""
import math

import numpy as np

from ._core.checks import as_float_array, check_count, check_work, describe
from ._oracle.gray import _neumaier
from ._core.jit import jit
from .distributions import ENUMERATION_LIMIT
from .objectives import Objective, as_objective
from ._moments.engine import Moments
from . import multisample as _multisample

#: Work counted per Monte Carlo estimate of :func:`moments` beyond the ``p² + p`` of its mean and
#: covariance updates.  Measured by timing ``exact.moments(name, Bernoulli(np.linspace(-1, 1, d)),
#: SquaredDistance(np.full(d, 0.45)), method="monte_carlo", samples=2**19)`` after a warm-up call
#: (2 shared cores): reinforce 57 ns and arm
#: 108 ns per estimate at p = 2 (4-8 ns per counted operation), 1.6 and 1.4 µs at p = 30 (1.5-1.7 ns).
MC_ESTIMATE_OVERHEAD = 8

#: Use the Gray-code kernels of :mod:`refgrad._oracle.gray` where they apply (Bernoulli or Categorical with a
#: SquaredDistance or Linear objective); False forces the general chunked path (tests compare the two).
_GRAY = True

__all__ = ["expectation", "gradient", "expect", "moments", "Moments"]


@jit
def _compensated_accumulate(terms, total, compensation):
    """Neumaier summation of the columns of ``terms`` (m, P) into ``total``/``compensation`` (P,), in place.

    The running sum of column ``p`` is ``total[p] + compensation[p]``.
    """
    m, P = terms.shape
    for r in range(m):
        for p in range(P):
            _neumaier(total, compensation, p, terms[r, p])


def _check_dist(dist):
    needed = ("support_size", "enumerate", "score", "param_shape", "event_shape")
    if not all(hasattr(dist, a) for a in needed):
        raise ValueError(
            f"dist must be a refgrad distribution (Bernoulli, Categorical or GaussianThreshold); got {describe(dist)}"
        )


def _check_support(dist, limit):
    size = dist.support_size
    if not isinstance(size, (int, np.integer)):
        raise ValueError(
            f"dist must have a finite support to enumerate (Bernoulli, Categorical or GaussianThreshold); got "
            f"{type(dist).__name__} with support size {size!r}"
        )
    if size > limit:
        raise ValueError(
            f"cannot enumerate the support of {type(dist).__name__} with event shape {tuple(dist.event_shape)}: "
            f"support size {size} exceeds limit={limit}; pass a larger limit= (e.g. limit={size}) to enumerate "
            "anyway (time grows linearly with the support size; memory does not)"
        )
    return size


def _chunk_values(raw, configs, start, stop, source, shape):
    """``raw = term(configs)`` as float64, checked: real numbers, one row per configuration, rows of ``shape``."""
    # complex, string, bool and object outputs: TypeError naming the source
    values = as_float_array(raw, f"the output of {source}")
    if values.ndim < 1 or values.shape[0] != configs.shape[0]:
        raise ValueError(
            f"{source} must return one row per configuration: for a batch of {configs.shape[0]} configurations "
            f"(indices {start}..{stop - 1}) it returned shape {values.shape}"
        )
    if shape is not None and values.shape[1:] != shape:
        raise ValueError(
            f"{source} must return rows of the same shape for every batch: rows of shape {shape} for the first "
            f"batch, of shape {values.shape[1:]} for the configurations with indices {start}..{stop - 1}"
        )
    if not np.isfinite(values).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
        raise ValueError(
            f"{source} returned the non-finite value {float(values[bad])!r} at index {bad} of the batch of "
            f"configurations {start}..{stop - 1}; the exact oracles need finite values"
        )
    return values


def _stream(dist, term, limit, chunk_size, what, source, with_index=False):
    """Compensated sum over the support of ``q(b) * term(b)``; ``term`` maps (m, *event) -> (m, *shape).

    ``what`` names the result (error messages), ``source`` the function whose output is checked.  With
    ``with_index``, ``term(b, index)`` also receives the (ascending) enumeration indices of the rows of ``b``.
    """
    _check_dist(dist)
    limit = check_count(limit, "limit")
    chunk_size = check_count(chunk_size, "chunk_size")
    size = _check_support(dist, limit)
    total = compensation = shape = None
    for start in range(0, size, chunk_size):
        stop = min(start + chunk_size, size)
        configs, probs = dist.enumerate(start, stop, limit=stop - start)
        keep = probs > 0.0
        if not keep.any():
            continue
        index = None
        if with_index:
            index = np.arange(start, stop, dtype=np.int64)
        if not keep.all():
            configs = configs[keep]
            probs = probs[keep]
            index = None if index is None else index[keep]
        configs = np.ascontiguousarray(configs)
        raw = term(configs, index) if with_index else term(configs)
        values = _chunk_values(raw, configs, start, stop, source, shape)
        if total is None:
            shape = values.shape[1:]
            width = int(np.prod(shape))
            total = np.zeros(width)
            compensation = np.zeros(width)
        terms = probs[:, None] * values.reshape(values.shape[0], -1)
        _compensated_accumulate(np.ascontiguousarray(terms), total, compensation)
    result = total + compensation
    if not np.isfinite(result).all():
        raise ValueError(
            f"the exact {what} under {dist!r} overflowed or is undefined (non-finite sum); rescale the objective"
        )
    return result.reshape(shape)


def expect(dist, fn, limit=ENUMERATION_LIMIT, chunk_size=65536):
    r"""Exact ``E_q[fn(b)] = Σ_b q(b) fn(b)`` for any array-valued ``fn``, by enumeration.

    The building block of the other oracles (and of exact estimator moments):
    ``fn`` maps a batch of configurations ``(m, *event_shape)`` to ``(m, *shape)``
    and the result has shape ``shape``.  Streaming, limits, skipping of
    ``q(b) = 0`` and compensated summation are as for :func:`expectation`.

    Every chunk's output must be real numbers (a complex, string, bool or object
    output raises ``TypeError``), finite, with one row per configuration and rows
    of the same shape in every chunk (``ValueError`` otherwise, naming ``fn``, the
    offending value or shape and the configuration indices).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable (configs -> array with one row per configuration); got {describe(fn)}")
    if isinstance(fn, Objective):
        _check_dist(dist)
        fast = _gray_expectation(dist, fn, limit, chunk_size)
        if fast is not None:
            return np.array(fast)
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return _stream(dist, fn, limit, chunk_size, "expectation of fn", f"fn ({name})")


def _separable_beyond_limit(dist, obj, limit):
    """Per-variable (distribution, term) pairs of a separable objective whose support exceeds ``limit``, else None.

    ``E[Σ_j f_j(b_j)] = Σ_j E[f_j(b_j)]`` and the gradient of variable j's parameters is that of its own term,
    so a support too large to enumerate is not enumerated (:mod:`refgrad._moments.separable`).
    A ``limit`` raised above :data:`~refgrad.distributions.ENUMERATION_LIMIT` does not turn the
    decomposition off: beyond that default it is taken all the same (a raised limit once turned
    the instant answer for 61 separable bits into a 2**61-step walk).
    """
    limit = check_count(limit, "limit")
    size = getattr(dist, "support_size", None)
    if not isinstance(size, (int, np.integer)) or size <= min(limit, ENUMERATION_LIMIT) or len(dist.event_shape) < 1:
        return None
    event = tuple(dist.event_shape)
    if event[0] < 2 or (event[1] if len(event) == 2 else 2) > limit:
        return None  # one variable, or even one variable's support exceeds the limit: refused as before
    from ._moments.separable import coordinate_dist, coordinate_terms

    terms = coordinate_terms(obj, dist)
    if terms is None:
        return None
    return [(coordinate_dist(dist, j), t) for j, t in enumerate(terms)]


def expectation(dist, f, limit=ENUMERATION_LIMIT, chunk_size=65536):
    r"""Exact expectation ``E_{q}[f(b)] = Σ_b q(b) f(b)`` by enumerating the support.

    Parameters
    ----------
    dist : Bernoulli, Categorical, GaussianThreshold or Product
        The distribution ``q`` (a :class:`~refgrad.distributions.Product` is enumerated in
        :mod:`refgrad.distributions.product`, without the Gray-code walk or the separable decomposition).
    f : Objective or callable
        Evaluated on batches of configurations (shape ``(m, *event_shape)``),
        returning ``(m,)`` finite values.  Not evaluated where ``q(b) = 0``.
    limit : int
        Largest support size accepted (default
        :data:`refgrad.distributions.ENUMERATION_LIMIT` = ``2**22``); a larger
        support raises ``ValueError`` before ``f`` is evaluated -- unless ``f`` is
        separable (:class:`~refgrad.objectives.Separable`, ``SquaredDistance``, ``Linear``,
        an additive ``Table``): then ``E[Σ_j f_j(b_j)] = Σ_j E[f_j(b_j)]`` is summed over the
        variables (and :func:`gradient` takes each variable's block from its own term),
        enumerating one variable at a time.
    chunk_size : int
        Configurations per chunk, ``≥ 1``; the result does not depend on it beyond
        rounding (compensated summation), memory is ``O(chunk_size)``.

    Returns
    -------
    float

    Notes
    -----
    Accuracy: each weight ``q(b)`` is a product of ``d`` per-variable probabilities
    (a few ulps each), the sum is compensated, so the absolute error is at most
    about ``(d + 3) eps Σ_b q(b) |f(b)|`` beyond the error of ``f``'s own values
    (measured against mpmath at 50 digits in ``tests/test_extremes_oracle.py``).
    Bernoulli and Categorical with SquaredDistance or Linear take the Gray-code
    walk (module docstring): the same weights and bound, memory ``O(d K)``.
    """
    if isinstance(f, _multisample.MultiSampleObjective):  # a function of k samples: refgrad.multisample
        return _multisample.expectation(dist, f, limit=limit)
    _check_dist(dist)
    obj = as_objective(f)
    if getattr(dist, "family", None) == "product":  # heterogeneous blocks: refgrad.distributions.product
        from .distributions import product as _product

        return _product.expectation(dist, obj, limit, chunk_size)
    separated = _separable_beyond_limit(dist, obj, limit)
    if separated is not None:
        return float(math.fsum(expectation(dj, fj, limit, chunk_size) for dj, fj in separated))
    fast = _gray_expectation(dist, obj, limit, chunk_size)
    if fast is not None:
        return fast
    source = f"objective {obj.name!r}"
    return float(_stream(dist, lambda b: obj.value(b), limit, chunk_size, f"expectation of {source}", source))


def gradient(dist, f, limit=ENUMERATION_LIMIT, chunk_size=65536):
    r"""Exact gradient ``∇_φ E_{q_φ}[f(b)]`` by enumeration, as expected differences of ``f``.

    Summing the score-function identity ``Σ_b q(b) f(b) ∇ log q(b)`` (Williams 1992,
    eq. 9) cancels: its terms are of size ``|f|`` while a coordinate's derivative can
    be of size ``|f(b^{i←1}) − f(b^{i←0})| ≪ |f|``.  Summing over the variable ``i``
    analytically gives the same sum without cancellation:

    .. math::

        \text{Bernoulli:}\quad \frac{∂L}{∂ℓ_i} = σ(ℓ_i)σ(−ℓ_i)\, E_q[f(b^{i←1}) − f(b^{i←0})],
        \qquad
        \text{GaussianThreshold:}\quad \frac{∂L}{∂μ_i} = φ(μ_i)\, E_q[f(b^{i←1}) − f(b^{i←0})],

        \text{Categorical:}\quad \frac{∂L}{∂ℓ_{ik}} = p_{ik}\, E_q[f(b^{i←k}) − f(b)]
        = p_{ik} \sum_j p_{ij}\, E_{b_{−i}}[f(b^{i←k}) − f(b^{i←j})],

    with ``b^{i←k}`` the configuration ``b`` with variable ``i`` set to ``k`` (the
    first two because ``dP(b_i = 1)/dφ_i`` is ``σσ'`` or ``φ``; the third from
    ``∂p_ij/∂ℓ_ik = p_ij(δ_jk − p_ik)``).  The differences come from
    :meth:`refgrad.objectives.Objective.flip_differences`, in closed form for the
    built-in objectives; only variables and categories of nonzero probability (the
    others have derivative 0) are flipped, so ``f`` is never evaluated at an
    impossible configuration.  Configurations with ``q(b) = 0`` are skipped.

    Parameters
    ----------
    dist : Bernoulli, Categorical, GaussianThreshold or Product
        The distribution ``q_φ``; ``φ`` is ``dist.params`` (flat for a
        :class:`~refgrad.distributions.Product`, whose variables are flipped block by block from the
        values of ``f``: :func:`refgrad.distributions.product.flip_differences`).
    f : Objective or callable
        As for :func:`expectation`.
    limit, chunk_size : int
        As for :func:`expectation`.

    Returns
    -------
    ndarray
        Shape ``dist.param_shape``.

    Notes
    -----
    Accuracy: with ``c_j`` the coefficient above (computed to a few ulps) and
    ``D_j`` the differences, the error of coordinate ``j`` is at most about
    ``(d + 4) eps c_j Σ_b q(b)|D_j(b)|`` -- a relative error of a few times
    ``(d + 4) eps`` whenever ``D_j`` has one sign over the support, which is always
    so for :class:`~refgrad.objectives.SquaredDistance` and
    :class:`~refgrad.objectives.Linear` on bits and for any objective monotone in
    each variable (for categorical variables with K ≥ 3 the sum over categories can
    cancel: the bound is then relative to ``Σ|terms|``, which is the conditioning of
    the derivative itself).  For objectives without closed-form differences (plain
    callables, :class:`~refgrad.objectives.FunctionObjective`) add the error of
    ``D`` from two evaluations of ``f``: ``≲ eps c_j E_q[|f(b)| + |f(b')|]``
    absolute.  For those the values of ``f`` on the chunk are reused for the
    differences within it, so ``f`` is evaluated once per configuration plus once per
    flip that leaves the chunk (none when the support fits in one chunk; for d = 20
    bits and the default chunk of 2**16, 4 more per configuration).  Measured against
    mpmath at 50 digits in ``tests/test_extremes_oracle.py``.  Bernoulli and Categorical with
    SquaredDistance or Linear take the Gray-code walk (module docstring), which accumulates
    ``Σ_b q(b)`` and the marginal masses ``Σ_{b: b_j = c} q(b)`` and combines them with the closed-form
    differences (:func:`_gray_gradient`): the same bound.
    """
    if isinstance(f, _multisample.MultiSampleObjective):  # a function of k samples: refgrad.multisample
        if getattr(dist, "family", None) == "product" and not isinstance(f, _multisample.IWAEBound):
            from .distributions import product as _product

            return _product.multisample_gradient(dist, f, limit)
        return _multisample.gradient(dist, f, limit=limit)
    _check_dist(dist)
    obj = as_objective(f)
    if getattr(dist, "family", None) == "product":  # heterogeneous blocks: refgrad.distributions.product
        from .distributions import product as _product

        return _product.gradient(dist, obj, limit, chunk_size)
    separated = _separable_beyond_limit(dist, obj, limit)
    if separated is not None:
        return np.concatenate([gradient(dj, fj, limit, chunk_size) for dj, fj in separated], axis=0)
    fast = _gray_gradient(dist, obj, limit, chunk_size)
    if fast is not None:
        return fast
    source = f"objective {obj.name!r}"
    if not hasattr(dist, "_flip_weights"):  # a duck-typed distribution: the score-function identity
        nd = len(dist.param_shape)

        def term(b):
            return obj.value(b).reshape((-1,) + (1,) * nd) * dist.score(b)

        return _stream(dist, term, limit, chunk_size, f"gradient of {source}", source)
    weights, active = dist._flip_weights()
    if type(obj)._flip_differences is Objective._flip_differences:
        # no closed form: the same differences as obj.flip_differences, reusing f on the chunk itself
        def differences(b, index):
            return _chunk_flip_differences(obj, dist, b, index, active)

        with_index = True
    else:

        def differences(b):
            return obj.flip_differences(b, active=active)

        with_index = False
    mean = _stream(
        dist, differences, limit, chunk_size, f"gradient of {source}", f"{source} (flip differences)", with_index
    )
    return np.where(active, weights * mean, 0.0)


def _gray_tables(dist, obj, limit, chunk_size):
    """Walk tables when the Gray-code kernels apply (arguments checked as the general path does), else None."""
    if not _GRAY:
        return None
    from ._oracle import gray as _gray

    limit = check_count(limit, "limit")
    check_count(chunk_size, "chunk_size")
    _check_support(dist, limit)
    return _gray.separable_tables(dist, obj)


def _gray_expectation(dist, obj, limit, chunk_size):
    """:func:`expectation` by the Gray-code walk, or None (not applicable, or non-finite: the general path reports)."""
    found = _gray_tables(dist, obj, limit, chunk_size)
    if found is None:
        return None
    from ._oracle.gray import walk_sums

    value = walk_sums(found[0], marginals=False)[0]
    return value if np.isfinite(value) else None


def _gray_gradient(dist, obj, limit, chunk_size):
    r""":func:`gradient` by the Gray-code walk, or None.

    The expected flip differences ``E_q[D_j(b)]`` of :class:`~refgrad.objectives.SquaredDistance` and
    :class:`~refgrad.objectives.Linear` depend on ``b`` through variable ``j`` only: for bits ``D_j`` is the
    constant ``1 − 2t_j`` or ``w_j`` and ``E_q[D_j] = D_j Σ_b q(b)``; for categorical variables
    ``D_{jk}(c) = 2(t_{jc} − t_{jk})`` or ``w_{jk} − w_{jc}`` and ``E_q[D_{jk}] = Σ_c D_{jk}(c) M_{j,c}`` with
    ``M_{j,c} = Σ_{b: b_j = c} q(b)`` (compensated, :mod:`refgrad._oracle.gray`).
    """
    found = _gray_tables(dist, obj, limit, chunk_size)
    if found is None:
        return None
    import math

    from ._oracle.gray import walk_sums

    tables, kind, param, choices = found
    categorical = dist.family == "categorical"
    _, mass, margin = walk_sums(tables, marginals=categorical)
    weights, active = dist._flip_weights()
    mean = np.zeros(dist.param_shape)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: the general path reports it
        for v, (i, cats) in enumerate(choices):
            if not categorical:
                mean[i] = ((1.0 - 2.0 * param[i]) if kind == "squared" else param[i]) * mass
                continue
            for k in cats:
                if kind == "squared":
                    diffs = 2.0 * (param[i, cats] - param[i, k])
                else:
                    diffs = param[i, k] - param[i, cats]
                try:
                    mean[i, k] = math.fsum(diffs * margin[v, : cats.size])
                except OverflowError:  # reported by the general path
                    return None
        result = np.where(active, weights * mean, 0.0)
    return result if np.isfinite(result).all() else None


def _chunk_flip_differences(obj, dist, b, index, active):
    """``obj.flip_differences(b, active)`` by the default rule (f at b and at b'), with f(b') looked up.

    ``b`` are configurations of positive probability with ascending enumeration indices ``index``.  Where
    the flipped configuration ``b'`` is among them its value of f is reused; elsewhere it is evaluated (it has
    positive probability: only variables and categories of nonzero probability are active).  The numbers are
    those of :meth:`refgrad.objectives.Objective.flip_differences`; the cost falls from ``1 + Σ active``
    evaluations of f per configuration to ``1`` plus those whose flips leave the chunk.
    """
    n, d = b.shape[0], b.shape[1]
    bits = b.ndim == 2
    radix = 2 if bits else b.shape[2]
    base = obj.value(b)
    strides = radix ** np.arange(d - 1, -1, -1, dtype=np.int64)
    lo, width = int(index[0]), int(index[-1]) - int(index[0]) + 1
    position = np.full(width, -1, dtype=np.int64)  # row of each enumeration index of the chunk, -1 if skipped
    position[index - lo] = np.arange(n)

    def lookup(offset):
        """Rows of the partners at ``offset`` from ``lo`` (and whether each is in the chunk)."""
        inside = (offset >= 0) & (offset < width)
        found_at = position[np.where(inside, offset, 0)]
        return found_at, inside & (found_at >= 0)

    if bits:  # all variables at once (flipping bit i is index XOR stride_i); then the flips leaving the chunk
        offset = (index[:, None] ^ strides[None, :]) - lo
        if n == width:  # no configuration skipped: rows are the offsets themselves
            found = (offset >= 0) & (offset < width)
            found_at = np.where(found, offset, 0)
        else:
            found_at, found = lookup(offset)
        other = base[found_at]  # garbage where not found: replaced just below
        for i in np.flatnonzero(active & ~found.all(axis=0)):
            missing = np.flatnonzero(~found[:, i])
            flipped = b[missing]
            flipped[:, i] = 1.0 - flipped[:, i]
            other[missing, i] = obj.value(flipped)
        # f(b^{i←1}) − f(b^{i←0}): negated where b_i = 1, by the exact factor 1 − 2 b_i (fl(x − y) = −fl(y − x))
        out = np.subtract(other, base[:, None], out=other)
        out *= 1.0 - 2.0 * b
        if not active.all():
            out[:, ~active] = 0.0
        return out
    chosen = np.ascontiguousarray(np.argmax(b, axis=2).T)  # (d, n): the category of each variable
    out = np.zeros(b.shape)
    for i, k in np.argwhere(active):
        rows = np.flatnonzero(chosen[i] != k)
        if rows.size == 0:
            continue
        found_at, found = lookup(index[rows] - lo + (k - chosen[i][rows]) * strides[i])
        other = base[found_at]
        if not found.all():
            missing = ~found
            flipped = b[rows[missing]]
            flipped[:, i, :] = 0.0
            flipped[:, i, k] = 1.0
            other[missing] = obj.value(flipped)
        out[rows, i, k] = other - base[rows]
    return out


def moments(name, dist, f, method="auto", level=None, limit=ENUMERATION_LIMIT, max_seconds=60.0, *, samples=None,
            rng=0, confidence=0.99, max_work=None, **options):
    r"""Exact mean and covariance of estimator ``name`` on ``(dist, f)``.

    The estimate ``ĝ = g(φ, f, noise)`` is a deterministic function of its uniforms
    (see :data:`refgrad.ESTIMATORS`), so its moments are integrals over the noise
    cube, computed without Monte Carlo:

    * ``"enumeration"`` -- for estimators whose noise enters only through ``k``
      i.i.d. discrete samples (reinforce with any baseline, muprop: ``k = 1``;
      rloo: ``k = m``): ``E[ĝ] = Σ q(b_1)…q(b_k) g(b_1..b_k)`` over the
      ``support**k`` tuples (refused beyond ``limit``);
    * ``"piecewise"`` -- for estimators that are polynomial of degree ≤ 1 in each
      uniform between the declared break points (arm, disarm): the midpoint rule per
      piece and coordinate integrates ``ĝ`` exactly, two-point Gauss–Legendre ``ĝĝᵀ``;
      pieces next to 1 (``σ(ℓ)``, ``ℓ ≳ 37``) keep their exact widths through the
      complements of the break points;
    * ``"quadrature"`` -- for continuous-noise estimators (gumbel_softmax,
      straight_through, gumbel_rao, rebar, relax, pathwise): tensor tanh-sinh
      quadrature, split at the declared break points; a categorical sample's
      Gumbel noise (whose argmax regions are not axis-aligned) is integrated
      conditionally on the sample, ``Σ_b q(b) ∫ g(u(b, v)) dv``, with ``u(b, v)``
      the conditional Gumbel of ``v``.  Limited to noise dimension
      :data:`refgrad._moments.engine.MAX_QUADRATURE_DIM` (one Bernoulli or
      GaussianThreshold variable with two noise blocks; one categorical with
      K ≤ 3 and one noise block, or K ≤ 2 with two; ...); beyond it a
      ``ValueError`` is raised rather than a Monte Carlo guess.  The reported error
      is the difference between levels ``level`` and ``level − 1``.

    * ``"separable"`` -- for a separable objective ``f(b) = Σ_j f_j(b_j)``
      (:class:`refgrad.objectives.Separable`, :class:`~refgrad.objectives.SquaredDistance`,
      :class:`~refgrad.objectives.Linear`, an additive :class:`~refgrad.objectives.Table`) at
      any dimension: the estimate of variable j is its one-variable estimate plus
      ``A_jᵀ Σ_{r≠j} F_r`` (each estimator declares ``F`` and ``A``), so the exact mean and
      full covariance follow from integrals over one variable's noise at a time, by the
      methods above (:mod:`refgrad._moments.separable`; REBAR on 100 bits in a few seconds).
      ``"auto"`` chooses it where the full-dimensional methods exceed their limits;
      ``max_seconds`` is then shared by the variables.  Refused, with the reason, for
      estimators defined on the joint support (sum_and_sample, unordered_set), vimco and
      RELAX with a non-constant network.

    * ``"monte_carlo"`` -- **not exact**, and never chosen by ``"auto"``: where the
      methods above refuse (noise dimension too large to integrate), an
      :class:`refgrad._moments.monte_carlo.EstimatedMoments` from ``samples`` estimates
      (``refgrad.estimate(name, dist, f, samples, rng=rng)``, streamed): the sample
      mean and covariance with per-coordinate ``confidence`` intervals of the mean and
      the variance by batch means.  Its ``exact`` attribute is False.

    A :class:`~refgrad.distributions.Product` (estimators declared with ``product=True``: reinforce,
    rloo, muprop) takes ``"enumeration"`` only (or ``"monte_carlo"``); ``level`` must then be None
    (:func:`refgrad.distributions.product.moments`).

    For estimators affine in a coefficient η with ``eta="optimal"`` (rebar), the
    joint moments of the two parts ``ĝ = a + η c`` are integrated and the exact
    variance-optimal ``η* = −E[a c]/E[c²]`` (per coordinate) is used; it is
    returned in ``Moments.eta``.

    Parameters
    ----------
    name : str
        Estimator name.
    dist, f
        Distribution and objective.
    method : {"auto", "enumeration", "piecewise", "quadrature", "separable", "monte_carlo"}
        ``"auto"`` picks the first exact method that applies in the order above (``"separable"``
        only where the full-dimensional one exceeds its limits).
    level : int, optional
        Quadrature level (step ``2**-level``), an integer in [2, 16]; by default
        6, 5, 4, 3 for noise dimension 1, 2, 3, 4.  A rule with more than
        ``refgrad._moments.engine.MAX_QUADRATURE_NODES`` (2**32) evaluations is refused.
    limit : int
        Largest number of sample tuples enumerated.
    max_seconds : float > 0 or None, default 60
        Refuse, before integrating, a quadrature whose estimated run time exceeds this
        many seconds (``ValueError`` naming ``level``, the number of evaluations, the
        estimate and the largest level that fits); None: no limit.  The estimate is
        the number of estimator evaluations (nodes per axis multiplied over the noise
        dimensions, pieces and both levels) times the seconds per evaluation, timed on
        a few thousand nodes; a plan of at most
        ``refgrad._moments.cost.UNTIMED_EVALUATIONS`` (10⁶) evaluations runs without
        timing, and one beyond ``max_seconds`` even at the floor
        ``refgrad._moments.cost.MIN_SECONDS_PER_EVALUATION`` (1e-7 s) is refused without
        timing.  Measured on 2 shared cores: 0.16-1.1 µs per evaluation (REBAR on two
        bits at its default level 3: 2.7·10⁷ evaluations, 9 s; at level 4: 4.6·10⁸).
    samples : int, optional
        ``method="monte_carlo"`` only: number of estimates (default 2**20, at least
        30 · 1024); the full covariance costs ``p²`` operations per estimate.
    rng : None, int or numpy.random.Generator, default 0
        ``method="monte_carlo"`` only: the randomness (a fixed seed by default, so the
        estimate is reproducible).
    confidence : float in (0, 1), default 0.99
        ``method="monte_carlo"`` only: level of the per-coordinate intervals.
    max_work : float, optional
        ``method="monte_carlo"`` only: the work budget (default
        :data:`refgrad._core.checks.WORK_LIMIT`), counted as ``samples x (p² + p + 8)`` for ``p``
        parameter entries (:data:`MC_ESTIMATE_OVERHEAD`); a larger ``samples`` is refused
        before any estimate is drawn, saying what it would cost.
    **options
        Estimator options.

    Returns
    -------
    Moments or EstimatedMoments
        ``mean``, ``cov``, ``variance``, ``method``, ``error``, ``cost``; for
        ``"monte_carlo"`` also ``mean_interval``, ``variance_interval`` and ``exact = False``.
    """
    from .estimators import get_spec
    from ._moments import engine as _moments

    spec = get_spec(name)
    opts = spec.options(dist, **options)
    if isinstance(method, str) and method == "monte_carlo":
        from ._moments.monte_carlo import DEFAULT_SAMPLES, monte_carlo_moments

        if level is not None:
            raise ValueError(f"level applies to method='quadrature' (and 'auto'), not to method='monte_carlo' (whose "
                             f"accuracy is set by samples=); got level={level!r}")

        n_est = DEFAULT_SAMPLES if samples is None else check_count(samples, "samples")
        p = int(np.prod(dist.param_shape))
        check_work(n_est * (p * p + p + MC_ESTIMATE_OVERHEAD),
                   f"exact.moments({name!r}, method='monte_carlo', samples={n_est})",
                   f"estimates x (p^2 + p + {MC_ESTIMATE_OVERHEAD}) for p = {p} parameter entries",
                   max_work=max_work, advice="or pass fewer samples")
        return monte_carlo_moments(spec, dist, f, opts, samples=samples, rng=rng, confidence=confidence)
    if samples is not None or confidence != 0.99 or not (isinstance(rng, int) and rng == 0) or max_work is not None:
        raise ValueError(
            f"samples, rng and confidence apply only to method='monte_carlo'; got method={method!r} with "
            f"samples={samples!r}, rng={describe(rng)}, confidence={confidence!r}"
        )
    limit = check_count(limit, "limit")
    if getattr(dist, "family", None) == "product":  # heterogeneous blocks: enumerated in refgrad.distributions.product
        from .distributions import product as _product

        return _product.moments(spec, dist, f, opts, method=method, level=level, limit=limit)
    return _moments.moments(spec, dist, f, opts, method=method, level=level, limit=limit, max_seconds=max_seconds)
