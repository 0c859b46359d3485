"""A lab's plumbing per machine: veths on one machine, VXLAN across machines, a firewall for the VXLAN port."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from lab.cluster import wiring as wiring_module
from lab.cluster.wiring import (
    ALL_ZERO_MAC,
    VXLAN_PORT,
    Machines,
    Wiring,
    check_fits,
    firewall_chain,
    plan_wiring,
    unwire,
    vni,
    vxlan_name,
)
from lab.errors import EnvironmentProblem
from lab.plan import Plan, make_plan
from lab.topology import load_topology_text

LAB = "wl"
TOPOLOGY = """\
    name: wl
    networks:
      lan: {subnet: 192.168.1.0/24}
      far: {subnet: 192.168.2.0/24}
    nodes:
      h1:
        interfaces: {eth0: {network: lan, address: 192.168.1.11/24}}
        routes: [{to: default, via: 192.168.1.1}]
      h2:
        interfaces: {eth0: {network: lan, address: 192.168.1.12/24}}
        routes: [{to: default, via: 192.168.1.1}]
      h3:
        interfaces: {eth0: {network: lan, address: 192.168.1.13/24}}
        routes: [{to: default, via: 192.168.1.1}]
      r1:
        kind: router
        interfaces:
          eth0: {network: lan, address: 192.168.1.1/24}
          eth1: {address: 10.0.0.1/30}
        routes: [{to: 192.168.2.0/24, via: 10.0.0.2}]
      r2:
        kind: router
        interfaces:
          eth0: {address: 10.0.0.2/30}
          eth1: {network: far, address: 192.168.2.1/24}
        routes: [{to: 192.168.1.0/24, via: 10.0.0.1}]
      h4:
        interfaces: {eth0: {network: far, address: 192.168.2.14/24}}
        routes: [{to: default, via: 192.168.2.1}]
    links:
      - [r1:eth1, r2:eth0]
