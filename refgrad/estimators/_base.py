"""The one interface every estimator implements, and the registry behind it.

An estimator is a pure function of its noise::

    g(dist, f, noise, **options) -> (n, *dist.param_shape)

where ``noise`` is a dict of uniform arrays, each strictly inside (0, 1), laid
out as the estimator's :class:`EstimatorSpec` declares (see
:meth:`EstimatorSpec.noise_layout`).  The same declaration serves three uses:
drawing the noise (:meth:`EstimatorSpec.draw_noise`), integrating the estimate
over the noise exactly (the quadrature oracle splits each coordinate at the
declared :meth:`EstimatorSpec.breakpoints`), and cross-checking another
implementation fed the same uniforms.
"""
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from .._core.checks import (
    as_float_array,
    check_count,
    check_sample_count,
    describe,
    first_index,
    outside_unit_index,
)
from ..objectives import as_objective
from ..random import as_generator, uniform
from . import _fused

__all__ = [
    "NoiseField",
    "EstimatorSpec",
    "ESTIMATORS",
    "register",
    "estimate",
    "get_spec",
    "differentiable_objective",
]


def differentiable_objective(f, estimator, relaxed=False):
    """``as_objective(f)``, refusing what ``estimator`` cannot use.

    Raises ``ValueError`` if the objective has no gradient, or -- with ``relaxed`` --
    if it was declared ``relaxed_ok=False`` while the estimator evaluates it at
    relaxed (non-discrete) points (Gumbel-Softmax, REBAR, RELAX at ``σ_τ(z)``, MuProp
    at ``E[b]``).
    """
    obj = as_objective(f)
    if not obj.differentiable:
        raise ValueError(
            f"estimator {estimator!r} needs the gradient ∂f/∂z, but objective {obj.name!r} has none; "
            "use a built-in objective or FunctionObjective(value_fn, grad_fn=...)"
        )
    if relaxed and not obj.relaxed_ok:
        raise ValueError(
            f"estimator {estimator!r} evaluates f at relaxed (non-discrete) points, but objective {obj.name!r} "
            "was declared relaxed_ok=False; use an estimator that evaluates f only at discrete samples "
            "(reinforce, rloo, arm, disarm, straight_through, gumbel_rao)"
        )
    return obj


@dataclass(frozen=True)
class NoiseField:
    """One named block of uniforms.

    Attributes
    ----------
    name : str
        Key in the noise dict.
    shape : tuple of int
        Shape of the block for **one** estimate; the array passed for ``n``
        estimates has shape ``(n, *shape)``.  If ``per_sample`` is False the block
        is shared by all ``n`` estimates of one call and its array has exactly
        ``shape`` (e.g. a pilot batch used to tune a control-variate coefficient).
    description : str
        What the uniforms are turned into.
    per_sample : bool
        See ``shape``.
    """

    name: str
    shape: Tuple[int, ...]
    description: str = ""
    per_sample: bool = True


