"""Hypothesis profiles of the property tests.

``ci`` (the default) draws the same examples on every run and keeps no example database, so
``make test`` is reproducible and leaves no ``.hypothesis/`` directory in the tree.
``HYPOTHESIS_PROFILE=explore`` draws fresh random examples each run (to hunt for new bugs).
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", derandomize=False, database=None, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
