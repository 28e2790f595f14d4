"""Progress lines of ``python -m validation`` are honest on a cold Numba cache: no remaining-time estimate while the
worker is compiling, and afterwards the slower of the stage's average rate and its recent rate (a fake clock
drives the display; the compile seconds are those a worker sends with each step)."""
import io
import re

from validation import runner
from validation.runner import PlainDisplay, _Progress


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _feed(events):
    """``events``: (time, kind, value) for case "c", stage "s"; returns the printed lines."""
    clock, out = FakeClock(), io.StringIO()
    progress = _Progress(PlainDisplay(out, interval=5.0, clock=clock), total=1)
    for t, kind, value in events:
        clock.now = t
        progress.handle((kind, "c", "" if kind == "start" else "s", value))
    return [line.strip() for line in out.getvalue().splitlines()]


def test_no_estimate_while_compiling_then_the_slower_rate():
    """A stage of 10 steps on a cold cache: steps 1-6 in 20 s while compiling (a plain extrapolation said
    '~13 s left' here), step 7 compiles for 20 s more, then 10 s per step.  True remaining time at t = 50 (step 8):
    20 s; the plain extrapolation would say 12 s."""
    lines = _feed([(0, "start", None), (0, "begin", [10, 0.0])]
                  + [(20 * k / 6, "step", [k, 3.0 * k]) for k in range(1, 7)]  # compiling all along
                  + [(40, "step", [7, 38.0]), (50, "step", [8, 38.0]), (60, "step", [9, 38.0])])
    by_step = {int(m.group(1)): line for line in lines if (m := re.search(r"s (\d+)/10", line))}
    assert by_step[6] == "c: s 6/10, 20 s elapsed, compiling (cold Numba cache): no estimate yet"
    assert by_step[7] == "c: s 7/10, 40 s elapsed, compiling (cold Numba cache): no estimate yet"
    assert by_step[8] == "c: s 8/10, 50 s elapsed, ~20 s left"  # recent rate: 10 s/step; average: 6.25
    assert by_step[9] == "c: s 9/10, 60 s elapsed, ~10 s left"


def test_a_warm_cache_keeps_the_average_rate_estimate():
    lines = _feed([(0, "start", None), (0, "begin", [10, 0.0])]
                  + [(2.0 * k, "step", [k, 0.0]) for k in range(1, 10)])
    assert "c: s 3/10, 6 s elapsed, ~14 s left" in lines
    assert "c: s 6/10, 12 s elapsed, ~8 s left" in lines


def test_old_style_messages_without_compile_seconds_still_work():
    lines = _feed([(0, "start", None), (0, "begin", 4), (6, "step", 2)])
    assert "c: s 2/4, 6 s elapsed, ~6 s left" in lines


def test_a_worker_reports_numba_compile_seconds():
    import numba

    before = runner._compile_seconds()

    @numba.njit(cache=False)
    def fresh(x):  # a new function: compiled now, not loaded from a cache
        return x * 2.5 + 1.0

    assert fresh(2.0) == 6.0
    assert runner._compile_seconds() > before
    sent = []

    class Sink:
        def put(self, msg):
            sent.append(msg)

    sender = runner._Sender(Sink(), "c")
    sender.begin(None, "s", 3)
    assert sent[-1][:3] == ("begin", "c", "s") and sent[-1][3][0] == 3 and sent[-1][3][1] >= before
