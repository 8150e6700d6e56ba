"""The hypothesis profile of the core suite (the ``impl`` fixture is in tests/conftest.py)."""

from __future__ import annotations

import os

from hypothesis import settings

# Bounded so the whole tests/core run stays well under two minutes on two cores.
settings.register_profile("ci", max_examples=200, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=40, deadline=None)
settings.register_profile("deep", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
