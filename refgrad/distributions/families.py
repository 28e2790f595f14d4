"""The families Bernoulli, Categorical, GaussianThreshold and the continuous Normal (:mod:`refgrad.distributions`)."""
import numpy as np
from scipy import special

from .._core.checks import (
    as_float_array,
    check_count,
    check_finite,
    check_no_nan,
    check_sample_count,
    describe,
    first_index,
    outside_unit_index,
)
from ..random import as_generator, categorical_gumbel_max, conditional_gumbel, gumbel, logistic, normal, uniform
from ..relaxations import sigmoid_tau, sigmoid_tau_vjp, softmax_tau, softmax_tau_vjp

__all__ = ["Bernoulli", "Categorical", "GaussianThreshold", "Normal", "ENUMERATION_LIMIT"]

#: Largest number of configurations :meth:`enumerate` (and the exact oracles) will visit.
ENUMERATION_LIMIT = 2**22


_SQRT_2PI = np.sqrt(2.0 * np.pi)
_SQRT_HALF_PI = np.sqrt(0.5 * np.pi)
_SQRT_2 = np.sqrt(2.0)


def _log_sigmoid(x):
    """log σ(x) = −log1p(exp(−x)) (as −logaddexp(0, −x)) for arrays, exact for ±inf, no overflow."""
    return -np.logaddexp(0.0, -x)


def _exp_difference(a, b):
    """``exp(a − b)`` with the rounding error of ``a − b`` corrected to first order.

    ``a − b`` is rounded with an absolute error up to ``|a − b| eps/2``, which ``exp`` turns into a relative
    error up to ~4e-14 at ``|a − b| ≈ 700``; the error term ``e`` of the two-sum ``a − b = s + e`` restores a
    relative error of a few ulps: ``exp(s)(1 + e)``.  Infinite differences give 0 or inf.
    """
    with np.errstate(invalid="ignore"):
        s = a - b
        t = s - a
        err = (a - (s - t)) + (-b - t)
    err = np.where(np.isfinite(err), err, 0.0)
    with np.errstate(over="ignore"):
        return np.exp(s) * (1.0 + err)


def _normal_pdf(x):
    """φ(x) = exp(−x²/2)/√(2π), relative error a few ulps: ``x²`` is split exactly (Dekker 1971).

    ``fl(x²)`` alone carries an absolute error up to ``x² eps/2`` (5e-11 at x = 700, 2e-13 relative in φ
    near the underflow threshold |x| ≈ 38).  Beyond |x| = 40, φ underflows to 0.
    """
    ax = np.abs(np.asarray(x, dtype=np.float64))
    far = ~(ax <= 40.0)  # also ±inf
    ax = np.where(far, 0.0, ax)
    split = 134217729.0 * ax  # 2**27 + 1
    hi = split - (split - ax)
    lo = ax - hi
    sq = ax * ax
    err = ((hi * hi - sq) + 2.0 * hi * lo) + lo * lo  # x² = sq + err exactly
    return np.where(far, 0.0, np.exp(-0.5 * sq) * (1.0 - 0.5 * err) / _SQRT_2PI)


def _pdf_over_cdf(x):
    r"""φ(x)/Φ(x) to a few ulps for every x: 0 at +inf, +inf at −inf.

    For x < 0 (where Φ is small) :math:`φ(x)/Φ(x) = 1/(\sqrt{π/2}\,\mathrm{erfcx}(−x/\sqrt2))`
    (from Φ(x) = ½ erfcx(−x/√2) e^{−x²/2}), with no exponentials to cancel; for x ≥ 0, φ(x)/Φ(x) with
    Φ(x) ≥ 1/2.  (``exp(log φ − log Φ)`` loses ``x² eps`` relative: 5e-11 at |x| = 700.)
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        negative = 1.0 / (_SQRT_HALF_PI * special.erfcx(-x / _SQRT_2))
        positive = _normal_pdf(x) / special.ndtr(x)
    return np.where(x < 0.0, negative, positive)


def _normal_cdf(x):
    """Φ(x) to a few ulps relative: ``φ(x) √(π/2) erfcx(−x/√2)`` for x < −1, ``scipy.special.ndtr`` elsewhere.

    ``ndtr(x) = erfc(−x/√2)/2`` amplifies the rounding of ``x/√2`` by ``x²`` in the lower tail (5.7e-14
    relative at x = −30); erfcx is well conditioned and φ is computed from the exact square (:func:`_normal_pdf`).
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        tail = _normal_pdf(x) * _SQRT_HALF_PI * special.erfcx(-x / _SQRT_2)
    return np.where(x < -1.0, np.where(np.isneginf(x), 0.0, tail), special.ndtr(x))


def _first_where(arr, bad):
    """``"<value> at index <index>"`` of the first ``True`` entry of ``bad`` (for error messages)."""
    where = first_index(bad)
    return f"{float(arr[where])!r} at index {where}"