"""
PIDS = {"h1": 101, "h2": 102, "h3": 103, "r1": 111, "r2": 112, "h4": 104}
SWITCH_PIDS = {"m1": 901, "m2": 902, "m3": 903}
ADDRESS = {"m1": "10.9.0.1", "m2": "10.9.0.2", "m3": "10.9.0.3"}
MACHINES = Machines(dict(ADDRESS), {"m1": "eth0", "m2": "ens3", "m3": "enp1s0"})

ONE_MACHINE = dict.fromkeys(PIDS, "m1")
LAN_SPREAD = {"h1": "m1", "h2": "m2", "h3": "m3", "r1": "m1", "r2": "m1", "h4": "m1"}
LINK_SPLIT = {"h1": "m1", "h2": "m1", "h3": "m1", "r1": "m1", "r2": "m2", "h4": "m2"}

EXPECTED_CONFIG = {
    "h1": "link set lo up\nlink set eth0 mtu 1500 gso_max_segs 1\naddr add 192.168.1.11/24 dev eth0\nlink set eth0 up\n"
          "route add default via 192.168.1.1\n",
    "h2": "link set lo up\nlink set eth0 mtu 1500 gso_max_segs 1\naddr add 192.168.1.12/24 dev eth0\nlink set eth0 up\n"
          "route add default via 192.168.1.1\n",
    "h3": "link set lo up\nlink set eth0 mtu 1500 gso_max_segs 1\naddr add 192.168.1.13/24 dev eth0\nlink set eth0 up\n"
          "route add default via 192.168.1.1\n",
    "r1": "link set lo up\nlink set eth0 mtu 1500 gso_max_segs 1\naddr add 192.168.1.1/24 dev eth0\nlink set eth0 up\n"
          "link set eth1 mtu 1500 gso_max_segs 1\naddr add 10.0.0.1/30 dev eth1\nlink set eth1 up\n"
          "route add 192.168.2.0/24 via 10.0.0.2\n",
    "r2": "link set lo up\nlink set eth1 mtu 1500 gso_max_segs 1\naddr add 192.168.2.1/24 dev eth1\nlink set eth1 up\n"
          "link set eth0 mtu 1500 gso_max_segs 1\naddr add 10.0.0.2/30 dev eth0\nlink set eth0 up\n"
          "route add 192.168.1.0/24 via 10.0.0.1\n",
    "h4": "link set lo up\nlink set eth0 mtu 1500 gso_max_segs 1\naddr add 192.168.2.14/24 dev eth0\nlink set eth0 up\n"
          "route add default via 192.168.2.1\n",
}


def plan_of(text: str) -> Plan:
    topo, _ = load_topology_text(textwrap.dedent(text), "t.yaml")
    return make_plan(topo)


@pytest.fixture
def plan() -> Plan:
    return plan_of(TOPOLOGY)


def wire(plan: Plan, placement: dict[str, str]) -> Wiring:
    switch_pids = {m: SWITCH_PIDS[m] for m in set(placement.values())}
    return plan_wiring(plan, placement, dict(PIDS), switch_pids, MACHINES)


def argvs(ops: list[dict[str, Any]]) -> list[list[str]]:
    return [op["argv"] for op in ops if op["op"] == "run"]


def all_argvs(wiring: Wiring) -> list[list[str]]:
    return [argv for ops in wiring.ops.values() for argv in argvs(ops)]


def veth(name: str, pid: int, peer: str, peer_pid: int) -> list[str]:
    return ["ip", "link", "add", "name", name, "netns", str(pid), "type", "veth", "peer", "name", peer,
            "netns", str(peer_pid)]


def vxlan_add(name: str, number: int, machine: str, remote: str | None = None) -> list[str]:
    argv = ["ip", "link", "add", name, "type", "vxlan", "id", str(number), "dstport", str(VXLAN_PORT),
            "local", ADDRESS[machine], "dev", MACHINES.ifname[machine]]
    return argv + (["remote", remote] if remote else [])


def firewall(chain: str, sources: list[str]) -> list[list[str]]:
    ipt = ["iptables", "-w"]
    return ([[*ipt, "-N", chain], [*ipt, "-F", chain]]
            + [[*ipt, "-A", chain, "-s", s, "-j", "RETURN"] for s in sources]
            + [[*ipt, "-A", chain, "-j", "DROP"],
               [*ipt, "-I", "INPUT", "-p", "udp", "--dport", str(VXLAN_PORT), "-j", chain]])


def batch_for(ops: list[dict[str, Any]], pid: int) -> list[str]:
    """The stdin of every ``ip -batch -`` run in ``pid``'s namespace."""
    return [op["stdin"] for op in ops
            if op["op"] == "run" and op["argv"] == ["nsenter", "-t", str(pid), "-n", "ip", "-batch", "-"]]


# --- all on one machine ---------------------------------------------------------------------------


def test_one_machine_needs_no_vxlan_and_no_firewall(plan: Plan) -> None:
    wiring = wire(plan, ONE_MACHINE)
    assert list(wiring.ops) == ["m1"]
    assert wiring.vxlans == {}
    assert wiring.firewalls == {}
    for argv in all_argvs(wiring):
        assert "vxlan" not in argv
        assert argv[0] != "iptables"
        assert "fdb" not in argv


def test_one_machine_makes_a_veth_for_every_link_and_lan_port(plan: Plan) -> None:
    wiring = wire(plan, ONE_MACHINE)
    made = [argv for argv in argvs(wiring.ops["m1"]) if argv[:3] == ["ip", "link", "add"]]
    sw = str(SWITCH_PIDS["m1"])
    assert made == [
        veth("h1-eth0", 901, "eth0", 101),
        veth("h2-eth0", 901, "eth0", 102),
        veth("h3-eth0", 901, "eth0", 103),
        veth("r1-eth0", 901, "eth0", 111),
        veth("r2-eth1", 901, "eth1", 112),
        veth("h4-eth0", 901, "eth0", 104),
        veth("eth1", 111, "eth0", 112),  # the point-to-point link, straight between the routers
    ]
    assert all(argv[6] == sw for argv in made[:6])


