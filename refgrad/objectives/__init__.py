r"""Objectives ``f``: the functions whose expectation ``E_{q_φ(b)}[f(b)]`` is differentiated.

An objective is evaluated on a batch ``z`` of shape ``(n, d)`` (Bernoulli and
GaussianThreshold: bits, or relaxed values in ``[0, 1]``) or ``(n, d, K)``
(Categorical: one-hot rows, or points of the probability simplex) and returns
``(n,)`` values.  Relaxed estimators (Gumbel-softmax, REBAR, RELAX) also need the
gradient ``∂f/∂z``, which every built-in objective supplies, derived by hand and
tested against central finite differences.

Built-in objectives
-------------------
:class:`SquaredDistance`
    ``f(z) = Σ (z − t)²`` -- the toy problem of REBAR (Tucker et al. 2017, §6.1)
    and RELAX (Grathwohl et al. 2018, §6.1) with one bit and ``t = 0.45``.
:class:`Linear`
    ``f(z) = Σ w z``.
:class:`Table`
    An arbitrary function of the discrete configuration, given by its table of
    values and extended multilinearly to relaxed inputs.
:class:`Separable`
    ``f(z) = Σ_j f_j(z_j)``: a sum of per-variable terms (tables or objectives of
    one variable), whose estimators' exact moments decompose over the variables
    (:func:`refgrad.exact.moments`, method ``"separable"``).
:class:`FunctionObjective`
    Wraps plain callables; :func:`as_objective` turns any callable into one.

Every call goes through :meth:`Objective.value` / :meth:`Objective.grad`, which
check the input (float64, 2 or 3 dimensions, no NaN) and the output (real
numbers -- a complex, string, bool or object output is a ``TypeError`` --, shape
``(n,)`` or ``z.shape``, finite) and raise an error naming the objective
otherwise.  Objectives may also supply a Hessian-vector product
:meth:`Objective.hvp` (all built-ins do), used to train RELAX's temperature.

:meth:`Objective.flip_differences` gives the differences of ``f`` between
configurations that differ in one variable, which the exact gradient
(:func:`refgrad.exact.gradient`) is built from: in closed form (to one rounding)
for the built-ins, by two evaluations of ``f`` for any other objective.
"""
import numpy as np

from .._core.checks import as_float_array, check_no_nan, describe, first_index
from .._core.jit import jit
from ..distributions import ENUMERATION_LIMIT
from . import rows as _rows
from .rows import OBJECTIVE_LINEAR, OBJECTIVE_SQUARED_DISTANCE, _table_grad, _table_value, encode, objective_values

__all__ = [
    "Objective",
    "SquaredDistance",
    "Linear",
    "Table",
    "Separable",
    "FunctionObjective",
    "as_objective",
    "evaluate",
    "evaluate_grad",
    "evaluate_hvp",
]


# --------------------------------------------------------------------------- base class


