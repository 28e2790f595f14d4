"""The robustness sweep's table: every case, with its id, and the cases known to fail.

``CASES`` is the declarative table (public function, argument, input class,
how the bad input is built, which argument the error must name, or the
reference a legal input must equal).  ``test_sweep.py`` runs it under pytest,
``make_robustness.py`` runs it directly and writes ``docs/robustness.md``.

``KNOWN_FAILURES`` maps case ids to the reason they fail today; their tests are
marked ``xfail(strict=True)``, so a fix turns them into an unexpected pass that
fails the run until the entry is removed here.
"""
from collections import Counter

from sweep_cases_api import api_cases
from sweep_cases_core import core_cases
from sweep_cases_extreme import extreme_cases
from sweep_cases_issue20 import issue20_cases

#: Case id -> reason (issues 8 and 20).  Maintained by hand from the sweep's output.
KNOWN_FAILURES = {}


def _assign_ids(cases):
    seen = Counter()
    for case in cases:
        base = f"{case.func}:{case.arg}:{case.cls}"
        seen[base] += 1
        case.id = base if seen[base] == 1 else f"{base}#{seen[base]}"
    return cases


CASES = _assign_ids(core_cases() + api_cases() + extreme_cases() + issue20_cases())
CASES_BY_ID = {case.id: case for case in CASES}
for _id, _reason in KNOWN_FAILURES.items():
    CASES_BY_ID[_id].xfail = _reason
