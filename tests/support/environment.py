"""The test environment's settings, applied before Django reads its settings.

Loaded as a pytest plugin (``-p tests.support.environment`` in pyproject.toml) so it runs
before pytest-django configures Django, and child processes (daphne, qcluster) inherit it.
"""

import os

# Every SSH and Kubernetes API connection the application makes passes the test bed's route
# guard: loopback or a sandbox bridge, nothing else (core.network).
os.environ.setdefault("KUBEBOARD_CONNECTION_GUARD", "tools.testbed.guard.assert_test_route")