def _check_bits(b, name, d):
    arr = as_float_array(b, name, allow_bool=True)  # bits as booleans are legitimate 0/1 data
    if arr.ndim == 1 and d is not None and arr.shape == (d,):
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != d:
        raise ValueError(f"{name} must have shape (n, {d}) with entries in {{0, 1}}; got shape {arr.shape}")
    bad = (arr != 0.0) & (arr != 1.0)
    if bad.any():
        raise ValueError(
            f"{name} must contain only 0 and 1 (discrete configurations); got {_first_where(arr, bad)}"
        )
    return arr


def _check_uniforms(u, d):
    """Uniforms of shape (n, d) strictly inside (0, 1)."""
    u = as_float_array(u, "u", ndim=2)
    if u.shape[1] != d:
        raise ValueError(f"u must have shape (n, {d}) with entries strictly inside (0, 1); got shape {u.shape}")
    where = outside_unit_index(u)
    if where is not None:
        raise ValueError(f"u must contain uniforms strictly inside (0, 1); got {float(u[where])!r} at index {where}")
    return u


class _ProductDistribution:
    """Shared logic: sampling size checks, enumeration by index ranges."""

    family = None
    _radix = 2

    def __repr__(self):
        return f"{type(self).__name__}({self._param_name}={np.array2string(self.params, precision=4)})"

    @property
    def d(self):
        """Number of independent variables."""
        return self.params.shape[0]

    @property
    def param_shape(self):
        """Shape of the parameters and of one gradient estimate."""
        return self.params.shape

    @property
    def support_size(self):
        """Number of configurations, ``radix ** d`` (a Python int, never overflows)."""
        return self._radix ** self.d

    def sample(self, n, rng=None):
        """Draw ``n`` independent configurations.

        Parameters
        ----------
        n : int
            Number of samples, ``n ≥ 1``.
        rng : None, int or numpy.random.Generator
            Randomness, following SPEC 7.

        Returns
        -------
        ndarray
            Shape ``(n, *event_shape)``, float64 (bits, or one-hot rows).
        """
        # uniforms and samples, float64 each: refuse n whose arrays would not fit, naming n
        n = check_sample_count(n, 16 * int(np.prod(self._noise_shape)))
        gen = as_generator(rng)
        return self.from_uniforms(uniform(gen, (n,) + self._noise_shape))

    def _index_range(self, start, stop, limit):
        size = self.support_size
        if isinstance(start, (bool, np.bool_)) or not isinstance(start, (int, np.integer)) or not 0 <= start <= size:
            raise ValueError(f"start must be an integer in [0, {size}]; got {describe(start)}")
        if stop is None:
            stop = size
        if isinstance(stop, (bool, np.bool_)) or not isinstance(stop, (int, np.integer)) or not start <= stop <= size:
            raise ValueError(f"stop must be an integer in [start={start}, {size}]; got {describe(stop)}")
        if stop - start > limit:
            raise ValueError(
                f"cannot enumerate {stop - start} configurations at once: the limit is {limit} "
                f"(support size {size} = {self._support_formula()}); pass a smaller start/stop range "
                f"(refgrad.exact streams in chunks) or raise limit explicitly"
            )
        return int(start), int(stop)

    def _support_formula(self):
        """The support size as a product of powers, for messages: ``"2**5"``."""
        return f"{self._radix}**{self.d}"

    def _digits(self, start, stop):
        """Digits (m, d) of the indices [start, stop), first variable most significant."""
        idx = np.arange(start, stop, dtype=np.int64)
        if self._radix == 2:  # shifts instead of integer division (a few times faster)
            return (idx[:, None] >> np.arange(self.d - 1, -1, -1, dtype=np.int64)[None, :]) & 1
        powers = self._radix ** np.arange(self.d - 1, -1, -1, dtype=np.int64)
        return (idx[:, None] // powers[None, :]) % self._radix

    def enumerate(self, start=0, stop=None, limit=ENUMERATION_LIMIT):
        """Configurations with indices in ``[start, stop)`` and their probabilities.

        The configuration with index ``i`` is ``i`` written in base ``radix`` (2 for
        bits, K for categorical) with the **first variable as the most significant
        digit** -- the order of ``itertools.product(range(radix), repeat=d)``.

        Parameters
        ----------
        start, stop : int
            Index range, ``0 ≤ start ≤ stop ≤ support_size``; ``stop=None`` means the end.
        limit : int
            Refuse (``ValueError``) when ``stop - start`` exceeds this; defaults to
            :data:`ENUMERATION_LIMIT` (``2**22``).

        Returns
        -------
        configs : ndarray
            ``(m, *event_shape)`` float64.
        probs : ndarray
            ``(m,)`` probability of each configuration (exactly 0 where impossible): the product of the
            per-variable probabilities, so its relative error is at most about ``(d + 2)`` ulps (not
            ``|log q| eps`` as ``exp(log_prob)`` would give).
        """
        limit = check_count(limit, "limit")
        start, stop = self._index_range(start, stop, limit)
        digits = self._digits(start, stop)
        return self._configs_from_digits(digits), self._probs_of_digits(digits)


class _BitDistribution(_ProductDistribution):
    """Bits with ``log P(b_i = 1) = log_p1_i`` and ``log P(b_i = 0) = log_p0_i``."""

    @property
    def event_shape(self):
        """Shape of one sample."""
        return (self.d,)

    @property
    def _noise_shape(self):
        return (self.d,)

    def _configs_from_digits(self, digits):
        return digits.astype(np.float64)

    def _probs_of_digits(self, digits):
        p1, p0 = self._p1_p0()
        q = np.ones(digits.shape[0])
        for i in range(self.d):  # column by column: faster than prod(axis=1) over short rows
            q *= np.where(digits[:, i] == 1, p1[i], p0[i])
        return q

    def _latent_logits(self):
        """The parameters the latent ``z = φ + noise(u)`` adds its noise to: ``params``."""
        return self.params

    def _latent_dist(self):
        """The distribution whose latent the exact moments integrate over: itself."""
        return self

    def _relaxation(self, z, tau):
        """``σ_τ(z)``, the relaxation of the bits ``1[z > 0]``."""
        return sigmoid_tau(z, tau)

    def _relaxation_vjp(self, z, tau, cotangent):
        """``J_τ(z)ᵀ c`` of :meth:`_relaxation` (``J_τ`` diagonal)."""
        return sigmoid_tau_vjp(z, tau, cotangent)[0]

    def _sample_breakpoints(self):
        """Where ``b = from_uniforms(u)`` jumps: ``u_i = P(b_i = 0)``, shape ``(d, 1)``; NaN at 0 or 1 (±inf)."""
        pts = self._cut()
        pts = np.where((pts > 0.0) & (pts < 1.0), pts, np.nan)
        return pts[:, None]

    def _uniforms_for(self, config):
        """One uniform vector ``u`` (event shape) with ``from_uniforms(u) == config``: the middle of its interval."""
        cut = self._cut()
        return np.where(config == 1.0, 0.5 * (cut + 1.0), 0.5 * cut)

    def _outcome_probabilities(self):
        """Every variable's outcome probabilities side by side, ``P(b_i = 1)`` then ``P(b_i = 0)``, flat."""
        return np.concatenate([np.asarray(self.probs, dtype=float), self._cut()])

    def _flip_weights(self):
        """``(c, active)`` with ``∂L/∂φ_i = c_i E_q[f(b^{i←1}) − f(b^{i←0})]``: ``c_i = ∂P(b_i = 1)/∂φ_i``.

        ``active`` marks the variables with both values possible (only their differences are needed).
        """
        p1, p0 = self._p1_p0()
        return self._dp1(), (p1 > 0.0) & (p0 > 0.0)

    def log_prob(self, b):
        """``log q(b) = Σ_i [b_i log P(b_i=1) + (1 − b_i) log P(b_i=0)]``, shape ``(n,)``.

        ``b`` has shape ``(n, d)`` (or ``(d,)`` for one configuration) with entries in {0, 1}.
        """
        b = _check_bits(b, "b", self.d)
        log_p1, log_p0 = self._log_p1_p0()
        # np.where, not b*log_p1 + (1-b)*log_p0: 0 * (-inf) would be NaN for impossible bits.
        return np.where(b == 1.0, log_p1, log_p0).sum(axis=1)

    def score(self, b):
        """``∂ log q(b) / ∂ params``, shape ``(n, d)`` (complementary forms: see the class docstring)."""
        b = _check_bits(b, "b", self.d)
        return self._score(b)


class Bernoulli(_BitDistribution):
    r"""``d`` independent bits with logits ``ℓ``.

    .. math::  q(b) = \prod_i σ(ℓ_i)^{b_i} σ(−ℓ_i)^{1 − b_i}, \qquad
               \frac{∂ \log q(b)}{∂ ℓ_i} = b_i − σ(ℓ_i) =
               \begin{cases} σ(−ℓ_i) & b_i = 1 \\ −σ(ℓ_i) & b_i = 0. \end{cases}

    Every value is computed in its non-cancelling form, to a few ulps relative for all ℓ: the score at
    ``b_i = 1`` as ``σ(−ℓ_i)`` (not ``1 − fl(σ(ℓ_i))``, which is 0 from ℓ ≈ 37 on), ``log σ(±ℓ)`` as
    ``−log1p(exp(∓ℓ))``.

    Sampling: ``b_i = 1[ℓ_i + L_i > 0]`` with ``L_i = log u_i − log(1 − u_i)``
    standard logistic, i.e. ``b_i = 1[u_i > σ(−ℓ_i)]`` -- the noise model of REBAR
    (Tucker et al. 2017, §3).

    Parameters
    ----------
    logits : array_like, shape (d,)
        Real or ±inf (a deterministic bit); NaN is rejected.
    """

    family = "bernoulli"
    _param_name = "logits"

    def __init__(self, logits):
        arr = as_float_array(logits, "logits", ndim=1, copy=True)
        if arr.shape[0] == 0:
            raise ValueError("logits must have shape (d,) with d >= 1; got shape (0,)")
        self.logits = check_no_nan(arr, "logits")
        self.logits.setflags(write=False)

    @property
    def params(self):
        """The parameters (the logits, or ``μ`` / ``θ``), read-only."""
        return self.logits

    @property
    def probs(self):
        """``P(b_i = 1) = σ(ℓ_i)``, shape ``(d,)``."""
        return special.expit(self.logits)

    def _log_p1_p0(self):
        return _log_sigmoid(self.logits), _log_sigmoid(-self.logits)

    def _p1_p0(self):
        return special.expit(self.logits), special.expit(-self.logits)

    def _mean_and_vjp(self):
        """``E[b] = σ(ℓ)`` and the map ``g ↦ g ∂E[b]/∂ℓ``, the slope ``σ(ℓ)σ(−ℓ)`` (not ``p(1 − p)``, which cancels)."""
        slope = special.expit(self.params) * special.expit(-self.params)
        return self.probs, lambda gz: gz * slope

    def _centred(self, b):
        """``b − E[b]`` without cancellation: the score ``b − σ(ℓ)``."""
        return self.score(b)

    def _latent(self, u):
        """``z = ℓ + log u − log(1 − u)`` (logistic noise), with ``from_uniforms(u) == 1[z > 0]``."""
        return self.params[None] + logistic(u)

    def coordinate(self, j):
        """Variable ``j`` alone: ``Bernoulli(logits[j:j + 1])`` (event shape ``(1,)``)."""
        return Bernoulli(self.logits[j:j + 1])

    def _cut(self):
        """``P(b_i = 0) = σ(−ℓ_i)``, from the parameter (not ``1 − p``, which is 0 beyond ℓ ≈ 37)."""
        return special.expit(-self.logits)

    def _dp1(self):
        return special.expit(self.logits) * special.expit(-self.logits)

    def from_uniforms(self, u):
        """Bits ``1[u > σ(−ℓ)]`` (equivalently ``1[ℓ + logistic(u) > 0]``) for ``u`` of shape ``(n, d)``."""
        u = _check_uniforms(u, self.d)
        return (u > special.expit(-self.logits)).astype(np.float64)

    def _score(self, b):
        p1, p0 = self._p1_p0()
        return np.where(b == 1.0, p0, -p1)


class GaussianThreshold(_BitDistribution):
    r"""``d`` independent bits ``b_i = 1[z_i ≥ 0]`` with ``z_i ~ N(μ_i, 1)``.

    .. math::  P(b_i = 1) = Φ(μ_i), \qquad
               \frac{∂ \log q(b)}{∂ μ_i} = b_i \frac{φ(μ_i)}{Φ(μ_i)} − (1 − b_i)\frac{φ(μ_i)}{Φ(−μ_i)}.

    This is the latent-class model of the student project report "Project REBAR" (Andrzejczuk, Bielecki &
    Orłowski) (which states
    ``P(c = 1) = Φ(−θ)``; with ``c = 1[z ≥ 0]`` and ``z ~ N(θ, 1)`` the correct value is
    ``Φ(θ)``).  The ratios are computed to a few ulps relative for every μ: ``φ(μ)/Φ(μ)`` as
    ``1/(√(π/2) erfcx(−μ/√2))`` for μ < 0 and directly for μ ≥ 0 (``exp(log φ − log Φ)`` would lose
    ``μ² eps``, 5e-11 relative at |μ| = 700); ``log Φ`` is ``scipy.special.log_ndtr``.

    Parameters
    ----------
    mu : array_like, shape (d,)
        Means of the latent normals; ±inf allowed, NaN rejected.
    """

    family = "gaussian_threshold"
    _param_name = "mu"

    def __init__(self, mu):
        arr = as_float_array(mu, "mu", ndim=1, copy=True)
        if arr.shape[0] == 0:
            raise ValueError("mu must have shape (d,) with d >= 1; got shape (0,)")
        self.mu = check_no_nan(arr, "mu")
        self.mu.setflags(write=False)

    @property
    def params(self):
        """The parameters (the logits, or ``μ`` / ``θ``), read-only."""
        return self.mu

    @property
    def probs(self):
        """``P(b_i = 1) = Φ(μ_i)``, shape ``(d,)``, to a few ulps relative also in the lower tail."""
        return _normal_cdf(self.mu)

    def _log_p1_p0(self):
        return special.log_ndtr(self.mu), special.log_ndtr(-self.mu)

    def _p1_p0(self):
        return _normal_cdf(self.mu), _normal_cdf(-self.mu)

    def _mean_and_vjp(self):
        """``E[b] = Φ(μ)`` (``scipy.special.ndtr``) and the map ``g ↦ g φ(μ)``."""
        mu = self.params
        dens = np.exp(-0.5 * mu * mu) / np.sqrt(2.0 * np.pi)
        return special.ndtr(mu), lambda gz: gz * dens

    def _centred(self, b):
        """``b − E[b]`` without cancellation: ``Φ(−μ)`` where ``b = 1``, ``−Φ(μ)`` where ``b = 0``."""
        mu = self.params
        return np.where(b == 1.0, special.ndtr(-mu), -special.ndtr(mu))

    def _latent(self, u):
        """``z = μ + Φ⁻¹(u)``, with ``from_uniforms(u) == 1[z ≥ 0]``."""
        return self.params[None] + normal(u)

    def coordinate(self, j):
        """Variable ``j`` alone: ``GaussianThreshold(mu[j:j + 1])`` (event shape ``(1,)``)."""
        return GaussianThreshold(self.mu[j:j + 1])

    def _cut(self):
        """``P(b_i = 0) = Φ(−μ_i)`` (``scipy.special.ndtr``), from the parameter."""
        return special.ndtr(-self.mu)

    def _dp1(self):
        return _normal_pdf(self.mu)

    def from_uniforms(self, u):
        """Bits ``1[μ + Φ⁻¹(u) ≥ 0] = 1[u ≥ Φ(−μ)]`` for ``u`` of shape ``(n, d)``."""
        u = _check_uniforms(u, self.d)
        return (u >= special.ndtr(-self.mu)).astype(np.float64)

    def _score(self, b):
        # φ/Φ(μ) is 0 at μ = +inf (b = 1 certain) and +inf at μ = −inf (b = 1 impossible); likewise φ/Φ(−μ).
        up = _pdf_over_cdf(self.mu)
        down = _pdf_over_cdf(-self.mu)
        return np.where(b == 1.0, up, -down)


class Categorical(_ProductDistribution):
    r"""``d`` independent K-way variables with logits ``ℓ`` (shape ``(d, K)``).

    .. math::  q(b) = \prod_i \mathrm{softmax}(ℓ_i)_{b_i}, \qquad
               \frac{∂ \log q(b)}{∂ ℓ_{ik}} = b_{ik} − \mathrm{softmax}(ℓ_i)_k

    with ``b`` one-hot, shape ``(d, K)``.  Sampling is Gumbel-max,
    ``b_i = argmax_k(ℓ_{ik} + G_{ik})`` (Gumbel 1954; Maddison et al. 2014).

    Logits need not be normalised.  ``−inf`` marks an impossible category; if a row
    has ``+inf`` entries, the categories at ``+inf`` share the mass equally (the
    limit of equal, growing logits).  A row of all ``−inf`` is rejected.

    Parameters
    ----------
    logits : array_like, shape (d, K)
        Row i holds the K ≥ 2 logits of variable i; one variable is shape ``(1, K)``
        (``logits[None, :]``), never a 1-D array.
    """

    family = "categorical"
    _param_name = "logits"

    def __init__(self, logits):
        arr = as_float_array(logits, "logits", copy=True)
        if arr.ndim != 2:
            hint = (f"; for one variable write logits[None, :] (shape (1, {arr.shape[0]}))" if arr.ndim == 1
                    else "; for one variable write logits[None, :] (shape (1, K))")
            raise ValueError(
                f"logits must have shape (d, K) (d variables with K categories each); got {arr.ndim} "
                f"dimension(s), shape {arr.shape}{hint}"
            )
        if arr.shape[0] == 0 or arr.shape[1] < 2:
            raise ValueError(f"logits must have shape (d, K) with d >= 1 and K >= 2; got shape {arr.shape}")
        check_no_nan(arr, "logits")
        dead = np.all(np.isneginf(arr), axis=1)
        if dead.any():
            raise ValueError(
                f"logits row {int(np.argmax(dead))} is all -inf: every category impossible "
                "(allowed: at least one logit > -inf per row)"
            )
        self.logits = arr
        self.logits.setflags(write=False)
        self._log_probs, self._probs, self._complement = self._normalise(arr)
        for table in (self._log_probs, self._probs, self._complement):
            table.setflags(write=False)

    @staticmethod
    def _normalise(logits):
        r"""``(log p, p, 1 − p)`` per row, each to a few ulps relative.

        With ``m = ℓ_{i,k*}`` the row maximum and ``s = Σ_{j≠k*} exp(ℓ_ij − m)``:
        ``log p_ik = (ℓ_ik − m) − log1p(s)``, ``p_ik = exp(ℓ_ik − m)/(1 + s)`` and
        ``1 − p_ik = Σ_{j≠k} p_ij`` (a sum of positive terms; ``1 − fl(p_ik)`` would be 0 for
        ``p_ik ≈ 1``).  Rows with ``+inf`` entries share the mass equally among them.
        """
        d, K = logits.shape
        top_index = np.argmax(logits, axis=1)
        rows = np.arange(d)
        top = logits[rows, top_index][:, None]
        plus = np.isposinf(top[:, 0])
        safe = np.where(plus[:, None], 0.0, top)  # top is finite or +inf (a row of all −inf was rejected)
        with np.errstate(invalid="ignore", over="ignore"):  # rows with +inf give inf/inf; replaced below
            shifted = logits - safe
            scaled = _exp_difference(logits, safe)
            scaled[rows, top_index] = 0.0
            rest = scaled.sum(axis=1, keepdims=True)
            scaled[rows, top_index] = 1.0
            log_probs = shifted - np.log1p(rest)
            log_probs[rows, top_index] = -np.log1p(rest[:, 0])
            probs = scaled / (1.0 + rest)
        if plus.any():
            at_inf = np.isposinf(logits[plus])
            count = at_inf.sum(axis=1, keepdims=True)
            log_probs[plus] = np.where(at_inf, -np.log(count), -np.inf)
            probs[plus] = np.where(at_inf, 1.0 / count, 0.0)
        # Σ_{j≠k} p_ij from prefix and suffix sums (no subtraction)
        before = np.concatenate([np.zeros((d, 1)), np.cumsum(probs, axis=1)[:, :-1]], axis=1)
        after = np.concatenate([np.cumsum(probs[:, ::-1], axis=1)[:, ::-1][:, 1:], np.zeros((d, 1))], axis=1)
        return log_probs, probs, before + after

    @property
    def params(self):
        """The parameters (the logits, or ``μ`` / ``θ``), read-only."""
        return self.logits

    @property
    def K(self):
        """Number of categories."""
        return self.logits.shape[1]

    @property
    def _radix(self):
        return self.K

    @property
    def event_shape(self):
        """Shape of one sample."""
        return self.logits.shape

    @property
    def _noise_shape(self):
        return self.logits.shape

    @property
    def probs(self):
        """``softmax(ℓ_i)``, shape ``(d, K)``, to a few ulps relative (see :meth:`_normalise`)."""
        return self._probs.copy()

    @property
    def log_probs(self):
        """Normalised log-probabilities ``ℓ_ik − logsumexp_k ℓ_ik``, shape ``(d, K)``, to a few ulps relative.

        Computed as ``(ℓ_ik − m) − log1p(Σ_{j≠k*} exp(ℓ_ij − m))`` with ``m`` the row maximum, so the likely
        category keeps its tiny log-probability (``[[50, 0]]`` gives ``[−1.93e-22, −50]``).
        """
        return self._log_probs.copy()

    def _configs_from_digits(self, digits):
        return self.one_hot(digits, self.K)

    def _probs_of_digits(self, digits):
        q = np.ones(digits.shape[0])
        for i in range(self.d):  # column by column: faster than prod(axis=1) over short rows
            q *= self._probs[i][digits[:, i]]
        return q

    def _flip_weights(self):
        """``(c, active)`` with ``∂L/∂ℓ_ik = p_ik E_q[f(b^{i←k}) − f(b)]``: ``c = p``.

        ``active`` marks the categories with ``0 < p_ik`` and ``1 − p_ik > 0`` (elsewhere the derivative is 0).
        """
        return self._probs.copy(), (self._probs > 0.0) & (self._complement > 0.0)

    @staticmethod
    def one_hot(indices, K):
        """One-hot float64 array of shape ``indices.shape + (K,)``."""
        idx = np.asarray(indices)
        if not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"indices must be integers in [0, {K - 1}]; got {describe(indices)} of dtype {idx.dtype}")
        bad = (idx < 0) | (idx >= K)
        if bad.any():
            where = first_index(bad)
            raise ValueError(f"indices must be integers in [0, {K - 1}]; got {int(idx[where])} at index {where}")
        out = np.zeros(idx.shape + (K,), dtype=np.float64)
        np.put_along_axis(out, idx[..., None].astype(np.intp), 1.0, axis=-1)
        return out

    def _check_one_hot(self, b, name="b"):
        arr = as_float_array(b, name, allow_bool=True)  # one-hot rows as booleans are legitimate 0/1 data
        if arr.ndim == 2 and arr.shape == self.logits.shape:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[1:] != self.logits.shape:
            d, K = self.logits.shape
            raise ValueError(f"{name} must be one-hot with shape (n, {d}, {K}); got shape {arr.shape}")
        bad = (arr != 0.0) & (arr != 1.0)
        if bad.any():
            raise ValueError(f"{name} must be one-hot along its last axis (entries 0/1); got {_first_where(arr, bad)}")
        hot = arr.sum(axis=2)
        if np.any(hot != 1.0):
            where = first_index(hot != 1.0)
            raise ValueError(
                f"{name} must be one-hot along its last axis (one 1 per variable); row {where} "
                f"(sample, variable) is {arr[where].tolist()}"
            )
        return arr

    def from_uniforms(self, u):
        """One-hot Gumbel-max samples for uniforms ``u`` of shape ``(n, d, K)``."""
        return self.one_hot(categorical_gumbel_max(self.logits, u), self.K)

    @staticmethod
    def _effective_logits(logits):
        """Logits with each row holding ``+inf`` replaced by 0 on its ``+inf`` entries and ``−inf`` elsewhere.

        The limit of equal, growing logits (the convention of :mod:`refgrad.random`): the sample, the relaxation
        and its derivatives are those of the finite problem on the surviving categories, so a row with several
        ``+inf`` entries keeps its (finite) score.
        """
        lg = np.array(logits, dtype=np.float64)
        plus = np.isposinf(lg)
        rows = plus.any(axis=-1)
        if rows.any():
            lg[rows] = np.where(plus[rows], 0.0, -np.inf)
        return np.ascontiguousarray(lg)

    def _latent_logits(self):
        """The logits the latent adds its Gumbel noise to: the effective logits."""
        return self._effective_logits(self.params)

    def _latent_dist(self):
        """The distribution whose latent the exact moments integrate over: with the effective logits."""
        if not np.isposinf(self.params).any():
            return self
        return type(self)(self._effective_logits(self.params))

    def _sample_breakpoints(self):
        """The Gumbel-max regions are not axis-aligned: ``"argmax"``."""
        return "argmax"

    def _mean_and_vjp(self):
        """``E[b] = softmax(ℓ)`` and ``g ↦ p_k Σ_j p_j (g_k − g_j)`` (``p_k(g_k − ⟨p, g⟩)`` without cancellation)."""
        p = self.probs
        return p, lambda gz: p * ((gz[..., :, None] - gz[..., None, :]) * p[..., None, :]).sum(axis=-1)

    def _centred(self, b):
        """``b − E[b]`` without cancellation: the score ``b − softmax(ℓ)``."""
        return self.score(b)

    def _latent(self, u):
        """``z = ℓ_eff + G(u)`` (Gumbel noise), with ``from_uniforms(u) == onehot(argmax z)``."""
        return self._effective_logits(self.params)[None] + gumbel(u)

    def _relaxation(self, z, tau):
        """``softmax_τ(z)`` per row."""
        return softmax_tau(z, tau)

    def _relaxation_vjp(self, z, tau, cotangent):
        """``J_τ(z)ᵀ c`` of :meth:`_relaxation` (``J_τ`` symmetric)."""
        return softmax_tau_vjp(z, tau, cotangent)[0]

    def coordinate(self, j):
        """Variable ``j`` alone: ``Categorical(logits[j:j + 1])`` (event shape ``(1, K)``)."""
        return Categorical(self.logits[j:j + 1])

    def _uniforms_for(self, config):
        """One uniform array ``u`` (event shape) with ``from_uniforms(u) == config``.

        The Gumbel noise given the argmax (:func:`refgrad.random.conditional_gumbel` at ``v = 1/2``), mapped
        back to uniforms ``u = exp(−exp(−g))``; categories of probability zero get ``u = 1/2``.
        """
        return self._uniforms_given_argmax(np.argmax(config, axis=-1)[None].astype(np.int64),
                                           np.full((1,) + config.shape, 0.5))[0]

    def _uniforms_given_argmax(self, b_index, v):
        """Uniforms ``u`` (n, d, K) with ``argmax(ℓ + gumbel(u)) = b_index``, from the conditional Gumbel of ``v``."""
        logits = self.params
        ztilde = conditional_gumbel(logits, b_index, v)
        with np.errstate(invalid="ignore", over="ignore"):
            g = ztilde - logits[None]
            u = np.exp(-np.exp(-g))
        u = np.where(np.isfinite(g), u, 0.5)  # impossible categories (ℓ = −inf): any u
        return np.clip(u, np.finfo(float).tiny, 1.0 - 2.0**-53)

    def _outcome_probabilities(self):
        """Every variable's category probabilities, flat."""
        return np.asarray(self.probs, dtype=float).ravel()


    def log_prob(self, b):
        """``Σ_i log softmax(ℓ_i)_{b_i}`` for one-hot ``b`` of shape ``(n, d, K)``; returns ``(n,)``."""
        b = self._check_one_hot(b)
        return np.where(b == 1.0, self._log_probs[None], 0.0).sum(axis=(1, 2))

    def score(self, b):
        """``b − softmax(ℓ)``, shape ``(n, d, K)``: ``Σ_{j≠k} p_ij`` at the chosen category, ``−p_ik`` elsewhere."""
        b = self._check_one_hot(b)
        return np.where(b == 1.0, self._complement[None], -self._probs[None])