@dataclass
class EstimatorSpec:
    """Declaration of one estimator.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"reinforce"``.
    families : tuple of str
        Distribution families supported (``dist.family`` values).
    unbiased : bool
        Whether ``E[g] = ∇ E_q[f]`` exactly (for every valid option value).
    compute : callable
        ``compute(dist, f, noise, **options) -> (n, *param_shape)``; receives checked
        options and checked noise.
    layout : callable
        ``layout(dist, **options) -> tuple of NoiseField``.
    cost : callable
        ``cost(dist, **options) -> int``: evaluations of f (or of f and its gradient
        at one point) per single estimate.
    defaults : dict
        Option names and default values; any other option is rejected.
    check_options : callable
        ``check_options(dist, options) -> options``; raises ValueError naming the option.
    breakpoints : callable or None
        ``breakpoints(dist, **options) -> dict``: for each noise field whose
        coordinates are independent, an array of shape ``(*field.shape, m)`` of the
        values in (0, 1) where the estimate is discontinuous in that coordinate, or
        so steep that integration must split there (a relaxation at small τ around
        the sample's threshold); nan padding where fewer.  An optional key
        ``name + "_complement"`` gives ``1 − p`` of each break point, accurately
        (break points next to 1); the piecewise oracle then integrates the pieces
        with exact widths and passes ``noise[name + "_complement"]`` to ``compute``.
        Fields with neither map to
        ``None``.  Fields
        whose discontinuities are not axis-aligned (Gumbel-max regions of a
        categorical) map to the string ``"argmax"``: integrate conditionally on the
        sample instead.
    summary : str
        One line: formula in words and source.
    doc : str
        The estimator's full docstring: formula in maths, source (paper, equation),
        options, cost and noise layout.
    given_samples : callable or None
        For estimators whose noise enters only through ``k`` i.i.d. discrete samples:
        ``given_samples(dist, f, b, **options) -> (N, *param_shape)`` with ``b`` of
        shape ``(N, k, *event_shape)``; ``draws(**options) -> k``.  The exact-moments
        oracle then enumerates the ``support**k`` sample tuples.
    draws : callable
        See ``given_samples``; default one draw.
    separable : callable or None
        Exact moments at any dimension for separable objectives ``f = Σ_j f_j(b_j)``
        (:mod:`refgrad._moments.separable`): ``separable(dist, **options) -> (coordinate_options,
        features)``, or None where these options do not decompose.
        ``coordinate_options(j) -> dict`` gives the options of variable ``j``'s
        one-variable problem (a per-parameter option sliced to it).
        ``features(dist1, f1, noise=None, b=None, **options1) -> (F, A)`` states how the
        estimate of variable ``j`` depends on the others: on the full problem
        ``ĝ_j = g(dist_j, f_j; noise_j) + A_jᵀ Σ_{r≠j} F_r`` with ``F_r`` of shape
        ``(N, L)`` (variable ``r``'s contribution to the values of f at the ``L``
        points the estimator evaluates) and ``A_j`` of shape ``(N, L, *param1)``, both
        functions of the variable's own noise (or samples ``b``, for estimators with
        ``given_samples``).  ``features=None``: the estimate of variable ``j`` depends
        on its own noise and term only (relaxation-based estimators, whose pathwise
        gradient of a separable f has no cross terms).
    product : bool
        Whether the estimator also accepts a :class:`refgrad.distributions.Product` (family
        ``"product"``: blocks of the discrete families side by side, flat points and parameters).
        Declared apart from ``families``, which name the families of single variables.
    noise_rule : callable or None
        For estimators integrated through ``outcomes``: ``noise_rule(dist, **options)``
        yields ``(weights (N,), noise dict)`` batches, an exact rule for the estimate and
        its square over the per-sample noise (ARSM's cell points).  The separable method
        integrates each variable's features with it.  Contract: the ``outcomes`` of a
        product distribution are the product over the variables of their one-variable
        ``noise_rule`` points, so ``exact.moments`` counts them from the per-variable
        rules to choose between enumerating them and the separable method.
    outcomes : callable or None
        For estimators that take finitely many values but not through i.i.d. samples
        (samples without replacement, a coupling whose cells are not axis-aligned):
        ``outcomes(dist, f, limit, **options)`` yields ``(weights (N,), estimates (N,
        *param_shape))`` batches whose weights are the exact probabilities of the
        listed estimates and sum to 1; it raises ``ValueError`` (naming ``limit``)
        when there are more than ``limit`` outcomes.  ``exact.moments`` then
        enumerates them (method ``"enumeration"``).
    shape_in_noise : str
        ``"piecewise_constant"``, ``"piecewise_linear"`` (polynomial of degree ≤ 1 in
        each uniform between break points -- integrated exactly by Gauss–Legendre) or
        ``"smooth"`` (tanh-sinh quadrature between break points).
    conditional_draws : tuple or None
        ``(option, field)`` for estimators that average ``k = options[option]``
        i.i.d. conditional draws held in noise ``field`` (shape ``(k, *event)``)
        given a discrete sample that the other noise determines, and depend on
        the other noise only through that sample (gumbel_rao).  Exact moments
        then need only ``k = 1`` integrals: ``Cov_k = Cov_1 − (1 − 1/k) E[Var(h | b)]``.
    fused : callable or None
        The fused row kernel (:mod:`refgrad.estimators._fused`):
        ``fused(dist, obj, row, shared, **options) -> FusedPlan or None`` for a
        built-in objective ``obj`` with row form ``row = (kind, parameters)`` and the
        shared (``per_sample=False``) noise fields ``shared``; None where the
        estimator has no fused kernel for this family or these options (the
        batched ``compute`` runs).  The plan must give the same estimates as
        ``compute`` on the same noise (to 1e-13 relative, tested).
    control_variate : callable or None
        For estimators affine in a coefficient ``η`` (option ``eta``):
        ``control_variate(dist, f, noise, **options) -> (a, c)`` with
        ``ĝ = a + η ⊙ c`` and ``E[c] = 0``, so the variance-optimal η has the closed
        form ``−E[a ⊙ c] / E[c ⊙ c]`` per coordinate.
    """

    name: str
    families: Tuple[str, ...]
    unbiased: bool
    compute: Callable
    layout: Callable
    cost: Callable
    defaults: Dict[str, object] = field(default_factory=dict)
    check_options: Optional[Callable] = None
    breakpoints: Optional[Callable] = None
    summary: str = ""
    doc: str = ""
    given_samples: Optional[Callable] = None
    draws: Callable = lambda **options: 1
    shape_in_noise: str = "smooth"
    control_variate: Optional[Callable] = None
    conditional_draws: Optional[Tuple[str, str]] = None
    fused: Optional[Callable] = None
    outcomes: Optional[Callable] = None
    separable: Optional[Callable] = None
    noise_rule: Optional[Callable] = None
    product: bool = False

    # ------------------------------------------------------------------ options
    def options(self, dist, **options):
        """Checked options: defaults filled in, unknown names rejected."""
        self.check_family(dist)
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            allowed = ", ".join(sorted(self.defaults)) or "none"
            raise ValueError(f"estimator {self.name!r} got unknown option(s) {unknown}; allowed options: {allowed}")
        full = dict(self.defaults)
        full.update(options)
        if self.check_options is not None:
            full = self.check_options(dist, full)
        return full

    def check_family(self, dist):
        family = getattr(dist, "family", None)
        if family == "product" and self.product:
            return
        if family not in self.families:
            raise ValueError(
                f"estimator {self.name!r} does not support family {family!r} "
                f"(dist={describe(dist)}); supported families: {', '.join(self.families)}"
            )

    # ------------------------------------------------------------------ noise
    def noise_layout(self, dist, **options):
        """The noise fields for ``dist`` and these options."""
        return tuple(self.layout(dist, **self.options(dist, **options)))

    def bytes_per_sample(self, dist, **options):
        """Bytes of float64 noise and estimate one sample needs (per-sample fields plus the estimate)."""
        return self._bytes_per_sample(dist, self.options(dist, **options))

    def _bytes_per_sample(self, dist, opts):
        floats = sum(int(np.prod(nf.shape)) for nf in self.layout(dist, **opts) if nf.per_sample)
        return 8 * (floats + int(np.prod(dist.param_shape)))

    def draw_noise(self, dist, n, rng=None, **options):
        """Draw the noise dict for ``n`` estimates (uniforms strictly inside (0, 1)).

        The shared (``per_sample=False``) fields are drawn first, in layout order;
        then one ``(n, width)`` block of uniforms holding, row by row, every
        per-sample field of one estimate side by side (layout order, each field
        flattened).  Row ``i`` is estimate ``i``'s noise, so the stream does not
        depend on how the rows are split into chunks (the fused path of
        :func:`estimate` draws the same block in chunks).

        ``n`` is refused (``ValueError`` naming it and the memory it would need) when
        its noise and estimates exceed :data:`refgrad._core.checks.MAX_ARRAY_BYTES`.
        """
        opts = self.options(dist, **options)
        n = check_sample_count(n, self._bytes_per_sample(dist, opts), "n")
        gen = as_generator(rng)
        layout = tuple(self.layout(dist, **opts))
        out = self._draw_shared(layout, gen)
        out.update(_fused.unpack(layout, uniform(gen, (n, _fused.per_sample_fields(layout)[1]))))
        return {nf.name: out[nf.name] for nf in layout}

    @staticmethod
    def _draw_shared(layout, gen):
        """The shared (``per_sample=False``) fields, drawn first, in layout order."""
        return {nf.name: uniform(gen, tuple(nf.shape)) for nf in layout if not nf.per_sample}

    def fused_plan(self, dist, f, opts, shared):
        """The :class:`~refgrad.estimators._fused.FusedPlan` for these inputs, or None (batched path)."""
        if self.fused is None or not _fused.enabled():
            return None
        obj = as_objective(f)
        row = _fused.objective_row(obj, dist.event_shape)
        if row is None:
            return None
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by check_result, as an error
            return self.fused(dist, obj, row, shared, **opts)

    def check_noise(self, dist, noise, opts):
        """Validate a user-supplied noise dict; returns (n, checked dict).

        Each value may be any array_like (lists too) of the declared shape.
        """
        fields = self.layout(dist, **opts)
        layout_text = ", ".join(
            f"{nf.name!r}: " + ("(n, " + ", ".join(map(str, nf.shape)) + ")" if nf.per_sample else str(tuple(nf.shape)))
            for nf in fields
        )
        if not isinstance(noise, Mapping):
            raise ValueError(
                f"noise must be a dict of uniform arrays laid out as {{{layout_text}}} for estimator "
                f"{self.name!r}; got {describe(noise)} of type {type(noise).__name__}"
            )
        names = {nf.name for nf in fields}
        extra = sorted(set(noise) - names, key=repr)
        missing = sorted(names - set(noise))
        if extra or missing:
            raise ValueError(
                f"noise for estimator {self.name!r} must have exactly the keys {sorted(names)}; "
                f"missing {missing}, unexpected {extra}"
            )
        n = None
        checked = {}
        for nf in fields:
            key = f"noise[{nf.name!r}]"
            arr = as_float_array(noise[nf.name], key)
            want = tuple(nf.shape)
            if nf.per_sample:
                ok = arr.ndim == len(want) + 1 and arr.shape[1:] == want
                if ok and n is None:
                    n = arr.shape[0]
                ok = ok and arr.shape[0] == n
                shape_text = "(n, " + ", ".join(map(str, want)) + ")"
            else:
                ok = arr.shape == want
                shape_text = str(want)
            if not ok:
                shared = f" with n = {n} from the fields before it" if nf.per_sample and n is not None else ""
                raise ValueError(
                    f"{key} must have shape {shape_text} (n shared by all per-sample fields{shared}); "
                    f"got {arr.shape}"
                )
            where = outside_unit_index(arr)  # one pass, no temporaries; NaN counts as outside
            if where is not None:
                raise ValueError(
                    f"{key} must contain uniforms strictly inside (0, 1) (no 0, 1 or NaN); "
                    f"got {float(arr[where])!r} at index {where}"
                )
            checked[nf.name] = arr
        if n is None or n < 1:
            raise ValueError(
                f"noise for estimator {self.name!r} must contain at least one sample; got n = {n} "
                f"(layout {{{layout_text}}})"
            )
        return n, checked

    def check_result(self, dist, out, n, known_finite=False):
        """The estimates ``out`` of shape ``(n, *param_shape)``, refused if any is not finite.

        ``known_finite``: the caller has checked every entry (the fused kernels' threads do).

        Finite parameters, noise and objective values can still overflow float64 in
        an estimator's arithmetic (``f(b) − f(b')`` with ``|f| ~ 1e308``, a product with
        a large score); a non-finite estimate is never returned as a result.
        """
        expected = (n,) + tuple(dist.param_shape)
        if out.shape != expected:  # internal contract, not user error
            raise AssertionError(f"estimator {self.name!r} returned shape {out.shape}, expected {expected}")
        if known_finite:
            return out
        bad = ~np.isfinite(out)
        if bad.any():
            where = first_index(bad)
            raise ValueError(
                f"estimator {self.name!r} overflowed: estimate {float(out[where])!r} at index {where} "
                f"(sample {where[0]}, parameter {where[1:]}) although the parameters, noise and objective "
                "values are legal; the float64 arithmetic of the estimator exceeded 1.8e308 -- rescale the "
                "objective (divide f by a constant) so that its values and their differences stay well "
                "below that"
            )
        return out

    def cost_of(self, dist, **options):
        """Evaluations of f per single estimate."""
        return int(self.cost(dist, **self.options(dist, **options)))

    def __repr__(self):
        fam = ", ".join(self.families)
        return f"<estimator {self.name!r}: {'unbiased' if self.unbiased else 'biased'}, families ({fam})>"