def test_one_machine_builds_both_bridges_and_enslaves_the_ports(plan: Plan) -> None:
    ops = wire(plan, ONE_MACHINE).ops["m1"]
    assert batch_for(ops, 901) == [
        "link set lo up\nlink add br-far type bridge\nlink set br-far up\n",
        "link set lo up\nlink add br-lan type bridge\nlink set br-lan up\n",
        "link set h1-eth0 mtu 1500 master br-lan up\nlink set h2-eth0 mtu 1500 master br-lan up\n"
        "link set h3-eth0 mtu 1500 master br-lan up\nlink set r1-eth0 mtu 1500 master br-lan up\n"
        "link set r2-eth1 mtu 1500 master br-far up\nlink set h4-eth0 mtu 1500 master br-far up\n",
    ]


def test_one_machine_turns_tx_checksumming_off_on_each_veth_end(plan: Plan) -> None:
    ops = wire(plan, ONE_MACHINE).ops["m1"]
    ethtool = [(op["argv"][2], op["argv"][6], op["ok"]) for op in ops if "ethtool" in op.get("argv", [])]
    assert sorted(ethtool) == sorted([
        ("101", "eth0", [0, 1]), ("102", "eth0", [0, 1]), ("103", "eth0", [0, 1]), ("104", "eth0", [0, 1]),
        ("111", "eth0", [0, 1]), ("111", "eth1", [0, 1]), ("112", "eth1", [0, 1]), ("112", "eth0", [0, 1]),
    ])


# --- a LAN over three machines ------------------------------------------------------------------


def test_a_lan_over_three_machines_has_one_vxlan_per_machine_with_one_vni(plan: Plan) -> None:
    wiring = wire(plan, LAN_SPREAD)
    number = vni(LAB, "net:lan")
    name = vxlan_name(number)
    assert wiring.vxlans == {"m1": [name], "m2": [name], "m3": [name]}
    for machine in ("m1", "m2", "m3"):
        made = [argv for argv in argvs(wiring.ops[machine]) if "vxlan" in argv]
        assert made == [vxlan_add(name, number, machine)]  # local is its own address; no remote
        assert "remote" not in made[0]


def test_each_lan_vxlan_moves_into_its_machines_switch_and_floods_to_the_others(plan: Plan) -> None:
    wiring = wire(plan, LAN_SPREAD)
    number = vni(LAB, "net:lan")
    name = vxlan_name(number)
    for machine in ("m1", "m2", "m3"):
        sw = SWITCH_PIDS[machine]
        ops = argvs(wiring.ops[machine])
        at = ops.index(vxlan_add(name, number, machine))
        others = sorted(a for m, a in ADDRESS.items() if m != machine)
        assert ops[at + 1] == ["ip", "link", "set", name, "netns", str(sw)]
        fdb = [argv for argv in ops if "fdb" in argv]
        assert fdb == [["nsenter", "-t", str(sw), "-n", "bridge", "fdb", "append", ALL_ZERO_MAC, "dev", name,
                        "dst", other] for other in others]
        assert ops[at + 2: at + 4] == fdb
        assert ADDRESS[machine] not in [argv[-1] for argv in fdb]
        assert batch_for(wiring.ops[machine], sw)[-1].endswith(f"link set {name} mtu 1500 master br-lan up\n")


def test_the_far_lan_stays_on_one_machine(plan: Plan) -> None:
    wiring = wire(plan, LAN_SPREAD)
    assert vxlan_name(vni(LAB, "net:far")) not in [n for names in wiring.vxlans.values() for n in names]
    assert [op for op in wiring.ops["m2"] + wiring.ops["m3"] if "br-far" in op.get("stdin", "")] == []


