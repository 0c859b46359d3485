"""Fault construction, without root: the commands a fault runs, the commands that undo it, and bad input."""

from __future__ import annotations

import pytest

from lab.errors import InputError
from lab.net import faults

EP = faults.Endpoint("lab1", "h1", "eth0", "lab-lab1.h1", "lab-lab1._sw", "p-h1-eth0")


def test_match_words_become_iptables_arguments():
    assert faults.parse_match("tcp syn dport 80") == ["-p", "tcp", "--syn", "--dport", "80"]
    assert faults.parse_match("rst") == ["-p", "tcp", "--tcp-flags", "RST", "RST"]
    assert faults.parse_match("udp port 53 from 10.0.0.0/8") == [
        "-p", "udp", "-m", "multiport", "--ports", "53", "-s", "10.0.0.0/8"]


@pytest.mark.parametrize("text", ["udp syn", "port 80", "tcp dport 0", "tcp dport", "from example.com", "sctp"])
def test_a_bad_match_is_refused(text):
    with pytest.raises(InputError):
        faults.parse_match(text)


def test_every_iptables_rule_is_undone_by_deleting_the_same_rule():
    fault = faults.loss(EP, 25, "both", "tcp")
    assert len(fault.apply) == len(fault.undo) == 2
    for do, undo in zip(fault.apply, fault.undo, strict=True):
        at = do.index("-I")
        assert undo[:at] == do[:at] and undo[at] == "-D" and undo[at + 1:] == do[at + 1:]
        assert do[:2] == ["nsenter", "--net=/run/netns/lab-lab1.h1"]
    assert "0.250000" in fault.apply[0] and f"lab-fault-{fault.id}" in fault.apply[0]


def test_rate_goes_on_the_peer_for_incoming_traffic():
    fault = faults.rate(EP, "1mbit", "in")
    assert fault.apply[0][1] == "--net=/run/netns/lab-lab1._sw" and "p-h1-eth0" in fault.apply[0]
    with pytest.raises(InputError):
        faults.rate(EP, "fast")


def test_a_sysctl_is_undone_by_writing_the_old_value_back():
    fault = faults.sysctl("h1", "lab-lab1.h1", "net.ipv4.tcp_rmem", "4096 8192 16384", "4096\t131072\t6291456")
    assert fault.where == "h1" and fault.what == "sysctl net.ipv4.tcp_rmem=4096 8192 16384"
    assert fault.apply == [["nsenter", "--net=/run/netns/lab-lab1.h1", "sysctl", "-q", "-w",
                            "net.ipv4.tcp_rmem=4096 8192 16384"]]
    assert fault.undo == [["nsenter", "--net=/run/netns/lab-lab1.h1", "sysctl", "-q", "-w",
                           "net.ipv4.tcp_rmem=4096\t131072\t6291456"]]


@pytest.mark.parametrize("key", ["kernel.pid_max", "vm.swappiness", "fs.inotify.max_user_watches"])
def test_a_machine_wide_sysctl_is_refused(key):
    with pytest.raises(InputError, match="machine-wide"):
        faults.sysctl("h1", "lab-lab1.h1", key, "1", "0")
