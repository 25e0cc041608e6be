"""Hypothesis profiles for the MQTT tests: "fast" by default, HYPOTHESIS_PROFILE=deep to dig.

The profiles are applied per test (``mqtt_strategies.PROFILE``), not loaded globally, so other
suites' Hypothesis tests keep their own defaults when everything runs in one session.
"""

from hypothesis import HealthCheck, settings

# No example database: these tests write nothing outside their own directory.
_common = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("fast", max_examples=150, **_common)
settings.register_profile("deep", max_examples=20_000, **_common)
