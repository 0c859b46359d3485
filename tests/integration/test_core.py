"""The core lab for real: namespaces, bridges, veths, routes; up, exec, down, rollback, crash, lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from barriers import in_namespace, lab_stopped_at

from lab import deploy, state
from lab.cli import main
from lab.errors import EnvironmentProblem, InputError
from lab.topology import load_topology, load_topology_text

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
BOOK_LAN = ROOT / "topologies" / "book-lan.yaml"


def lab_namespaces(lab: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"lab-{lab}.")]


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def assert_gone(lab: str) -> None:
    assert lab_namespaces(lab) == []
    assert not state.lab_dir(lab).exists()
    etc = Path("/etc/netns")
    assert not etc.exists() or not any(p.name.startswith(f"lab-{lab}.") for p in etc.glob("*"))


def test_book_lan_pings_across_two_routers_and_goes_away(lab_factory):
    before = root_links()
    lab = lab_factory(BOOK_LAN, name="core-a")
    assert len(lab_namespaces("core-a")) == 6  # five nodes and the switch
    assert root_links() == before, "a lab must not add interfaces to the machine's namespace"
    r = lab.exec("kongming20", ["ping", "-c1", "-W2", "far-host"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "10.0.1.10" in r.stdout
    r = lab.exec("kongming20", ["ping", "-c1", "-W2", "ernest-laptop"])
    assert r.returncode == 0
    # The route kongming20 takes to the far host goes through its gateway.
    r = lab.exec("kongming20", ["ip", "route", "get", "10.0.1.10"])
    assert "via 192.168.1.1" in r.stdout
    # No lab namespace has a route that is not the lab's own.
    for node in ("kongming20", "router", "isp", "far-host"):
        routes = lab.exec(node, ["ip", "-4", "route"]).stdout
        for line in routes.splitlines():
            assert line.startswith(("default via 192.168.1.1", "default via 10.0.1.1", "192.168.1.0/24",
                                    "10.0.0.0/30", "10.0.1.0/24")), line
    deploy.down("core-a")
    assert_gone("core-a")
    assert deploy.down("core-a").removed == []  # idempotent


def test_sysctls_offloads_and_hosts_are_set_in_every_namespace(lab_factory):
    lab = lab_factory(BOOK_LAN, name="core-b")
    assert lab.exec("router", ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    assert lab.exec("kongming20", ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "0"
    assert lab.exec("kongming20", ["sysctl", "-n", "net.ipv6.conf.all.disable_ipv6"]).stdout.strip() == "1"
    assert lab.exec("kongming20", ["sysctl", "-n", "net.ipv4.conf.all.accept_redirects"]).stdout.strip() == "1"
    hosts = lab.exec("kongming20", ["cat", "/etc/hosts"]).stdout
    assert "192.168.1.108\ternest-laptop" in hosts
    link = lab.exec("kongming20", ["ip", "-d", "link", "show", "eth0"]).stdout
    assert "gso_max_segs 1 " in link
    ethtool = lab.exec("kongming20", ["ethtool", "-k", "eth0"])
    if ethtool.returncode == 0:
        assert "tx-checksumming: off" in ethtool.stdout


def test_two_labs_with_the_same_node_names_coexist(lab_factory):
    a = lab_factory(BOOK_LAN, name="core-c1")
    b = lab_factory(BOOK_LAN, name="core-c2")
    assert a.exec("kongming20", ["ping", "-c1", "-W2", "far-host"]).returncode == 0
    assert b.exec("kongming20", ["ping", "-c1", "-W2", "far-host"]).returncode == 0
    deploy.down("core-c1")
    assert b.exec("kongming20", ["ping", "-c1", "-W2", "ernest-laptop"]).returncode == 0


def test_a_pulled_point_to_point_cable_heals(lab_factory, capsys):
    """link down flushes the static route that leaves by router:eth1; link up, or fault clear, puts it back,
    and lab inspect says when the kernel's routes differ from the topology's."""
    lab = lab_factory(BOOK_LAN, name="core-heal")
    far = ["ping", "-c1", "-W2", "far-host"]
    for plug_back in (["link", "up", "--lab", "core-heal", "router:eth1"], ["fault", "clear", "--lab", "core-heal"]):
        assert main(["link", "down", "--lab", "core-heal", "router:eth1"]) == 0
        assert lab.exec("kongming20", far).returncode != 0
        assert main(plug_back) == 0
        assert lab.exec("kongming20", far).returncode == 0, plug_back
        assert "10.0.1.0/24 via 10.0.0.2 dev eth1" in lab.exec("router", ["ip", "route"]).stdout
    assert main(["fault", "clear", "--lab", "core-heal", "--id", "zzzzzz"]) == 2  # no such fault: said, not ignored
    capsys.readouterr()
    assert main(["inspect", "core-heal", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["differences"] == []
    lab.exec("router", ["ip", "route", "del", "10.0.1.0/24"])
    assert main(["inspect", "core-heal"]) == 0
    assert ("differs from the topology: node router: route 10.0.1.0/24 via 10.0.0.2 dev eth1 of the topology is "
            "missing") in capsys.readouterr().err


def test_the_projects_programs_run_in_a_namespace_node_from_any_directory(lab_factory, tmp_path, monkeypatch):
    """``python3 -m lab.servers`` with the machine's own python3, as the README says, wherever lab runs from."""
    lab = lab_factory(BOOK_LAN, name="core-prog")
    monkeypatch.chdir(tmp_path)
    listing = lab.exec("kongming20", ["python3", "-m", "lab.servers"])
    assert listing.returncode == 0, listing.stderr
    assert "echo" in listing.stdout and "daytime" in listing.stdout