#: Registry: estimator name -> :class:`EstimatorSpec`.
ESTIMATORS: Dict[str, EstimatorSpec] = {}


def own_noise(dist, **options):
    """:attr:`EstimatorSpec.separable` of an estimator whose variables use their own noise only.

    Each variable's one-variable problem takes the same options, and no feature ``F`` couples the variables.
    """
    return (lambda j: dict(options)), None


def unit_cost(dist, **_):
    """:attr:`EstimatorSpec.cost` of an estimator that evaluates f (or its gradient) once per estimate."""
    return 1


def register(spec):
    """Add ``spec`` to :data:`ESTIMATORS` (names are unique); its ``__doc__`` becomes ``spec.doc``."""
    if spec.name in ESTIMATORS:
        raise ValueError(f"estimator {spec.name!r} is already registered")
    # help(ESTIMATORS[name]) and pydoc show the estimator's own docstring (formula and
    # source), not the generic EstimatorSpec text: pydoc documents an instance whose
    # __doc__ is set as itself.
    spec.__doc__ = spec.doc or spec.summary or type(spec).__doc__
    ESTIMATORS[spec.name] = spec
    return spec


def get_spec(name):
    """The spec registered as ``name``; ValueError listing the known names otherwise."""
    if isinstance(name, EstimatorSpec):
        return name
    try:
        return ESTIMATORS[name]
    except (KeyError, TypeError):
        raise ValueError(f"name must be one of {sorted(ESTIMATORS)}; got {describe(name)}") from None


