"""The machinery of the robustness sweep: cases, input classes, outcomes, guards.

A :class:`Case` is one row of the sweep's table: a public function, the argument
that receives a hostile (or edge-of-legal) input, the input class, a hypothesis
strategy of concrete values within that class (with one canonical value), and
what must happen:

* ``expect`` names the argument: the call must raise ``ValueError`` or
  ``TypeError`` whose message contains one of the names in ``expect`` as a word;
* ``reference`` (legal input): the call must return a finite result equal to
  ``reference(value)`` (after ``project``), to ``rtol`` / ``atol``;
* both: either of the two (an input that may be refused or accepted, e.g. an
  object array of floats).

Anything else is a failure: another exception type, a NaN or inf in the result,
a warning (warnings are turned into errors during the call), a result returned
for input that must be refused, a process that dies (cases marked ``isolate``
run in a subprocess), an allocation beyond :data:`MEMORY_HEADROOM` (the address
space is capped during each call, so ``n = 10**13`` cannot exhaust the machine)
or a call running longer than :data:`CALL_TIMEOUT` seconds.

The table itself is in ``sweep_cases.py``; ``test_sweep.py`` runs it under
pytest and ``make_robustness.py`` runs it directly and writes
``docs/robustness.md``.
"""
import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import warnings
from typing import Any, Callable, Optional, Tuple

import numpy as np
from hypothesis import strategies as st

try:  # Linux / macOS
    import resource
except ImportError:  # pragma: no cover - Windows: no address-space cap
    resource = None

#: Extra address space (bytes) a single sweep call may map beyond what the process already has.
MEMORY_HEADROOM = 3 * 2**30
#: Wall-clock limit of a single sweep call, seconds (Python-level code only).
CALL_TIMEOUT = 60

#: Input classes: key -> description (the robustness document's legend).
CLASSES = {
    "legal": "legal input (checked against an independent reference)",
    "list": "nested Python list instead of an array (legal: must equal the array call)",
    "inf-legal": "±inf where it is legal (deterministic outcome)",
    "extreme": "legal values at the extremes (logits up to ±700, τ from 0.01 to 100, uniforms next to 0 and 1)",
    "0-d": "0-d array / scalar",
    "empty": "empty array (a zero-length axis)",
    "nan": "NaN entry",
    "inf": "±inf where it is illegal",
    "broadcast": "wrong shape that would broadcast",
    "shape": "wrong shape or number of dimensions",
    "ragged": "ragged nested list",
    "complex": "complex dtype",
    "bool": "bool where a float is meant",
    "str": "string (numeric or not)",
    "object": "object dtype (None or arbitrary objects)",
    "range": "value outside its allowed range",
    "tau<=0": "temperature ≤ 0",
    "tau=inf": "temperature +inf",
    "tau=nan": "temperature NaN",
    "count<=0": "count ≤ 0 (n, k, m, pilot, steps, ...)",
    "count-float": "count given as a float",
    "count-huge": "count 10**13 (must be refused before allocating)",
    "type": "wrong Python type (e.g. a string where an int or a distribution is meant)",
    "unknown-option": "unknown option name or value",
    "noise-shape": "noise of the wrong shape",
    "noise-0": "noise exactly 0",
    "noise-1": "noise exactly 1",
    "noise-list": "noise arrays given as nested lists (legal)",
    "noise-container": "noise not a dict / missing or extra keys / NaN",
    "fn-nan": "objective returning NaN",
    "fn-shape": "objective returning the wrong shape",
    "fn-complex": "objective returning complex values",
    "fn-str": "objective returning strings",
    "fn-raises": "objective raising its own exception",
    "fn-chunks": "function whose output width changes between chunks",
    "overflow": "values whose sums overflow",
}


class ObjectiveFailure(Exception):
    """Raised by the sweep's deliberately failing objectives; it must propagate unchanged."""