class Objective:
    """Base class of objectives: ``value(z) -> (n,)`` and ``grad(z) -> z.shape``.

    Subclasses implement ``_value(z)`` and ``_grad(z)`` on a checked float64
    C-contiguous ``z`` with ``z.ndim`` 2 (``(n, d)``: bits or relaxed bits) or 3
    (``(n, d, K)``: one-hot rows or points of the simplex), and may override
    ``_check_event(z)`` to validate the event shape.  The public :meth:`value` and
    :meth:`grad` check what goes in and what comes out.

    Attributes
    ----------
    name : str
        Used in error messages.
    relaxed_ok : bool
        Whether the objective is meaningful on relaxed (non-vertex) inputs; True for
        all built-ins.
    differentiable : bool
        Whether :meth:`grad` is available.
    has_hvp : bool
        Whether :meth:`hvp` is available (subclasses that implement ``_hvp`` set it).
    """

    relaxed_ok = True
    differentiable = True
    has_hvp = False
    _name = None

    @property
    def name(self):
        """Name used in error messages (defaults to the class name)."""
        return self._name if self._name is not None else type(self).__name__

    @name.setter
    def name(self, value):
        self._name = str(value)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"

    def __call__(self, z):
        """Same as :meth:`value`."""
        return self.value(z)

    # -- protocol -------------------------------------------------------------------
    def value(self, z):
        """Values ``f(z)``, shape ``(n,)``, for ``z`` of shape ``(n, d)`` or ``(n, d, K)``."""
        z = self._check_input(z)
        out = self._value(z)
        return self._check_output(out, (z.shape[0],), "value", z)

    def grad(self, z):
        """Gradient ``∂f/∂z`` of each row, shape ``z.shape``."""
        if not self.differentiable:
            raise ValueError(
                f"objective {self.name!r} has no gradient (no grad_fn was given); the estimator needs a "
                "differentiable objective: pass grad_fn= to FunctionObjective or use a built-in objective"
            )
        z = self._check_input(z)
        out = self._grad(z)
        return self._check_output(out, z.shape, "grad", z)

    def hvp(self, z, v):
        r"""Hessian-vector product of each row, ``∂/∂z ⟨∇f(z), v⟩ = ∇²f(z) v``, shape ``z.shape``.

        ``v`` has the shape of ``z`` and must be finite.
        """
        if not self.has_hvp:
            raise ValueError(
                f"objective {self.name!r} has no Hessian-vector product; use a built-in objective or "
                "FunctionObjective(value_fn, grad_fn=..., hvp_fn=...)"
            )
        z = self._check_input(z)
        vec = as_float_array(v, f"v (direction of the Hessian-vector product of objective {self.name!r})")
        if vec.shape != z.shape:
            raise ValueError(
                f"v must have the shape of z, {z.shape}, for the Hessian-vector product of objective {self.name!r}; "
                f"got {vec.shape}"
            )
        if not np.isfinite(vec).all():
            bad = first_index(~np.isfinite(vec))
            raise ValueError(
                f"v must be finite for the Hessian-vector product of objective {self.name!r}; got "
                f"{float(vec[bad])!r} at index {bad}"
            )
        out = self._hvp(z, vec)
        return self._check_output(out, z.shape, "hvp", z)

    def flip_differences(self, b, active=None):
        r"""Differences of ``f`` between discrete configurations that differ in one variable.

        .. math::

            D_{s,i} = f(b_s^{i←1}) − f(b_s^{i←0}) \quad\text{(bits, } b \text{ of shape } (n, d)),\qquad
            D_{s,i,k} = f(b_s^{i←k}) − f(b_s) \quad\text{(one-hot, } b \text{ of shape } (n, d, K)),

        where ``b^{i←k}`` is ``b`` with variable ``i`` set to ``k``.  For bits ``D_{s,i}`` does not depend on
        ``b_{s,i}``; for one-hot rows ``D_{s,i,k} = 0`` at the chosen category.  The exact gradient is
        ``∂L/∂φ_j = c_j E_q[D_j(b)]`` (see :func:`refgrad.exact.gradient`), so no large ``f`` ever has to be
        subtracted from another there.

        Accuracy: the built-in objectives compute ``D`` in closed form, to one rounding of the exact
        difference (:class:`SquaredDistance`: ``1 − 2t_i``, or ``2(t_{i,c} − t_{i,k})`` for one-hot rows with
        ``c`` the chosen category; :class:`Linear`: ``w_i`` or ``w_{i,k} − w_{i,c}``; :class:`Table`: one
        difference of two table entries).  For any other objective the default evaluates ``f`` at ``b`` and
        at each flipped configuration and subtracts: the absolute error is then about
        ``eps (|f(b)| + |f(b')|)`` plus the error of ``f``'s own evaluations, which can exceed ``|D|`` itself
        where ``|f| ≫ |D|``; subclasses may override ``_flip_differences(b, active)`` with a closed form.
        Cost of the default: ``1 + Σ active`` evaluations of ``f`` on batches of at most ``n`` rows
        (memory ``O(n d K)``).

        Parameters
        ----------
        b : array_like
            Discrete configurations: bits ``(n, d)`` with entries in {0, 1}, or one-hot rows ``(n, d, K)``.
        active : array_like of bool, optional
            Shape ``(d,)`` (bits) or ``(d, K)`` (one-hot): the entries to compute; the others are 0 and ``f``
            is never evaluated at those flips (the exact gradient passes the variables and categories of
            nonzero probability, so impossible configurations are never evaluated).  Default: all.

        Returns
        -------
        ndarray
            Shape ``b.shape``, finite (a difference that overflows raises ``ValueError``).
        """
        b = self._check_discrete(b)
        active = self._check_active(active, b)
        out = np.asarray(self._flip_differences(b, active), dtype=np.float64)
        if out.shape != b.shape:
            raise ValueError(
                f"objective {self.name!r} returned flip differences of shape {out.shape} for b of shape {b.shape}; "
                f"expected {b.shape}"
            )
        out = np.where(active[None], out, 0.0)
        if not np.isfinite(out).all():
            bad = first_index(~np.isfinite(out))
            raise ValueError(
                f"the difference f(b') − f(b) of objective {self.name!r} between configurations that differ in "
                f"one variable overflowed: {float(out[bad])!r} at index {bad}; rescale the objective"
            )
        return np.ascontiguousarray(out)

    def _flip_differences(self, b, active):
        """Default: ``f`` at ``b`` and at each active flip (see :meth:`flip_differences` for the error bound)."""
        out = np.zeros(b.shape)
        if b.shape[0] == 0:
            return out
        base = self.value(b)
        if b.ndim == 2:
            for i in np.flatnonzero(active):
                flipped = b.copy()
                flipped[:, i] = 1.0 - flipped[:, i]
                other = self.value(flipped)
                out[:, i] = np.where(b[:, i] == 1.0, base - other, other - base)
            return out
        for i, k in np.argwhere(active):
            rows = np.flatnonzero(b[:, i, k] == 0.0)
            if rows.size == 0:
                continue
            flipped = b[rows]
            flipped[:, i, :] = 0.0
            flipped[:, i, k] = 1.0
            out[rows, i, k] = self.value(flipped) - base[rows]
        return out

    def _check_discrete(self, b):
        """Checked configurations: bits (n, d) in {0, 1} or one-hot rows (n, d, K)."""
        name = f"b (configurations given to objective {self.name!r})"
        arr = self._check_input(b, name=name)
        bad = (arr != 0.0) & (arr != 1.0)
        if bad.any():
            where = first_index(bad)
            raise ValueError(
                f"{name} must be discrete (bits or one-hot rows, entries 0 and 1); got {float(arr[where])!r} "
                f"at index {where}"
            )
        if arr.ndim == 3:
            hot = arr.sum(axis=2)
            if np.any(hot != 1.0):
                where = first_index(hot != 1.0)
                raise ValueError(
                    f"{name} must have one 1 per variable (one-hot rows); row {where} (sample, variable) is "
                    f"{arr[where].tolist()}"
                )
        return arr

    def _check_active(self, active, b):
        event = b.shape[1:]
        if active is None:
            return np.ones(event, dtype=bool)
        arr = np.asarray(active)
        if arr.dtype != np.bool_:
            raise TypeError(f"active must be a boolean array of shape {event}; got {describe(active)}")
        if arr.shape != event:
            raise ValueError(f"active must have the event shape {event} of b; got shape {arr.shape}")
        return arr

    def _value(self, z):  # pragma: no cover - abstract
        raise NotImplementedError

    def _grad(self, z):  # pragma: no cover - abstract
        raise NotImplementedError

    def _hvp(self, z, v):  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_event(self, z):
        """Hook for subclasses: validate ``z.shape[1:]``."""

    # -- checks ---------------------------------------------------------------------
    def _check_input(self, z, name=None):
        name = f"z (input of objective {self.name!r})" if name is None else name
        arr = as_float_array(z, name, ndim=(2, 3), allow_bool=True)
        check_no_nan(arr, name)
        self._check_event(arr)
        return arr

    def _check_output(self, out, shape, what, z):
        # complex, string, bool and object outputs: a TypeError naming the objective
        arr = as_float_array(out, f"the output of objective {self.name!r} from {what}(z)")
        if arr.shape != tuple(shape):
            raise ValueError(
                f"objective {self.name!r} returned an array of shape {arr.shape} from {what}(z) for z of shape "
                f"{z.shape}; expected shape {tuple(shape)}"
            )
        if not np.isfinite(arr).all():
            bad = first_index(~np.isfinite(arr))
            raise ValueError(
                f"objective {self.name!r} returned a non-finite {what} {float(arr[bad])!r} at index {bad} "
                f"(for z of shape {z.shape}); objectives must return finite values"
            )
        return np.ascontiguousarray(arr)