def test_a_lan_over_three_machines_is_firewalled_on_each(plan: Plan) -> None:
    wiring = wire(plan, LAN_SPREAD)
    chain = firewall_chain(LAB)
    assert chain.startswith("LABVX-") and len(chain) == len("LABVX-") + 10
    assert wiring.firewalls == {"m1": chain, "m2": chain, "m3": chain}
    for machine in ("m1", "m2", "m3"):
        others = sorted(a for m, a in ADDRESS.items() if m != machine)
        expected = firewall(chain, others)
        keep, *ops = wiring.ops[machine]
        # first of all, the agent keeps what undoes the machine's wiring as it stops
        assert keep == {"op": "on-stop", "ops": unwire(wiring.vxlans[machine], chain)}
        assert argvs(ops[:len(expected)]) == expected  # then the firewall, before anything else
        assert ops[0]["ok"] == [0, 1]  # the chain may be there already
        assert ops[len(expected) - 2]["argv"][-2:] == ["-j", "DROP"]
        assert sum(1 for argv in argvs(ops) if argv[0] == "iptables") == len(expected)


def test_what_the_agent_keeps_undoes_the_devices_and_the_firewall_whatever_is_left() -> None:
    ops = unwire(["lvx00abcd"], "LABVX-0123456789")
    assert argvs(ops) == [["ip", "link", "del", "lvx00abcd"],
                          ["iptables", "-w", "-D", "INPUT", "-p", "udp", "--dport", str(VXLAN_PORT), "-j",
                           "LABVX-0123456789"],
                          ["iptables", "-w", "-F", "LABVX-0123456789"], ["iptables", "-w", "-X", "LABVX-0123456789"]]
    assert all(0 in op["ok"] and 1 in op["ok"] for op in ops)  # a device or chain already gone is no error


# --- a point-to-point link across two machines -------------------------------------------------


def test_a_link_across_machines_is_a_vxlan_pointing_at_the_other_machine(plan: Plan) -> None:
    wiring = wire(plan, LINK_SPLIT)
    number = vni(LAB, "r1:eth1-r2:eth0")
    name = vxlan_name(number)
    assert wiring.vxlans == {"m1": [name], "m2": [name]}
    for machine, other, pid, ifname in (("m1", "m2", 111, "eth1"), ("m2", "m1", 112, "eth0")):
        ops = wiring.ops[machine]
        runs = argvs(ops)
        at = runs.index(vxlan_add(name, number, machine, remote=ADDRESS[other]))
        assert runs[at + 1] == ["ip", "link", "set", name, "netns", str(pid)]
        assert runs[at + 2] == ["nsenter", "-t", str(pid), "-n", "ip", "link", "set", name, "name", ifname]
        add = next(op for op in ops if op.get("argv") == runs[at])
        assert add["retry"] == 5
        assert [argv for argv in runs if "vxlan" in argv] == [runs[at]]
        # no receive offload on it: a capture there shows the segments as sent, not merged by GRO
        assert ["nsenter", "-t", str(pid), "-n", "ethtool", "-K", ifname, "gro", "off"] in runs


def test_a_lan_vxlan_port_merges_nothing_either(plan: Plan) -> None:
    wiring = wire(plan, LAN_SPREAD)
    assert len(wiring.vxlans) == 3
    for machine, names in wiring.vxlans.items():
        sw = SWITCH_PIDS[machine]
        for name in names:
            assert ["nsenter", "-t", str(sw), "-n", "ethtool", "-K", name, "gro", "off"] in argvs(wiring.ops[machine])


def test_a_link_across_machines_is_not_also_a_veth(plan: Plan) -> None:
    wiring = wire(plan, LINK_SPLIT)
    veths = {m: [argv for argv in argvs(ops) if "veth" in argv] for m, ops in wiring.ops.items()}
    assert veths == {
        "m1": [veth("h1-eth0", 901, "eth0", 101), veth("h2-eth0", 901, "eth0", 102),
               veth("h3-eth0", 901, "eth0", 103), veth("r1-eth0", 901, "eth0", 111)],
        "m2": [veth("r2-eth1", 902, "eth1", 112), veth("h4-eth0", 902, "eth0", 104)],
    }