@dataclasses.dataclass
class Case:
    """One row of the sweep table (see the module docstring)."""

    func: str
    arg: str
    cls: str
    values: Any  # hypothesis strategy of concrete values
    example: Any  # the canonical value (always run first)
    call: Callable[[Any], Any]
    expect: Optional[Tuple[str, ...]] = None
    reference: Optional[Callable[[Any], Any]] = None
    project: Callable[[Any], Any] = staticmethod(lambda r: r)
    rtol: float = 1e-12
    atol: float = 0.0
    propagate: Optional[type] = None  # exception type the call may let through unchanged
    allowed_warnings: Tuple[type, ...] = ()
    isolate: bool = False  # run in a subprocess (the call may kill the process)
    note: str = ""
    xfail: Optional[str] = None  # set by sweep_cases.KNOWN_FAILURES
    id: str = ""

    def __post_init__(self):
        if self.cls not in CLASSES:
            raise ValueError(f"unknown input class {self.cls!r}")
        if self.expect is None and self.reference is None:
            raise ValueError(f"case {self.func}/{self.arg}/{self.cls} needs expect or reference")
        if isinstance(self.expect, str):
            self.expect = (self.expect,)


@dataclasses.dataclass
class Outcome:
    ok: bool
    kind: str  # "error", "value", "propagated" or "FAIL"
    detail: str

    def summary(self, width=110):
        text = " ".join(self.detail.split())
        return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------------------- guards


def _vm_bytes():
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return None


