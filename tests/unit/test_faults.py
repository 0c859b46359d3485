"""Fault construction, without root: the commands a fault runs, the commands that undo it, and bad input."""

from __future__ import annotations

from typing import Any

import pytest

from lab.errors import InputError
from lab.net import faults
from lab.nodes.namespace import LocalNamespace, MachineNamespace

EP = faults.Endpoint("lab1", "h1", "eth0", LocalNamespace("lab-lab1.h1"), LocalNamespace("lab-lab1._sw"), "p-h1-eth0",
                     peer_is_switch=True)


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
    fault = faults.sysctl("h1", LocalNamespace("lab-lab1.h1"), "net.ipv4.tcp_rmem", "4096 8192 16384",
                          "4096\t131072\t6291456")
    assert fault.where == "h1" and fault.what == "sysctl net.ipv4.tcp_rmem=4096 8192 16384"
    assert fault.apply == [["nsenter", "--net=/run/netns/lab-lab1.h1", "sysctl", "-q", "-w",
                            "net.ipv4.tcp_rmem=4096 8192 16384"]]
    assert fault.undo == [["nsenter", "--net=/run/netns/lab-lab1.h1", "sysctl", "-q", "-w",
                           "net.ipv4.tcp_rmem=4096\t131072\t6291456"]]


@pytest.mark.parametrize("key", ["kernel.pid_max", "vm.swappiness", "fs.inotify.max_user_watches"])
def test_a_machine_wide_sysctl_is_refused(key):
    with pytest.raises(InputError, match="machine-wide"):
        faults.sysctl("h1", LocalNamespace("lab-lab1.h1"), key, "1", "0")


def test_on_a_cluster_a_fault_runs_in_the_nodes_machine_through_its_agent():
    """The same rule, entered by the agent of the node's machine, through that machine's engine only."""
    machine = {"agent": "a9c0ffee", "engine": "tcp://10.9.9.2:2376", "tls": ["/c/ca.pem", "/c/cert.pem", "/c/key.pem"]}
    inside = MachineNamespace("lab1", "m2", machine, 4242)
    ep = faults.Endpoint("lab1", "h1", "eth0", inside, inside, "eth0")
    fault = faults.drop(ep, "tcp syn dport 80")
    argv = fault.apply[0]
    assert argv[:7] == ["docker", "-H", "tcp://10.9.9.2:2376", "--tlsverify", "--tlscacert=/c/ca.pem",
                        "--tlscert=/c/cert.pem", "--tlskey=/c/key.pem"]
    assert argv[7:10] == ["exec", "-i", "a9c0ffee"]
    start = argv.index("python3")
    assert argv[start:start + 10] == ["python3", "-m", "lab.cluster.agent", "run", "--", "nsenter", "-t", "4242",
                                      "-n", "iptables"]
    assert fault.undo[0][:10] == argv[:10] and fault.undo[0][start:start + 10] == argv[start:start + 10]
    assert "-D" in fault.undo[0]


def test_plugging_a_point_to_point_cable_back_puts_its_routes_back():
    """The node's own end goes down, and the kernel flushes the routes that leave by it: the undo re-adds them."""
    routes: list[dict[str, Any]] = [{"to": "10.0.1.0/24", "via": "10.0.0.2", "dev": "eth1"},
                                    {"to": "default", "via": None, "dev": "eth1"}]
    ep = faults.Endpoint("lab1", "r1", "eth1", LocalNamespace("lab-lab1.r1"), LocalNamespace("lab-lab1.isp"), "eth0",
                         routes=routes)
    pulled = faults.link_state(ep, up=False)
    ns = ["nsenter", "--net=/run/netns/lab-lab1.r1"]
    assert pulled.apply == [[*ns, "ip", "link", "set", "dev", "eth1", "down"]]
    assert pulled.undo == [[*ns, "ip", "link", "set", "dev", "eth1", "up"],
                           [*ns, "ip", "route", "replace", "10.0.1.0/24", "via", "10.0.0.2", "dev", "eth1"],
                           [*ns, "ip", "route", "replace", "default", "dev", "eth1"]]
    assert faults.link_state(ep, up=True).apply == pulled.undo


def test_a_pulled_lan_cable_keeps_the_nodes_routes():
    """At the switch port: the node's interface stays up, so the kernel keeps its routes and nothing is re-added."""
    ep = faults.Endpoint("lab1", "h1", "eth0", LocalNamespace("lab-lab1.h1"), LocalNamespace("lab-lab1._sw"),
                         "p-h1-eth0", peer_is_switch=True, routes=[{"to": "default", "via": "10.0.0.1", "dev": "eth0"}])
    pulled = faults.link_state(ep, up=False)
    assert pulled.undo == [["nsenter", "--net=/run/netns/lab-lab1._sw", "ip", "link", "set", "dev", "p-h1-eth0", "up"]]


EP6 = faults.Endpoint("lab1", "h1", "eth0", LocalNamespace("lab-lab1.h1"), LocalNamespace("lab-lab1._sw"),
                      "p-h1-eth0", peer_is_switch=True, ipv6=True)


def test_in_a_lab_with_ipv6_a_rule_is_an_ip6tables_rule_too():
    fault = faults.drop(EP6, "tcp syn dport 80", "both")
    tools = [argv[2] for argv in fault.apply]
    assert tools == ["iptables", "iptables", "ip6tables", "ip6tables"]
    assert [argv[2] for argv in fault.undo] == tools
    assert all("--syn" in argv and "lab-fault-" + fault.id in argv for argv in fault.apply)


def test_icmp_is_icmpv6_for_ip6tables_and_reject_answers_in_its_words():
    assert faults.parse_match("icmp", 6) == ["-p", "ipv6-icmp"]
    fault = faults.reject(EP6, "tcp dport 80", "in", "icmp-host-unreachable")
    v4, v6 = fault.apply
    assert v4[-1] == "icmp-host-unreachable" and v6[2] == "ip6tables" and v6[-1] == "icmp6-addr-unreachable"


def test_an_address_names_its_family_so_the_other_family_gets_no_rule():
    assert faults.parse_match("from 10.0.0.1", 6) is None
    assert faults.parse_match("to fd00:1::/64", 4) is None
    assert faults.parse_match("udp to fd00:1::/64", 6) == ["-p", "udp", "-d", "fd00:1::/64"]
    only6 = faults.drop(EP6, "from fd00:1::5", "in")
    assert [argv[2] for argv in only6.apply] == ["ip6tables"]
    with pytest.raises(InputError, match="has no IPv6"):
        faults.drop(EP, "from fd00:1::5", "in")


def test_an_ipv6_route_is_put_back_with_ip_6():
    ep = faults.Endpoint("lab1", "r1", "eth1", LocalNamespace("lab-lab1.r1"), LocalNamespace("lab-lab1.isp"), "eth0",
                         routes=[{"to": "default", "via": "fd00:ff::2", "dev": "eth1", "family": "6"}], ipv6=True)
    assert faults.link_state(ep, up=True).apply[1] == ["nsenter", "--net=/run/netns/lab-lab1.r1", "ip", "-6", "route",
                                                       "replace", "default", "via", "fd00:ff::2", "dev", "eth1"]


def test_a_nodes_loopback_is_an_endpoint() -> None:
    info = {"name": "lab1", "nodes": {"h1": {"kind": "host", "netns": "lab-lab1.h1", "interfaces": {"eth0": {}}}}}
    ep = faults.endpoint(info, "h1:lo")
    assert (ep.label, ep.ifname, ep.peer_ifname) == ("h1:lo", "lo", "lo")
