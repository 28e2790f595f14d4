"""The quadrature rules behind exact.moments: known integrals, end-point singularities, exactness."""
import numpy as np
import pytest

from refgrad._quadrature import gauss_legendre, pieces, tanh_sinh


@pytest.mark.parametrize("fun, exact", [
    (lambda x: np.log(x), -1.0),                                   # log singularity at 0
    (lambda x: np.log(x / (1 - x)) ** 2, np.pi**2 / 3),             # logistic noise squared: both ends
    (lambda x: np.sqrt(x), 2.0 / 3.0),
    (lambda x: (-np.log(x)) ** 3, 6.0),                            # E^3 of an exponential
    (lambda x: np.exp(-x) * np.cos(3 * x), (1 - np.exp(-1) * (np.cos(3) - 3 * np.sin(3))) / 10),
])
def test_tanh_sinh_known_integrals(fun, exact):
    for level in (4, 5, 6):
        x, w = tanh_sinh(0.0, 1.0, level)
        assert np.all((x > 0) & (x < 1))
        assert abs(w @ fun(x) - exact) < 1e-11


def test_tanh_sinh_on_subintervals():
    # ∫_{0.3}^{0.8} log(x - 0.3) dx has a log singularity at the left end of the piece; nodes near
    # an interior end point are limited by ulp(0.3), which still leaves the integral at rounding level
    exact = 0.5 * np.log(0.5) - 0.5
    for level in (2, 3, 4, 5):
        x, w = tanh_sinh(0.3, 0.8, level)
        assert np.all((x > 0.3) & (x < 0.8))
        assert abs(w @ np.log(x - 0.3) - exact) < 1e-12


def test_gauss_legendre_exact_for_cubics():
    x, w = gauss_legendre(0.2, 0.7, 2)
    for k in range(4):
        assert abs(w @ x**k - (0.7 ** (k + 1) - 0.2 ** (k + 1)) / (k + 1)) < 1e-15


def test_pieces():
    assert pieces(None) == [(0.0, 1.0)]
    assert pieces([0.5, np.nan, 0.2, 0.5, 1.0, 0.0, -3]) == [(0.0, 0.2), (0.2, 0.5), (0.5, 1.0)]
