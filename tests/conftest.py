"""Suite-wide settings.

Hypothesis's per-example deadline is a timed assertion: on a loaded 2-core machine a
correct example can take longer than 200 ms, so it is off; ``max_examples`` bounds the work."""
from hypothesis import settings

settings.register_profile("pouw", deadline=None)
settings.load_profile("pouw")