def estimate(name, dist, f, n=None, rng=None, noise=None, **options):
    """``n`` independent single-sample estimates of ``∇_params E_{q(b)}[f(b)]``.

    Parameters
    ----------
    name : str
        An estimator in :data:`refgrad.ESTIMATORS`.
    dist : Bernoulli, Categorical, GaussianThreshold or Normal
        The distribution; its parameters are the ones differentiated.
    f : Objective or callable
        The objective; estimators that differentiate f need an
        :class:`refgrad.objectives.Objective` with ``grad``.
    n : int, optional
        Number of estimates.  Required whenever ``noise`` is not given (``rng`` or
        not); with ``noise`` it is read from the noise arrays (and, if given, must
        agree).  Refused when the noise and the
        estimates would exceed :data:`refgrad._core.checks.MAX_ARRAY_BYTES`: split larger
        runs into several calls.
    rng : None, int or numpy.random.Generator
        Randomness (SPEC 7).  Ignored -- and must be None -- when ``noise`` is given.
    noise : dict, optional
        Uniform arrays (any array_like) laid out as ``ESTIMATORS[name].noise_layout(dist, **options)``.
        The result is then a deterministic function of the noise, so another
        implementation fed the same uniforms can be compared sample by sample.
    **options
        Estimator options (see each estimator's docstring).

    Returns
    -------
    ndarray
        Shape ``(n, *dist.param_shape)``, float64, every entry finite.

    Raises
    ------
    ValueError
        A bad value: unknown estimator or option, an option out of its range, ``n < 1``
        or ``n`` whose noise and estimates would exceed
        :data:`refgrad._core.checks.MAX_ARRAY_BYTES` (4 GiB), noise of the wrong layout or
        not strictly inside (0, 1), an objective the estimator cannot use, or an
        estimate that overflowed float64 (rescale the objective).
    TypeError
        A wrong type: ``n`` not an integer, noise arrays or options of a non-real type
        (complex, string, bool).
    """
    spec = get_spec(name)
    opts = spec.options(dist, **options)
    layout = tuple(spec.layout(dist, **opts))
    if noise is None:
        if n is None:
            raise ValueError("n must be given (an integer >= 1) when noise is not")
        n_noise = check_sample_count(n, spec._bytes_per_sample(dist, opts), "n")
        gen = as_generator(rng)
        shared = spec._draw_shared(layout, gen)
        plan = spec.fused_plan(dist, f, opts, shared)
        if plan is not None:  # the same uniforms as draw_noise, drawn in chunks of rows
            out, bad = _fused.run(plan, n_noise, gen=gen)
            return spec.check_result(dist, out.reshape((n_noise,) + tuple(dist.param_shape)), n_noise, bad < 0)
        noise = dict(shared)
        noise.update(_fused.unpack(layout, uniform(gen, (n_noise, _fused.per_sample_fields(layout)[1]))))
        n_noise, noise = spec.check_noise(dist, {nf.name: noise[nf.name] for nf in layout}, opts)
    else:
        if rng is not None:
            raise ValueError("pass either rng or noise, not both (noise makes the result deterministic)")
        n_noise, noise = spec.check_noise(dist, noise, opts)
        if n is not None and check_count(n, "n") != n_noise:
            raise ValueError(f"n={n} disagrees with the noise arrays, which hold {n_noise} samples")
        plan = spec.fused_plan(dist, f, opts, {nf.name: noise[nf.name] for nf in layout if not nf.per_sample})
        if plan is not None:
            out, bad = _fused.run(plan, n_noise, block=_fused.pack(layout, noise, n_noise))
            return spec.check_result(dist, out.reshape((n_noise,) + tuple(dist.param_shape)), n_noise, bad < 0)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by check_result, as an error
        out = spec.compute(dist, f, noise, **opts)
    return spec.check_result(dist, out, n_noise)