class Normal:
    r"""``d`` independent normals ``z_i ~ N(a_i θ_i + c_i, 1)``, differentiated in ``θ``.

    The continuous example of the lecture slides "Re-parameterization and Gumbel-max Trick" (Richard Yi Da Xu,
    University of Technology Sydney, 2018):
    ``z ~ N(aθ + b, 1)`` with
    ``f(z) = z²``, whose gradient ``∂_θ E[z²] = 2a(aθ + b)`` can be estimated by the
    score function,

    .. math::  ∂_θ \log p(z) = a (z − aθ − c),

    or by reparameterisation ``z = aθ + c + ε``, ``ε = Φ⁻¹(u)``, ``∂z/∂θ = a``.
    (The offset is called ``b`` in the seed; here ``offset`` to avoid a clash with
    the discrete samples ``b`` elsewhere.)

    Parameters
    ----------
    theta : array_like, shape (d,)
        Finite.
    scale : float or array_like (d,), default 1.0
        The seed's ``a``; finite.
    offset : float or array_like (d,), default 0.0
        The seed's ``b``; finite.
    """

    family = "normal"

    def __init__(self, theta, scale=1.0, offset=0.0):

        th = check_finite(as_float_array(theta, "theta", ndim=1, copy=True), "theta")
        if th.shape[0] == 0:
            raise ValueError("theta must have shape (d,) with d >= 1; got shape (0,)")
        d = th.shape[0]

        def vec(x, name):
            arr = check_finite(as_float_array(x, name, ndim=(0, 1)), name)
            if arr.ndim == 1 and arr.shape != (d,):
                raise ValueError(f"{name} must be a scalar or have shape ({d},); got shape {arr.shape}")
            return np.broadcast_to(arr, (d,)).copy()

        self.theta = th
        self.scale = vec(scale, "scale")
        self.offset = vec(offset, "offset")
        for arr in (self.theta, self.scale, self.offset):
            arr.setflags(write=False)

    def __repr__(self):
        return f"Normal(theta={self.theta}, scale={self.scale}, offset={self.offset})"

    @property
    def params(self):
        """The parameters (the logits, or ``μ`` / ``θ``), read-only."""
        return self.theta

    @property
    def d(self):
        """Number of variables."""
        return self.theta.shape[0]

    @property
    def param_shape(self):
        """Shape of :attr:`params`."""
        return self.theta.shape

    @property
    def event_shape(self):
        """Shape of one sample."""
        return self.theta.shape

    @property
    def mean(self):
        """``aθ + c``, shape ``(d,)``."""
        return self.scale * self.theta + self.offset

    def coordinate(self, j):
        """Variable ``j`` alone: ``Normal(theta[j:j + 1], scale[j:j + 1], offset[j:j + 1])``."""
        return Normal(self.theta[j:j + 1], self.scale[j:j + 1], self.offset[j:j + 1])

    def from_uniforms(self, u):
        """``z = aθ + c + Φ⁻¹(u)`` for ``u`` of shape ``(n, d)``."""
        u = _check_uniforms(u, self.d)
        return self.mean[None] + special.ndtri(u)

    def sample(self, n, rng=None):
        """``n`` draws, shape ``(n, d)``."""
        n = check_sample_count(n, 16 * self.d)
        return self.from_uniforms(uniform(as_generator(rng), (n, self.d)))

    def _check_z(self, z):
        z = as_float_array(z, "z")
        if z.ndim == 1 and z.shape == (self.d,):
            z = z[None]
        if z.ndim != 2 or z.shape[1] != self.d:
            raise ValueError(f"z must have shape (n, {self.d}); got shape {z.shape}")
        return check_finite(z, "z")  # a normal sample is finite: ±inf is not in the support

    def log_prob(self, z):
        """``Σ_i log N(z_i; a_iθ_i + c_i, 1)``, shape ``(n,)``."""
        z = self._check_z(z)
        r = z - self.mean[None]
        return (-0.5 * r * r - 0.5 * np.log(2.0 * np.pi)).sum(axis=1)

    def score(self, z):
        """``∂ log p(z)/∂θ = a (z − aθ − c)``, shape ``(n, d)``."""
        z = self._check_z(z)
        return self.scale[None] * (z - self.mean[None])

    @property
    def support_size(self):
        """``np.inf``: a continuous distribution has no finite support."""
        return np.inf

    def enumerate(self, *args, **kwargs):
        """Refused: a continuous distribution cannot be enumerated (``ValueError``)."""
        raise ValueError("Normal is continuous and cannot be enumerated; use a closed form or quadrature")


# The product of heterogeneous families lives in its own module; imported last, as it builds on the classes above.
