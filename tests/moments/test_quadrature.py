"""The quadrature rules behind exact.moments: known integrals, end-point singularities, exactness."""
import numpy as np
import pytest

from refgrad._moments.quadrature import (
    GAUSS_LEGENDRE_2,
    MIDPOINT,
    complement_pieces,
    gauss_legendre,
    piece_nodes,
    piece_width,
    pieces,
    tanh_sinh,
)


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


def test_complement_pieces_keep_points_next_to_one():
    # σ(±40): 1 − σ(40) = 4.2e-18 is below the spacing of doubles at 1, its complement is exact
    s = 1.0 / (1.0 + np.exp(40.0))
    segs = complement_pieces([s, 1.0 - s, np.nan], [1.0 - s, s, np.nan])
    assert len(segs) == 3
    widths = [piece_width(p) for p in segs]
    assert widths[0] == s and widths[2] == s and widths[1] == (0.5 - s) + (0.5 - s)
    # duplicates (by the accurate side) are removed; points at 0 or 1 are no break points
    assert len(complement_pieces([0.5, 0.5, 0.0, 1.0], [0.5, 0.5, 1.0, 0.0])) == 2
    with pytest.raises(ValueError, match="same size"):
        complement_pieces([0.1, 0.2], [0.9])


def test_piece_nodes_exact_near_one_and_symmetric_midpoint():
    s = 1.0 / (1.0 + np.exp(100.0))
    low, mid, high = complement_pieces([s, 1.0 - s], [1.0 - s, s])
    x, xc, w = piece_nodes(high, GAUSS_LEGENDRE_2)
    np.testing.assert_allclose(xc, s * (0.5 + np.array([0.5, -0.5]) / np.sqrt(3.0)), rtol=1e-15)
    assert np.all(x == 1.0) and np.all(w == 0.5 * s)  # x itself cannot be represented: xc carries it
    x, xc, w = piece_nodes(mid, MIDPOINT)
    assert x[0] == 0.5 and xc[0] == 0.5  # the midpoint of a symmetric piece is exactly 1/2
    x, xc, w = piece_nodes(low, GAUSS_LEGENDRE_2)
    np.testing.assert_allclose(x, s * (0.5 + np.array([-0.5, 0.5]) / np.sqrt(3.0)), rtol=1e-15)
    # the rule integrates cubics exactly on a piece given by complements
    x, xc, w = piece_nodes((0.2, 0.8, 0.7, 0.3), GAUSS_LEGENDRE_2)
    for k in range(4):
        assert abs(w @ x**k - (0.7 ** (k + 1) - 0.2 ** (k + 1)) / (k + 1)) < 1e-15
