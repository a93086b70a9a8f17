"""Shared test configuration.

Hypothesis draws the same examples on every run (``derandomize``), so the suite passes or
fails the same way on a laptop and in CI. To explore new random examples, run with
``HYPOTHESIS_PROFILE=explore``.
"""

import os

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
