"""Golden noise streams: the first uniforms and estimates of every estimator, pinned.

For a fixed seed (:data:`SEED`) and every (estimator, supported family, option
set pinned in ``tests/estimator_options.py``) in :data:`CASES`, this test pins

* the noise stream ``refgrad.ESTIMATORS[name].draw_noise(dist, N, rng=SEED, **options)``:
  the first values of each field **exactly** (stored as ``float.hex``) and a
  SHA-256 digest of the whole field (shape, dtype and bytes), and
* the estimates ``refgrad.estimate(name, dist, f, N, rng=SEED, **options)`` to a
  relative tolerance of 1e-12 (absolute 1e-12 for entries at rounding level;
  accuracy fixes may move the last bits of an estimate, they must not change
  which uniforms it is computed from).

A change of stream (a different draw order, another uniform map, a changed
noise layout) fails here, so it can only happen on purpose.  The pinned values
live in ``tests/golden_streams.json``.  To change them deliberately, run::

    PYTHONPATH=tests python tests/estimators/test_golden.py --regenerate

review the diff of ``tests/golden_streams.json`` and say in the commit message
why the stream changed.  ``PYTHONPATH=tests python tests/estimators/test_golden.py --add-missing`` pins only
cases that are not pinned yet (a new estimator, family or option set) and keeps
the others; ``PYTHONPATH=tests python tests/estimators/test_golden.py --check`` compares without writing
(the same as the pytest run).
"""
import hashlib
import json
import os
import sys

import numpy as np
import pytest

import refgrad
from estimator_options import GOLDEN, golden_dist, option_sets
from objective_kinds import objective_for  # tests/ is on sys.path (conftest.py; PYTHONPATH=tests as a script)
from refgrad.estimators._fused import fused_kernels
from refgrad.objectives import SquaredDistance

#: The seed of every pinned stream.
SEED = 20261201
#: Estimates per case.
N = 3
#: Leading values of each noise field stored verbatim.
HEAD = 8
#: Tolerances of the pinned estimates: relative 1e-12, and absolute 1e-12 for entries that are rounding
#: residuals of cancelling terms (the estimates are of order 1; another stream changes them at order 1).
RTOL = 1e-12
ATOL = 1e-12

GOLDEN_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden_streams.json")


def make_objective(family, name=None, options=None):
    """Squared distance to a target that differs across bits / categories (so no estimate is 0 by symmetry).

    With ``name``: the objective that estimator takes (``LogMeanExp`` of it for a multi-sample estimator).
    """
    f = SquaredDistance([0.45, 0.5] if family == "normal" else [0.45, 0.1, 0.8])
    return f if name is None else objective_for(name, f, options)


def cases():
    """Every (label, estimator, family, option builder) pinned, in a fixed order."""
    out = []
    for name in sorted(refgrad.ESTIMATORS):
        spec = refgrad.ESTIMATORS[name]
        for family in spec.families:
            for oset in option_sets(name, GOLDEN, family):
                out.append((f"{name}/{family}/{oset.label}", name, family, oset.build))
    return out


CASES = cases()