def _event_size(z):
    """Number of entries of one row of ``z`` (``reshape(n, -1)`` fails for n = 0)."""
    return int(np.prod(z.shape[1:]))


def _event_broadcast_check(param, param_name, obj, z):
    """``param`` must broadcast to the event shape ``z.shape[1:]`` without enlarging it."""
    event = z.shape[1:]
    ok = param.ndim <= len(event)
    if ok:
        try:
            ok = np.broadcast_shapes(param.shape, event) == event
        except ValueError:
            ok = False
    if not ok:
        raise ValueError(
            f"{param_name} of objective {obj.name!r} has shape {param.shape}, which does not broadcast to the "
            f"event shape {event} of z (shape {z.shape})"
        )


def _row_values(kind, param, z):
    """Values at the rows of ``z`` of the built-in objective ``kind`` with target or weights ``param``."""
    par = np.ascontiguousarray(np.broadcast_to(param, z.shape[1:]), dtype=np.float64).reshape(-1)
    zs = np.ascontiguousarray(z, dtype=np.float64).reshape(z.shape[0], par.size)
    return objective_values(kind, encode(kind, par), zs)


def _check_finite_parameter(arr, name):
    if not np.isfinite(arr).all():
        bad = first_index(~np.isfinite(arr))
        raise ValueError(f"{name} must be finite; got {float(arr[bad])!r} at index {bad}")
    return arr