def test_a_link_across_machines_is_firewalled_on_both_sides_only(plan: Plan) -> None:
    wiring = wire(plan, LINK_SPLIT)
    chain = firewall_chain(LAB)
    assert wiring.firewalls == {"m1": chain, "m2": chain}
    assert argvs(wiring.ops["m1"][1:7]) == firewall(chain, ["10.9.0.2", "10.9.0.3"])
    assert argvs(wiring.ops["m2"][1:7]) == firewall(chain, ["10.9.0.1", "10.9.0.3"])


# --- inside each node -----------------------------------------------------------------------------


@pytest.mark.parametrize("placement", [ONE_MACHINE, LAN_SPREAD, LINK_SPLIT], ids=["one", "lan", "link"])
def test_every_node_is_sealed_before_anything_else_touches_it(plan: Plan, placement: dict[str, str]) -> None:
    wiring = wire(plan, placement)
    for node, pid in PIDS.items():
        ops = wiring.ops[placement[node]]
        touching = [op for op in ops if op.get("pid") == pid or str(pid) in op.get("argv", [])]
        assert touching[0] == {"op": "seal", "pid": pid}
        assert sum(1 for op in ops if op == {"op": "seal", "pid": pid}) == 1
        assert all(op["op"] in ("run", "write") for op in touching[1:])


@pytest.mark.parametrize("placement", [ONE_MACHINE, LAN_SPREAD], ids=["one", "lan"])
def test_every_node_gets_its_hosts_and_resolv_conf_written_last(plan: Plan, placement: dict[str, str]) -> None:
    """Through /proc/PID/root by the agent: the files Docker bind-mounted get the plan's contents."""
    from lab.plan import NO_RESOLVER

    wiring = wire(plan, placement)
    for node, pid in PIDS.items():
        writes = [op for op in wiring.ops[placement[node]] if op["op"] == "write" and op["pid"] == pid]
        netns = plan.nodes[node].netns
        assert writes == [{"op": "write", "pid": pid, "path": "/etc/hosts", "text": plan.hosts_files[netns]},
                          {"op": "write", "pid": pid, "path": "/etc/resolv.conf", "text": NO_RESOLVER}]


@pytest.mark.parametrize("placement", [ONE_MACHINE, LAN_SPREAD, LINK_SPLIT], ids=["one", "lan", "link"])
def test_every_node_gets_its_addresses_and_routes(plan: Plan, placement: dict[str, str]) -> None:
    wiring = wire(plan, placement)
    for node, pid in PIDS.items():
        assert batch_for(wiring.ops[placement[node]], pid) == [EXPECTED_CONFIG[node]]
        for machine, ops in wiring.ops.items():
            if machine != placement[node]:
                assert batch_for(ops, pid) == []


def test_early_sysctls_follow_the_seal(plan: Plan) -> None:
    ops = wire(plan, ONE_MACHINE).ops["m1"]
    at = ops.index({"op": "seal", "pid": 111})
    assert ops[at + 1]["argv"][:7] == ["nsenter", "-t", "111", "-n", "sysctl", "-q", "-w"]
    assert "net.ipv4.ip_forward=1" in ops[at + 1]["argv"]
    at = ops.index({"op": "seal", "pid": 101})
    assert "net.ipv4.ip_forward=0" in ops[at + 1]["argv"]


def test_a_route_with_a_device_names_it() -> None:
    plan = plan_of("""\
        name: dev
        nodes:
          a:
            interfaces: {eth0: {address: 10.0.0.1/30}, eth1: {address: 10.0.1.1/30}}
            routes: [{to: 10.5.0.0/16, dev: eth1}]
          b:
            interfaces: {eth0: {address: 10.0.0.2/30}}
          c:
            interfaces: {eth0: {address: 10.0.1.2/30}}
        links:
          - [a:eth0, b:eth0]
          - [a:eth1, c:eth0]
        """)
    wiring = plan_wiring(plan, {"a": "m1", "b": "m1", "c": "m1"}, {"a": 1, "b": 2, "c": 3}, {}, MACHINES)
    [stdin] = batch_for(wiring.ops["m1"], 1)
    assert stdin.endswith("route add 10.5.0.0/16 dev eth1\n")