@contextlib.contextmanager
def memory_cap(headroom=MEMORY_HEADROOM):
    """Cap the address space at the current size plus ``headroom`` (Linux), restore afterwards."""
    if resource is None or _vm_bytes() is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _vm_bytes() + headroom
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class CallTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds=CALL_TIMEOUT):
    """Raise :class:`CallTimeout` in Python code running past ``seconds`` (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def handler(signum, frame):
        raise CallTimeout(f"call ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------- outcome


def names_argument(message, names):
    """Whether ``message`` contains one of ``names`` as a word (``f`` does not match ``of``)."""
    for name in names:
        pattern = r"(?<![A-Za-z0-9_])" + re.escape(name) + r"(?![A-Za-z0-9_])"
        if re.search(pattern, message):
            return True
    return False


def _describe(result, limit=80):
    if isinstance(result, np.ndarray):
        text = f"array shape {result.shape} dtype {result.dtype}: {np.array2string(result.ravel()[:4], precision=4)}"
    else:
        text = repr(result)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _leaves(x):
    """The numeric arrays inside a (possibly nested) result."""
    if isinstance(x, dict):
        for v in x.values():
            yield from _leaves(v)
    elif isinstance(x, (tuple, list)):
        for v in x:
            yield from _leaves(v)
    else:
        yield np.asarray(x)


def _check_value(case, value, result):
    """None if ``result`` is finite and equal to the reference, else the reason."""
    got = case.project(result)
    want = case.project(case.reference(value)) if case.reference is not None else None
    for leaf in _leaves(got):
        if leaf.dtype == object or not (np.issubdtype(leaf.dtype, np.number) or leaf.dtype == np.bool_):
            return f"returned a non-numeric result {_describe(leaf)}"
        if np.iscomplexobj(leaf):
            return f"returned complex values {_describe(leaf)}"
        if np.issubdtype(leaf.dtype, np.floating) and not np.isfinite(leaf).all():
            return f"returned non-finite values {_describe(leaf)}"
    got_leaves, want_leaves = list(_leaves(got)), list(_leaves(want))
    if len(got_leaves) != len(want_leaves):
        return f"returned {len(got_leaves)} arrays, reference has {len(want_leaves)}"
    for g, w in zip(got_leaves, want_leaves):
        if g.shape != w.shape:
            return f"returned shape {g.shape}, reference shape {w.shape}"
        if np.issubdtype(w.dtype, np.floating) and g.dtype != w.dtype and g.dtype != np.float64:
            return f"returned dtype {g.dtype}, reference dtype {w.dtype}"
        try:
            np.testing.assert_allclose(g, w, rtol=case.rtol, atol=case.atol)
        except AssertionError as exc:
            lines = [ln for ln in str(exc).splitlines() if ln.strip()]
            return "differs from the reference: " + "; ".join(lines[1:4])
    return None


def run_case(case, value):
    """Call ``case.call(value)`` under the guards and classify what happened."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for cat in case.allowed_warnings:
                warnings.simplefilter("ignore", cat)
            with memory_cap(), time_limit():
                result = case.call(value)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, Warning):  # pragma: no cover - defensive
            return Outcome(False, "FAIL", f"warning {type(exc).__name__}: {exc}")
        message = str(exc)
        kind = type(exc).__name__
        if case.expect is None:
            return Outcome(False, "FAIL", f"legal input refused: {kind}: {message}")
        if not names_argument(message, case.expect):
            return Outcome(False, "FAIL", f"{kind} does not name {'/'.join(case.expect)}: {message}")
        return Outcome(True, "error", f"{kind}: {message}")
    except MemoryError as exc:
        return Outcome(False, "FAIL", f"MemoryError (tried to allocate before refusing): {exc}")
    except CallTimeout as exc:
        return Outcome(False, "FAIL", f"timeout: {exc}")
    except Warning as exc:
        return Outcome(False, "FAIL", f"warning {type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - classifying every other exception is the point
        if case.propagate is not None and isinstance(exc, case.propagate):
            return Outcome(True, "propagated", f"{type(exc).__name__} propagated unchanged: {exc}")
        return Outcome(False, "FAIL", f"{type(exc).__name__}: {exc}")
    if case.reference is None:
        return Outcome(False, "FAIL", f"bad input accepted: returned {_describe(result)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for cat in case.allowed_warnings:
                warnings.simplefilter("ignore", cat)
            reason = _check_value(case, value, result)
    except Exception as exc:  # noqa: BLE001
        return Outcome(False, "FAIL", f"reference check raised {type(exc).__name__}: {exc}")
    if reason is not None:
        return Outcome(False, "FAIL", reason)
    return Outcome(True, "value", "finite, equals reference")


# ---------------------------------------------------------------------------- isolation


def run_isolated(case_id, timeout=120):
    """Run the canonical example of one case in a fresh interpreter (a crash is an outcome)."""
    here = os.path.dirname(os.path.abspath(__file__))
    code = (
        "import json, sys; sys.path.insert(0, %r)\n"
        "import sweep_cases, sweep_framework\n"
        "case = sweep_cases.CASES_BY_ID[%r]\n"
        "out = sweep_framework.run_case(case, case.example)\n"
        "print('SWEEP-OUTCOME ' + json.dumps([out.ok, out.kind, out.detail]))\n"
    ) % (here, case_id)
    env = dict(os.environ)
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return Outcome(False, "FAIL", f"subprocess ran longer than {timeout} s")
    for line in proc.stdout.splitlines():
        if line.startswith("SWEEP-OUTCOME "):
            ok, kind, detail = json.loads(line[len("SWEEP-OUTCOME "):])
            return Outcome(ok, kind, detail)
    if proc.returncode < 0:
        try:
            sig = signal.Signals(-proc.returncode).name
        except ValueError:  # pragma: no cover
            sig = str(-proc.returncode)
        return Outcome(False, "FAIL", f"the process died with signal {sig}")
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
    return Outcome(False, "FAIL", f"subprocess exited with status {proc.returncode}: {tail[0]}")


def run_canonical(case):
    """The outcome of the canonical example (in a subprocess for isolated cases)."""
    if case.isolate:
        return run_isolated(case.id)
    return run_case(case, case.example)




# ---------------------------------------------------------------------------- value strategies
#
# Each helper returns ``(strategy, canonical)``: hypothesis picks concrete values
# within the input class, the canonical value is the one the robustness document
# shows and every run tries first.



def _put(base, index, value, dtype=None):
    arr = np.array(base, dtype=dtype if dtype is not None else np.asarray(base).dtype, copy=True)
    arr.flat[index] = value
    return arr


def array_variant(base, cls):
    """A bad (or list) variant of the legal float array ``base`` in input class ``cls``."""
    base = np.asarray(base, dtype=np.float64)
    size = base.size
    index = st.integers(0, max(size - 1, 0))
    if cls == "nan":
        return index.map(lambda i: _put(base, i, np.nan)), _put(base, 0, np.nan)
    if cls == "inf":
        strat = st.tuples(index, st.sampled_from([np.inf, -np.inf])).map(lambda t: _put(base, t[0], t[1]))
        return strat, _put(base, 0, np.inf)
    if cls == "complex":
        def make(t):
            arr = base.astype(np.complex128)
            arr.flat[t[0]] += 1j * t[1]
            return arr
        return st.tuples(index, st.floats(1e-3, 1e3)).map(make), make((0, 0.5))
    if cls == "bool":
        from hypothesis.extra import numpy as hnp

        return hnp.arrays(np.bool_, base.shape), np.ones(base.shape, dtype=bool)
    if cls == "str":
        numeric = base.astype(str)
        word = np.full(base.shape, "abc")
        return st.sampled_from([numeric, word]), numeric
    if cls == "object":
        def make_obj(i):
            arr = base.astype(object)
            arr.flat[i] = None
            return arr
        return index.map(make_obj), make_obj(0)
    if cls == "empty":
        shape = (0,) + base.shape[1:] if base.ndim else (0,)
        return st.just(np.zeros(shape)), np.zeros(shape)
    if cls == "0-d":
        return st.sampled_from([np.array(base.flat[0]), float(base.flat[0])]), np.array(base.flat[0])
    if cls == "list":
        return st.just(base.tolist()), base.tolist()
    if cls == "ragged":
        if base.ndim >= 2 and base.shape[0] >= 2:
            rows = base.tolist()

            def make_ragged(i):
                out = [list(r) for r in rows]
                out[i] = out[i][:-1]
                return out
            return st.integers(0, base.shape[0] - 1).map(make_ragged), make_ragged(base.shape[0] - 1)
        flat = base.ravel().tolist() + [0.0, 0.0]
        ragged = [flat[:1], flat[1:3]]
        return st.just(ragged), ragged
    raise ValueError(cls)


def scalar_variant(cls, legal=1.0):
    """Bad scalar values (temperatures, levels, step sizes) in input class ``cls``."""
    if cls == "tau<=0":
        return st.one_of(st.sampled_from([0.0, -0.0, -1.0, -np.inf]), st.floats(max_value=0.0, allow_nan=False)), 0.0
    if cls in ("tau=inf", "inf"):
        return st.just(np.inf), np.inf
    if cls in ("tau=nan", "nan"):
        return st.sampled_from([np.nan, np.float64(np.nan)]), np.nan
    if cls == "complex":
        return st.floats(0.0, 1.0).map(lambda im: complex(legal, im)), complex(legal, 0.5)
    if cls == "bool":
        return st.sampled_from([True, False, np.True_]), True
    if cls == "str":
        return st.sampled_from([str(legal), "abc"]), str(legal)
    if cls == "shape":
        return st.integers(1, 4).map(lambda k: np.full(k, legal)), np.array([legal, legal])
    if cls == "type":
        return st.sampled_from([None, [legal], {"value": legal}]), [legal]
    raise ValueError(cls)


def count_variant(cls, legal=3):
    """Bad counts (n, k, m, pilot, steps, ...) in input class ``cls``."""
    if cls == "count<=0":
        return st.integers(-10**6, 0), 0
    if cls == "count-float":
        return st.sampled_from([float(legal), legal + 0.5, np.float64(legal)]), float(legal)
    if cls == "count-huge":
        return st.sampled_from([10**13, 2**62, 10**30]), 10**13
    if cls == "bool":
        return st.sampled_from([True, np.True_]), True
    if cls == "str":
        return st.sampled_from([str(legal), "abc"]), str(legal)
    raise ValueError(cls)