def _one_hot_select(b, param):
    """``Σ_k b[s, i, k] param[i, k]`` for one-hot ``b``: the parameter at the chosen category (exact)."""
    return np.einsum("sik,ik->si", b, np.broadcast_to(param, b.shape[1:]))


# --------------------------------------------------------------------------- simple objectives


class SquaredDistance(Objective):
    r"""``f(z) = Σ_event (z − t)²``, gradient ``2 (z − t)``, Hessian-vector product ``2 v``.

    With one Bernoulli bit and ``t = 0.45`` this is the toy problem of REBAR
    (Tucker et al. 2017, §6.1) and RELAX (Grathwohl et al. 2018, §6.1):
    ``E[f] = θ (1 − t)² + (1 − θ) t²``, which is *minimised* there; refgrad
    always differentiates the expectation itself.

    Parameters
    ----------
    target : array_like
        Finite; broadcastable to the event shape (``(d,)`` or ``(d, K)``), e.g. a scalar.
    """

    def __init__(self, target):
        arr = _check_finite_parameter(as_float_array(target, "target", copy=True), "target")
        arr.setflags(write=False)
        self.target = arr
        self.name = f"SquaredDistance(target={np.array2string(arr, precision=4)})"

    def _check_event(self, z):
        _event_broadcast_check(self.target, "target", self, z)

    def _value(self, z):
        # the row function the fused estimator kernels call: Σ (z − t)² left to right, one pass
        return _row_values(OBJECTIVE_SQUARED_DISTANCE, self.target, z)

    has_hvp = True

    def _flip_differences(self, b, active):
        t = np.broadcast_to(self.target, b.shape[1:])
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by flip_differences
            if b.ndim == 2:  # (1 − t)² − t² = 1 − 2t
                return np.broadcast_to(1.0 - 2.0 * t, b.shape)
            # (1 − t_k)² + t_c² − (1 − t_c)² − t_k² = 2 (t_c − t_k), c the chosen category
            return 2.0 * (_one_hot_select(b, t)[:, :, None] - t[None])

    def _grad(self, z):
        return 2.0 * (z - self.target)

    def _hvp(self, z, v):
        return 2.0 * v


class Linear(Objective):
    r"""``f(z) = Σ_event w z``, gradient ``w`` (broadcast to ``z.shape``), Hessian-vector product 0.

    Parameters
    ----------
    weights : array_like
        Finite; broadcastable to the event shape (``(d,)`` or ``(d, K)``).
    """

    def __init__(self, weights):
        arr = _check_finite_parameter(as_float_array(weights, "weights", copy=True), "weights")
        arr.setflags(write=False)
        self.weights = arr
        self.name = f"Linear(weights={np.array2string(arr, precision=4)})"

    def _check_event(self, z):
        _event_broadcast_check(self.weights, "weights", self, z)

    def _value(self, z):
        # Σ w z left to right: the row function of the fused kernels
        return _row_values(OBJECTIVE_LINEAR, self.weights, z)

    has_hvp = True

    def _flip_differences(self, b, active):
        w = np.broadcast_to(self.weights, b.shape[1:])
        if b.ndim == 2:
            return np.broadcast_to(w, b.shape)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by flip_differences
            return w[None] - _one_hot_select(b, w)[:, :, None]

    def _grad(self, z):
        return np.ascontiguousarray(np.broadcast_to(self.weights, z.shape), dtype=np.float64)

    def _hvp(self, z, v):
        return np.zeros(z.shape)


# --------------------------------------------------------------------------- table objective