# --- identifiers ------------------------------------------------------------------------------------


def test_vni_is_stable_and_distinct() -> None:
    assert vni(LAB, "net:lan") == vni(LAB, "net:lan")
    assert vni(LAB, "net:lan") != vni(LAB, "net:far")
    assert vni(LAB, "net:lan") != vni("other", "net:lan")
    assert vni(LAB, "net:lan") == 5198649  # sha256("wl/net:lan")[:3]: the same on every run and machine
    for key in ("net:lan", "net:far", "r1:eth1-r2:eth0", ""):
        assert 0 < vni(LAB, key) < 2 ** 24


def test_vni_is_never_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    class Zero:
        def digest(self) -> bytes:
            return bytes(32)

    monkeypatch.setattr(wiring_module.hashlib, "sha256", lambda _data: Zero())
    assert vni(LAB, "anything") == 1


def test_vxlan_names_fit_the_kernel() -> None:
    assert vxlan_name(1) == "lvx000001"
    assert vxlan_name(0xFFFFFF) == "lvxffffff"
    assert vxlan_name(vni(LAB, "net:lan")) == "lvx4f5339"
    for key in ("net:lan", "net:far", "r1:eth1-r2:eth0"):
        assert len(vxlan_name(vni(LAB, key))) <= 15


# --- MTU ---------------------------------------------------------------------------------------------


def test_an_underlay_too_small_for_vxlan_is_refused_with_the_figures(plan: Plan) -> None:
    with pytest.raises(EnvironmentProblem) as info:
        check_fits(plan, {"m1": 1550, "m2": 1500})
    error = info.value
    assert error.message == ("a link MTU of 1500 needs an underlay MTU of at least 1550 (50 bytes of VXLAN), "
                             "but machine m2's is 1500")
    assert error.hint == "raise the underlay MTU to 1550, or give the topology's links mtu: 1450"
    assert error.exit_code == 3
    for figure in ("1550", "m2", "1500"):
        assert figure in error.message


def test_an_underlay_of_1550_everywhere_fits(plan: Plan) -> None:
    check_fits(plan, {"m1": 1550, "m2": 1550, "m3": 1550})
    check_fits(plan, {})


def test_jumbo_frames_need_9050() -> None:
    plan = plan_of("""\
        name: jumbo
        networks:
          lan: {subnet: 192.168.1.0/24}
        nodes:
          a: {interfaces: {eth0: {network: lan, address: 192.168.1.2/24, mtu: 9000}}}
          b: {interfaces: {eth0: {network: lan, address: 192.168.1.3/24}}}
        """)
    with pytest.raises(EnvironmentProblem) as info:
        check_fits(plan, {"m1": 9100, "m2": 9049})
    assert info.value.message == ("a link MTU of 9000 needs an underlay MTU of at least 9050 (50 bytes of VXLAN), "
                                  "but machine m2's is 9049")
    check_fits(plan, {"m1": 9050, "m2": 9050})


JUMBO_LAN = """\
    name: jumbo
    networks:
      lan: {subnet: 192.168.1.0/24}
    nodes:
      a: {interfaces: {eth0: {network: lan, address: 192.168.1.2/24, mtu: 9000}}}
      b: {interfaces: {eth0: {network: lan, address: 192.168.1.3/24, mtu: 9000}}}
"""


def test_a_network_mtu_reaches_the_lan_vxlan_port() -> None:
    plan = plan_of(JUMBO_LAN.replace("{subnet: 192.168.1.0/24}", "{subnet: 192.168.1.0/24, mtu: 9000}")
                   .replace(", mtu: 9000}}}", "}}}"))
    wiring = plan_wiring(plan, {"a": "m1", "b": "m2"}, {"a": 1, "b": 2}, {"m1": 11, "m2": 12}, MACHINES)
    name = vxlan_name(vni("jumbo", "net:lan"))
    assert batch_for(wiring.ops["m1"], 11)[-1] == ("link set a-eth0 mtu 9000 master br-lan up\n"
                                                   f"link set {name} mtu 9000 master br-lan up\n")