def _digest(arr):
    arr = np.ascontiguousarray(arr, dtype="<f8")
    h = hashlib.sha256()
    h.update(repr(arr.shape).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def compute(name, family, build, seed=SEED):
    """The record pinned for one case: noise heads, digests and estimates."""
    dist = golden_dist(family)
    f = make_objective(family, name, build(dist))
    noise = refgrad.ESTIMATORS[name].draw_noise(dist, N, rng=seed, **build(dist))
    fields = {}
    for key in sorted(noise):
        arr = np.asarray(noise[key])
        fields[key] = {
            "shape": list(arr.shape),
            "head": [float(x).hex() for x in arr.reshape(-1)[:HEAD]],
            "sha256": _digest(arr),
        }
    est = refgrad.estimate(name, dist, f, N, rng=seed, **build(dist))
    return {
        "noise": fields,
        "estimate": {"shape": list(est.shape), "values": [float(x).hex() for x in est.reshape(-1)]},
    }


def load_golden():
    with open(GOLDEN_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def compare(label, got, want):
    """Assert that ``got`` (from :func:`compute`) matches the pinned record ``want``."""
    assert sorted(got["noise"]) == sorted(want["noise"]), f"{label}: noise fields changed"
    for key, w in want["noise"].items():
        g = got["noise"][key]
        assert g["shape"] == w["shape"], f"{label}: noise[{key!r}] shape {g['shape']} != pinned {w['shape']}"
        assert g["head"] == w["head"], (
            f"{label}: first uniforms of noise[{key!r}] changed: "
            f"{[float.fromhex(x) for x in g['head']]} != pinned {[float.fromhex(x) for x in w['head']]}"
        )
        assert g["sha256"] == w["sha256"], f"{label}: the stream of noise[{key!r}] changed beyond its first values"
    assert got["estimate"]["shape"] == want["estimate"]["shape"], f"{label}: estimate shape changed"
    g = np.array([float.fromhex(x) for x in got["estimate"]["values"]])
    w = np.array([float.fromhex(x) for x in want["estimate"]["values"]])
    np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=f"{label}: estimate changed")


@pytest.fixture(scope="module")
def golden():
    return load_golden()


def test_every_case_is_pinned(golden):
    """The pinned file covers exactly the current catalogue (a new estimator or family must be pinned)."""
    labels = [c[0] for c in CASES]
    assert sorted(golden["cases"]) == sorted(labels), (
        "golden_streams.json does not match the estimator catalogue; missing "
        f"{sorted(set(labels) - set(golden['cases']))}, stale {sorted(set(golden['cases']) - set(labels))}; "
        "regenerate on purpose with `PYTHONPATH=tests python tests/estimators/test_golden.py --regenerate`"
    )
    assert golden["seed"] == SEED and golden["n"] == N


#: Every case on the default (fused where there is a kernel) path, and on the batched path where they differ.
VARIANTS = [pytest.param(*case, True, id=case[0]) for case in CASES] + [
    pytest.param(*case, False, id=case[0] + "/batched") for case in CASES if refgrad.ESTIMATORS[case[1]].fused
]


@pytest.mark.parametrize("label, name, family, build, fused", VARIANTS)
def test_golden_stream(golden, label, name, family, build, fused):
    want = golden["cases"].get(label)
    if want is None:
        pytest.fail(f"{label} is not pinned; regenerate with "
                    "`PYTHONPATH=tests python tests/estimators/test_golden.py --regenerate`")
    with fused_kernels(fused):
        got = compute(name, family, build)
    compare(label, got, want)


def test_golden_catches_a_changed_stream(golden):
    """The comparison is not vacuous: another seed's stream is rejected for every case."""
    for label, name, family, build in CASES:
        with pytest.raises(AssertionError):
            compare(label, compute(name, family, build, seed=SEED + 1), golden["cases"][label])


def regenerate(add_only=False):
    """Rewrite the pinned file (``add_only``: keep every pinned case, pin only the missing ones)."""
    kept = load_golden()["cases"] if add_only else {}
    data = {
        "description": "Pinned noise streams and estimates; see tests/estimators/test_golden.py. "
        "Regenerate only on purpose: PYTHONPATH=tests python tests/estimators/test_golden.py --regenerate",
        "seed": SEED,
        "n": N,
        "cases": {label: kept[label] if label in kept else compute(name, family, build)
                  for label, name, family, build in CASES},
    }
    cases_text = ",\n".join(
        f"  {json.dumps(label)}: {json.dumps(record, sort_keys=True)}"
        for label, record in sorted(data["cases"].items())
    )
    head = {k: v for k, v in data.items() if k != "cases"}
    with open(GOLDEN_PATH, "w", encoding="utf-8") as fh:  # one case per line: reviewable diffs
        fh.write(json.dumps(head, sort_keys=True)[:-1] + ',\n "cases": {\n' + cases_text + "\n }\n}\n")
    print(f"wrote {len(CASES)} cases to {GOLDEN_PATH}")


def check():
    golden = load_golden()
    failures = 0
    for label, name, family, build in CASES:
        try:
            compare(label, compute(name, family, build), golden["cases"][label])
        except (AssertionError, KeyError) as exc:
            failures += 1
            print(f"FAIL {label}: {exc}")
    print(f"{len(CASES) - failures}/{len(CASES)} cases match")
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--regenerate"]:
        regenerate()
    elif sys.argv[1:] == ["--add-missing"]:
        regenerate(add_only=True)
    elif sys.argv[1:] in ([], ["--check"]):
        sys.exit(check())
    else:
        sys.exit("usage: PYTHONPATH=tests python tests/estimators/test_golden.py "
                 "[--regenerate | --add-missing | --check]")