@jit
def _table_hvp(values, z, v):
    """Hessian-vector product of the multilinear extension on (n, d, K) inputs -> (n, d, K).

    ``out[s, i, k] = Σ_{b: b_i = k} values[b] Σ_{j ≠ i} v[s, j, b_j] Π_{m ∉ {i, j}} z[s, m, b_m]``: the
    directional derivative along v of the factor ``Π_{m ≠ i} z[s, m, b_m]``, from prefix/suffix products
    carried with their directional derivatives (dual numbers; no division).  The Hessian is zero within a
    variable's own coordinates (the extension is affine in each variable).
    """
    n, d, K = z.shape
    size = values.shape[0]
    out = np.zeros((n, d, K))
    digits = np.zeros(d, dtype=np.int64)
    prefix = np.empty(d + 1)
    prefix_dot = np.empty(d + 1)
    suffix = np.empty(d + 1)
    suffix_dot = np.empty(d + 1)
    for s in range(n):
        for c in range(size):
            rest = c
            for i in range(d - 1, -1, -1):
                digits[i] = rest % K
                rest //= K
            prefix[0] = 1.0
            prefix_dot[0] = 0.0
            for i in range(d):
                zi = z[s, i, digits[i]]
                prefix_dot[i + 1] = prefix_dot[i] * zi + prefix[i] * v[s, i, digits[i]]
                prefix[i + 1] = prefix[i] * zi
            suffix[d] = 1.0
            suffix_dot[d] = 0.0
            for i in range(d - 1, -1, -1):
                zi = z[s, i, digits[i]]
                suffix_dot[i] = zi * suffix_dot[i + 1] + v[s, i, digits[i]] * suffix[i + 1]
                suffix[i] = zi * suffix[i + 1]
            val = values[c]
            for i in range(d):
                out[s, i, digits[i]] += val * (prefix_dot[i] * suffix[i + 1] + prefix[i] * suffix_dot[i + 1])
    return out


class Table(Objective):
    r"""An arbitrary function of the configuration, given by its table of values.

    ``values`` has shape ``(K,) * d``; ``values[b_1, …, b_d] = f(b)`` (for bits,
    ``K = 2``).  On relaxed inputs it is extended multilinearly:

    .. math::

        F(z) = \sum_b \mathrm{values}[b] \prod_i z_i^{b_i} (1 − z_i)^{1 − b_i}
        \quad\text{(bits, } z \in [0,1]^d\text{)},\qquad
        F(z) = \sum_b \mathrm{values}[b] \prod_i z_{i, b_i}
        \quad\text{(categorical, } z \in Δ_K^d\text{)},

    which agrees with ``f`` on the vertices and, for bits, equals
    ``E_{b ∼ \mathrm{Bernoulli}(z)}[f(b)]`` (for the simplex,
    ``E_{b ∼ \mathrm{Cat}(z)}[f(b)]``).  The gradient is
    ``∂F/∂z_{i,k} = Σ_{b: b_i = k} values[b] Π_{j ≠ i} z_{j, b_j}`` (for bits,
    ``∂F/∂z_i = ∂F/∂z_{i,1} − ∂F/∂z_{i,0}``), computed with prefix and suffix
    products, without division.  The Hessian-vector product
    ``(∇²F v)_{i,k} = Σ_{b: b_i = k} values[b] Σ_{j ≠ i} v_{j, b_j} Π_{m ∉ \{i, j\}} z_{m, b_m}``
    has no terms within one variable (F is affine in each variable); for bits it is
    taken through ``z ↦ (1 − z, z)``: ``(∇²F v)_i = H_{i,1} − H_{i,0}`` with ``H`` the
    simplex product applied to ``(−v, v)``.  Cost per non-vertex row: ``O(d K^d)``; vertices
    (discrete inputs) are looked up directly in ``O(d K)``.

    Parameters
    ----------
    values : array_like, shape (K,) * d
        Finite, ``d ≥ 1``, ``K ≥ 2``.
    name : str, optional
        Shown in error messages.
    """

    def __init__(self, values, name=None):
        arr = as_float_array(values, "values", copy=True)
        if arr.ndim < 1 or arr.shape[0] < 2 or any(s != arr.shape[0] for s in arr.shape):
            raise ValueError(
                f"values must have shape (K,)*d with d >= 1 and K >= 2 (values[b_1, ..., b_d] = f(b)); "
                f"got shape {arr.shape}"
            )
        if not np.isfinite(arr).all():
            bad = first_index(~np.isfinite(arr))
            raise ValueError(f"values must be finite; got {float(arr[bad])!r} at index {bad}")
        arr.setflags(write=False)
        self.values = arr
        self._flat = np.ascontiguousarray(arr.reshape(-1))
        self.d = arr.ndim
        self.K = arr.shape[0]
        self.name = name if name is not None else f"Table(d={self.d}, K={self.K})"

    @classmethod
    def from_function(cls, dist, fn, name=None):
        """Tabulate ``fn`` on every configuration of ``dist`` (``dist.enumerate()`` order).

        Parameters
        ----------
        dist : Bernoulli, Categorical or GaussianThreshold
            Supplies the configurations (``support_size`` must be at most the
            enumeration limit).
        fn : Objective or callable
            Evaluated once on the batch of all configurations.
        """
        if not hasattr(dist, "enumerate") or not hasattr(dist, "event_shape"):
            raise ValueError(f"dist must be a refgrad distribution; got {describe(dist)}")
        size = dist.support_size
        if size > ENUMERATION_LIMIT:
            raise ValueError(
                f"cannot tabulate a function on {size} configurations: the limit is {ENUMERATION_LIMIT}"
            )
        obj = as_objective(fn)
        configs, _ = dist.enumerate()
        vals = obj.value(configs)
        event = tuple(dist.event_shape)
        d = event[0]
        K = event[1] if len(event) == 2 else 2
        table_name = name if name is not None else f"Table.from_function({obj.name})"
        return cls(vals.reshape((K,) * d), name=table_name)

    def _check_event(self, z):
        if z.ndim == 2:
            if self.K != 2 or z.shape[1] != self.d:
                raise ValueError(
                    f"z of shape {z.shape} does not fit objective {self.name!r}: bit inputs (n, d) need d = {self.d} "
                    f"and K = 2 (this table has K = {self.K}; pass (n, {self.d}, {self.K}) inputs)"
                )
        elif z.shape[1:] != (self.d, self.K):
            raise ValueError(
                f"z of shape {z.shape} does not fit objective {self.name!r}: expected (n, {self.d}, {self.K})"
            )

    @staticmethod
    def _as_simplex(z):
        if z.ndim == 3:
            return z
        return np.ascontiguousarray(np.stack([1.0 - z, z], axis=-1))

    def _value(self, z):
        return _table_value(self._flat, self._as_simplex(z))

    def _flip_differences(self, b, active):
        K, d = self.K, self.d
        digits = b.astype(np.int64) if b.ndim == 2 else np.argmax(b, axis=2)
        strides = K ** np.arange(d - 1, -1, -1, dtype=np.int64)
        index = digits @ strides  # (n,) index of each configuration, first variable most significant
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by flip_differences
            if b.ndim == 2:
                one = index[:, None] + (1 - digits) * strides[None]
                zero = index[:, None] - digits * strides[None]
                return self._flat[one] - self._flat[zero]
            moved = index[:, None, None] + (np.arange(K)[None, None, :] - digits[:, :, None]) * strides[None, :, None]
            return self._flat[moved] - self._flat[index][:, None, None]

    has_hvp = True

    def _grad(self, z):
        g = _table_grad(self._flat, self._as_simplex(z))
        if z.ndim == 3:
            return g
        return g[:, :, 1] - g[:, :, 0]

    def _hvp(self, z, v):
        if z.ndim == 3:
            return _table_hvp(self._flat, z, np.ascontiguousarray(v))
        h = _table_hvp(self._flat, self._as_simplex(z), np.ascontiguousarray(np.stack([-v, v], axis=-1)))
        return h[:, :, 1] - h[:, :, 0]


