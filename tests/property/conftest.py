"""Hypothesis settings of the property tests: deterministic, no example database, no deadline.

``derandomize=True`` draws the same examples on every run (CI is reproducible; a failure seen
once is seen again), ``database=None`` keeps no state between runs. Each test sets its own
``max_examples`` so that the whole property suite stays under a minute on a 2-core machine.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "theradose", derandomize=True, database=None, deadline=None, print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.load_profile("theradose")
