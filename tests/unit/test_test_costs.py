"""The cost markers stay true: a test that starts a service or boots test-bed machines without
its marker fails with a message saying which marker to add (tests/support/cost.py)."""

from __future__ import annotations

import pytest

from tests.support import cost
from tools.testbed.sandbox import Sandbox


@pytest.fixture
def unmarked(request):
    """The running test seen as one without markers, restored afterwards."""

    class Item:
        nodeid = "tests/unit/test_x.py::test_new"

        def get_closest_marker(self, name):
            return None

    cost.set_current(Item())
    yield
    cost.set_current(request.node)


def test_starting_a_service_unmarked_fails_and_names_the_marker(unmarked):
    with pytest.raises(pytest.fail.Exception, match=r"test_new starts Redis but is not marked `services`"):
        cost.require("services", "starts Redis")


def test_booting_test_bed_machines_unmarked_fails_before_anything_is_made(unmarked):
    with pytest.raises(pytest.fail.Exception, match=r"boots test-bed machines \(sandbox kbtbcost\).*`cluster`"):
        Sandbox(name="kbtbcost", subnet="10.213.251.0/24", size=1).up()


@pytest.mark.services
def test_a_marked_test_passes_the_check():
    cost.require("services", "starts Redis")


def test_fixtures_that_start_services_mark_the_test(request, redis_server):
    assert request.node.get_closest_marker("services") is not None
    assert request.node.get_closest_marker("cluster") is None