def test_an_interface_mtu_reaches_the_lan_vxlan_port() -> None:
    plan = plan_of(JUMBO_LAN)
    check_fits(plan, {"m1": 9050, "m2": 9050})  # lab says this underlay is enough for the lab
    wiring = plan_wiring(plan, {"a": "m1", "b": "m2"}, {"a": 1, "b": 2}, {"m1": 11, "m2": 12}, MACHINES)
    name = vxlan_name(vni("jumbo", "net:lan"))
    assert f"link set {name} mtu 9000 master br-lan up\n" in batch_for(wiring.ops["m1"], 11)[-1]


# --- teardown ----------------------------------------------------------------------------------------


def test_unwire_deletes_devices_and_the_firewall_chain() -> None:
    ipt = ["iptables", "-w"]
    assert unwire(["lvx000001"], "LABVX-x") == [
        {"op": "run", "argv": ["ip", "link", "del", "lvx000001"], "ok": [0, 1]},
        {"op": "run", "argv": [*ipt, "-D", "INPUT", "-p", "udp", "--dport", "47900", "-j", "LABVX-x"],
         "ok": [0, 1, 2]},
        {"op": "run", "argv": [*ipt, "-F", "LABVX-x"], "ok": [0, 1]},
        {"op": "run", "argv": [*ipt, "-X", "LABVX-x"], "ok": [0, 1]},
    ]


def test_unwire_without_a_chain_only_deletes_devices() -> None:
    assert unwire(["lvx000001", "lvx000002"], None) == [
        {"op": "run", "argv": ["ip", "link", "del", "lvx000001"], "ok": [0, 1]},
        {"op": "run", "argv": ["ip", "link", "del", "lvx000002"], "ok": [0, 1]},
    ]
    assert unwire([], None) == []


def test_unwire_undoes_what_wiring_made(plan: Plan) -> None:
    wiring = wire(plan, LAN_SPREAD)
    for machine in ("m1", "m2", "m3"):
        ops = unwire(wiring.vxlans[machine], wiring.firewalls[machine])
        assert [op["argv"] for op in ops][0] == ["ip", "link", "del", vxlan_name(vni(LAB, "net:lan"))]
        up_rule = firewall(firewall_chain(LAB), [])[-1]
        assert ops[1]["argv"] == [*up_rule[:2], "-D", *up_rule[3:]]


def test_ipv6_addresses_are_added_nodad_and_ipv6_routes_by_family() -> None:
    dual = (TOPOLOGY.replace("lan: {subnet: 192.168.1.0/24}", 'lan: {subnet: 192.168.1.0/24, subnet6: "fd00:1::/64"}')
            .replace("address: 192.168.1.11/24}", 'address: 192.168.1.11/24, address6: "fd00:1::11/64"}')
            .replace("address: 192.168.1.1/24}", 'address: 192.168.1.1/24, address6: "fd00:1::1/64"}')
            .replace("        routes: [{to: default, via: 192.168.1.1}]\n      h2:",
                     '        routes: [{to: default, via: 192.168.1.1}, {to: default, via: "fd00:1::1"}]\n      h2:'))
    wiring = wire(plan_of(dual), ONE_MACHINE)
    h1 = next(op["stdin"] for op in wiring.ops["m1"] if op.get("argv", [])[:3] == ["nsenter", "-t", "101"]
              and "stdin" in op)
    assert "addr add 192.168.1.11/24 dev eth0\naddr add fd00:1::11/64 dev eth0 nodad\n" in h1
    assert h1.endswith("route add default via 192.168.1.1\nroute add ::/0 via fd00:1::1\n")
    sysctls = next(op["argv"] for op in wiring.ops["m1"] if op.get("argv", [])[:5] == ["nsenter", "-t", "101", "-n",
                                                                                           "sysctl"])
    assert "net.ipv6.conf.all.disable_ipv6=0" in sysctls and "net.ipv6.conf.default.accept_dad=0" in sysctls