# --------------------------------------------------------------------------- separable objective


class Separable(Objective):
    r"""A sum of per-variable terms, ``f(z) = Σ_j f_j(z_j)``.

    ``z_j`` is variable ``j``'s entry of a row: a bit or relaxed bit (``z[:, j]``) or
    a one-hot row or point of the simplex (``z[:, j, :]``).  Each term is evaluated on
    the one-variable slice ``z[:, j:j+1]`` (shape ``(n, 1)`` or ``(n, 1, K)``), so a
    term is any objective of a single variable; the gradient is the concatenation
    of the terms' gradients and the Hessian is block diagonal.

    For objectives of this form every estimator in the catalog that treats the
    variables through per-variable noise has exact moments that decompose into
    integrals over one variable's noise, so :func:`refgrad.exact.moments` computes
    them at any dimension (method ``"separable"`` of :func:`refgrad.exact.moments`).
    :class:`SquaredDistance`, :class:`Linear` and additive :class:`Table` objectives
    are decomposed the same way without being rewritten.

    Parameters
    ----------
    terms : array_like of shape (d, K), or sequence of d objectives or callables
        An array: per-variable tables, ``terms[j, k] = f_j(k)`` (for bits ``K = 2``,
        ``terms[j] = (f_j(0), f_j(1))``), extended to relaxed inputs as
        :class:`Table` extends a one-variable table (affinely).  A sequence: one
        objective (or callable, wrapped by :func:`as_objective`) per variable,
        receiving ``(n, 1)`` or ``(n, 1, K)`` inputs.
    name : str, optional
        Shown in error messages.

    Examples
    --------
    >>> import numpy as np
    >>> from refgrad.objectives import Separable, SquaredDistance
    >>> f = Separable([SquaredDistance(0.1), SquaredDistance(0.9)])
    >>> f(np.array([[1.0, 0.0]]))
    array([1.62])
    """

    def __init__(self, terms, name=None):
        if isinstance(terms, (Objective,)) or callable(terms):
            raise ValueError("terms must be an array of shape (d, K) or a sequence of d objectives or callables "
                             f"(one per variable); got the single objective {describe(terms)}")
        if isinstance(terms, np.ndarray) or (isinstance(terms, (list, tuple)) and terms
                                             and not any(callable(t) for t in terms)):
            arr = as_float_array(terms, "terms", copy=True)
            if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 2:
                raise ValueError(f"terms given as an array must have shape (d, K) with d >= 1 and K >= 2 "
                                 f"(terms[j, k] = f_j(k)); got shape {arr.shape}")
            if not np.isfinite(arr).all():
                bad = first_index(~np.isfinite(arr))
                raise ValueError(f"terms must be finite; got {float(arr[bad])!r} at index {bad}")
            self.tables = arr
            self.terms = tuple(Table(arr[j], name=f"term {j}") for j in range(arr.shape[0]))
            self.K = arr.shape[1]
        else:
            if not isinstance(terms, (list, tuple)) or len(terms) == 0:
                raise ValueError(f"terms must be an array of shape (d, K) or a non-empty sequence of objectives or "
                                 f"callables; got {describe(terms)}")
            for j, t in enumerate(terms):
                if not (isinstance(t, Objective) or callable(t)):
                    raise ValueError(f"terms[{j}] must be a refgrad Objective or a callable f_j(z_j) -> (n,); "
                                     f"got {describe(t)}")
            self.tables = None
            self.terms = tuple(as_objective(t) for t in terms)
            self.K = None
        self.d = len(self.terms)
        self.differentiable = all(t.differentiable for t in self.terms)
        self.relaxed_ok = all(t.relaxed_ok for t in self.terms)
        self.has_hvp = all(t.has_hvp for t in self.terms)
        self.name = name if name is not None else f"Separable(d={self.d})"

    def _check_event(self, z):
        if z.shape[1] != self.d:
            raise ValueError(f"z of shape {z.shape} does not fit objective {self.name!r}: it has {self.d} terms, "
                             f"one per variable (z.shape[1] must be {self.d})")
        if self.K is not None and z.ndim == 3 and z.shape[2] != self.K:
            raise ValueError(f"z of shape {z.shape} does not fit objective {self.name!r}: its tables have "
                             f"K = {self.K} categories")
        if self.K is not None and z.ndim == 2 and self.K != 2:
            raise ValueError(f"z of shape {z.shape} does not fit objective {self.name!r}: bit inputs need tables "
                             f"with K = 2 (these have K = {self.K})")

    def _slice(self, z, j):
        return np.ascontiguousarray(z[:, j:j + 1])

    def _value(self, z):
        out = np.zeros(z.shape[0])
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by the output check
            for j, t in enumerate(self.terms):
                out = out + t.value(self._slice(z, j))
        return out

    def _grad(self, z):
        return np.concatenate([t.grad(self._slice(z, j)) for j, t in enumerate(self.terms)], axis=1)

    def _hvp(self, z, v):
        return np.concatenate([t.hvp(self._slice(z, j), self._slice(v, j)) for j, t in enumerate(self.terms)],
                              axis=1)