def test_exec_returns_the_commands_exit_code(lab_factory):
    lab_factory(BOOK_LAN, name="core-d")
    assert main(["exec", "--lab", "core-d", "kongming20", "--", "sh", "-c", "exit 7"]) == 7
    assert main(["exec", "--lab", "core-d", "kongming20", "--", "true"]) == 0
    assert main(["exec", "--lab", "core-d", "nobody", "--", "true"]) == 2


def test_long_names_become_short_kernel_names(lab_factory):
    long_node = "a" + "b" * 30
    text = f"""
name: core-long
networks:
  averyveryverylongnetworkname: {{subnet: 10.9.0.0/24}}
nodes:
  {long_node}:
    interfaces: {{eth0: {{network: averyveryverylongnetworkname}}}}
  {long_node[:-1]}c:
    interfaces: {{eth0: {{network: averyveryverylongnetworkname}}}}
"""
    topo, _ = load_topology_text(text, "long.yaml")
    deploy.up(topo, text)
    try:
        sw = subprocess.run(["ip", "-n", "lab-core-long._sw", "-o", "link"], capture_output=True, text=True).stdout
        names = [line.split(":")[1].strip().split("@")[0] for line in sw.splitlines()]
        assert all(len(n) <= 15 for n in names) and len(names) == 4  # lo, bridge, two ports
        r = subprocess.run(["ip", "netns", "exec", f"lab-core-long.{long_node}", "ping", "-c1", "-W2", "10.9.0.2"],
                           capture_output=True)
        assert r.returncode == 0
    finally:
        deploy.down("core-long")
    assert_gone("core-long")


def test_a_failed_up_rolls_back_everything():
    text = """
name: core-fail
networks: {lan: {subnet: 10.8.0.0/24}}
nodes:
  a: {interfaces: {eth0: {network: lan}}, sysctls: {net.ipv4.no_such_sysctl_here: 1}}
  b: {interfaces: {eth0: {network: lan}}}
"""
    topo, _ = load_topology_text(text, "fail.yaml")
    with pytest.raises(EnvironmentProblem, match="no sysctl net.ipv4.no_such_sysctl_here"):
        deploy.up(topo, text)
    assert_gone("core-fail")


def test_a_second_up_of_the_same_lab_is_refused(lab_factory):
    lab_factory(BOOK_LAN, name="core-e")
    topo, _ = load_topology(BOOK_LAN)
    topo.name = "core-e"
    with pytest.raises(InputError, match="already up"):
        deploy.up(topo, BOOK_LAN.read_text())
    assert len(lab_namespaces("core-e")) == 6


def test_sigkill_during_up_leaves_nothing_down_cannot_remove(tmp_path):
    topo_file = tmp_path / "big.yaml"
    topo_file.write_text("""
name: core-kill
networks: {lan: {subnet: 10.7.0.0/22}}
nodes:
{% for i in range(300) %}
  h{{ i }}: {interfaces: {eth0: {network: lan}}}
{% endfor %}
""")
    # Before any namespace is made; halfway through them; veths made, no address yet (lab.stopat).
    for point in ("namespaces:0", "namespaces:150", "links:1"):
        proc = lab_stopped_at(point, ["up", "-q", str(topo_file)], tmp_path / point.replace(":", "-"))
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        assert main(["down", "core-kill"]) == 0
        assert_gone("core-kill")


def test_down_stops_a_process_left_running_in_the_lab(lab_factory):
    lab_factory(BOOK_LAN, name="core-stray")
    stray = in_namespace("lab-core-stray.kongming20", "sleep 300")
    report = deploy.down("core-stray")
    stray.wait(timeout=5)  # gone (without the scan it would sleep on, and this would time out)
    assert any("running in a namespace of the lab" in item for item in report.removed)
    assert_gone("core-stray")
