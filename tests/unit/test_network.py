"""Every outgoing connection passes the configured guard (the test bed's route guard here)."""

import pytest
from django.conf import settings

from core.network import ConnectionRefused, check_destination


def test_the_test_environment_switches_the_guard_on():
    assert settings.CONNECTION_GUARD == "tools.testbed.guard.assert_test_route"


def test_guard_allows_loopback_and_refuses_an_outside_address():
    assert check_destination("127.0.0.1", 22) == "127.0.0.1"
    assert check_destination("localhost", 22) in {"127.0.0.1", "::1"}
    with pytest.raises(ConnectionRefused, match="refused by the network guard"):
        check_destination("192.0.2.10", 22)


def test_unresolvable_host_name_is_a_clear_error():
    with pytest.raises(ConnectionRefused, match="cannot resolve host name"):
        check_destination("no-such-host.invalid", 22)