# --------------------------------------------------------------------------- callables


class FunctionObjective(Objective):
    """An objective from plain callables.

    The callables receive a whole batch ``z``, float64: bits of shape ``(n, d)``
    (Bernoulli, GaussianThreshold), or **one-hot rows** of shape ``(n, d, K)``
    (Categorical: ``z[s, i, k] = 1.0`` where variable ``i`` of sample ``s`` takes
    category ``k``), and points of ``[0, 1]`` or of the simplex where an estimator
    relaxes the sample.  Code written for integer category indices fails on that
    input; an ``IndexError`` or ``TypeError`` raised inside a callable is re-raised
    as a ``ValueError`` (chained to the original) that says so.

    Parameters
    ----------
    value_fn : callable
        ``value_fn(z) -> (n,)`` for ``z`` of shape ``(n, d)`` or ``(n, d, K)``.
    grad_fn : callable, optional
        ``grad_fn(z) -> z.shape``, ``∂ value_fn / ∂ z`` row by row.  Without it
        :meth:`grad` raises ``ValueError`` (estimators that need ``∂f/∂z`` refuse).
    hvp_fn : callable, optional
        ``hvp_fn(z, v) -> z.shape``, the Hessian-vector product ``∇²f(z) v`` row by
        row.  Without it :meth:`hvp` raises ``ValueError``.
    name : str, optional
        Shown in error messages; defaults to the callable's ``__name__``.
    relaxed_ok : bool
        Whether ``value_fn`` is meaningful on relaxed (non-vertex) inputs.
    """

    def __init__(self, value_fn, grad_fn=None, name=None, relaxed_ok=True, hvp_fn=None):
        if not callable(value_fn):
            raise ValueError(f"value_fn must be callable; got {describe(value_fn)}")
        if grad_fn is not None and not callable(grad_fn):
            raise ValueError(f"grad_fn must be callable or None; got {describe(grad_fn)}")
        if hvp_fn is not None and not callable(hvp_fn):
            raise ValueError(f"hvp_fn must be callable or None; got {describe(hvp_fn)}")
        self.value_fn = value_fn
        self.grad_fn = grad_fn
        self.hvp_fn = hvp_fn
        self.differentiable = grad_fn is not None
        self.has_hvp = hvp_fn is not None
        self.relaxed_ok = bool(relaxed_ok)
        self.name = name if name is not None else getattr(value_fn, "__name__", None) or describe(value_fn)

    def _value(self, z):
        return self._call(self.value_fn, "value_fn", z)

    def _grad(self, z):
        return self._call(self.grad_fn, "grad_fn", z)

    def _hvp(self, z, v):
        return self._call(self.hvp_fn, "hvp_fn", z, v)

    def _call(self, fn, what, z, *rest):
        """``fn(z, *rest)``, with an IndexError or TypeError inside it re-raised as a ValueError (chained).

        The message states the input convention, the usual cause being code written for integer category indices.
        """
        try:
            return fn(z, *rest)
        except (IndexError, TypeError) as exc:
            raise ValueError(_convention_message(self.name, what, z, exc)) from exc


