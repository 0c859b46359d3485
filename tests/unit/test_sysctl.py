"""Only the sysctls a new namespace does not already hold are written."""

from __future__ import annotations

from lab.net.sysctl import beyond_defaults


def test_keys_at_their_default_are_not_written_again() -> None:
    defaults = {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0", "net.ipv4.ping_group_range": "1\t0"}
    wanted = {"net.ipv4.ip_forward": "0", "net.ipv4.conf.all.rp_filter": "0", "net.ipv4.ping_group_range": "1 0"}
    assert beyond_defaults(wanted, defaults) == {"net.ipv4.ip_forward": "0"}


def test_a_key_the_kernel_lacks_is_kept_so_that_writing_it_says_so() -> None:
    assert beyond_defaults({"net.ipv4.tcp_no_such_thing": "1"}, {}) == {"net.ipv4.tcp_no_such_thing": "1"}