def _convention_message(name, what, z, exc):
    """Why a user's function may have failed on refgrad's input ``z``."""
    if z.ndim == 3:
        n, d, k = z.shape
        form = (f"a float64 array of shape (n, d, K) = {z.shape}: one one-hot row of K = {k} entries per "
                f"variable for discrete samples (z[s, i, k] = 1.0 where variable i takes category k), or a "
                "point of the probability simplex for relaxed estimators -- not integer category indices; "
                "to index a table use c = z.argmax(-1) (discrete samples only) or write f as a sum over "
                "the one-hot entries, e.g. (z * weights).sum((1, 2))")
    else:
        form = (f"a float64 array of shape (n, d) = {z.shape}: bits 0.0/1.0 for discrete samples, values in "
                "[0, 1] for relaxed estimators -- not integers; to index with the bits use "
                "z.astype(int) (discrete samples only)")
    return (f"objective {name!r}: {what} raised {type(exc).__name__} ({exc}) on its input, which is {form}. "
            "Objectives evaluate a whole batch at once and return shape (n,)")


def as_objective(f):
    """``f`` itself if it is an :class:`Objective`; a plain callable is wrapped in :class:`FunctionObjective`."""
    if isinstance(f, Objective):
        return f
    if callable(f):
        return FunctionObjective(f)
    raise ValueError(f"f must be a refgrad Objective or a callable f(z) -> (n,); got {describe(f)}")


def evaluate(f, z):
    """``as_objective(f).value(z)``: checked values, shape ``(n,)``."""
    return as_objective(f).value(z)


def evaluate_grad(f, z):
    """``as_objective(f).grad(z)``: checked gradient, shape ``z.shape``."""
    return as_objective(f).grad(z)


def evaluate_hvp(f, z, v):
    """``as_objective(f).hvp(z, v)``: checked Hessian-vector product, shape ``z.shape``."""
    return as_objective(f).hvp(z, v)


def objective_row(obj, event_shape):
    """``(kind, parameters)`` of a built-in objective on events of ``event_shape``, or None.

    ``parameters`` is the target (SquaredDistance) or the weights (Linear)
    broadcast to the event shape and flattened in C order; for a Table, ``K``
    followed by the flat table of values (first variable most significant).  Subclasses and every
    other objective return None: they take the batched path.
    """
    if type(obj) is Table:
        shape = tuple(event_shape)
        if shape == (obj.d, obj.K):
            kind = _rows.OBJECTIVE_TABLE
        elif shape == (obj.d,) and obj.K == 2:
            kind = _rows.OBJECTIVE_TABLE_BITS
        else:
            return None  # the batched path reports the mismatch
        return kind, _rows.encode(kind, np.concatenate([[float(obj.K)], obj._flat]))
    if type(obj) is SquaredDistance:
        kind, par = _rows.OBJECTIVE_SQUARED_DISTANCE, obj.target
    elif type(obj) is Linear:
        kind, par = _rows.OBJECTIVE_LINEAR, obj.weights
    else:
        return None
    try:
        flat = np.ascontiguousarray(np.broadcast_to(par, tuple(event_shape)), dtype=np.float64).reshape(-1)
    except ValueError:
        return None  # the batched path reports the shape mismatch with its own message
    return kind, _rows.encode(kind, flat)
