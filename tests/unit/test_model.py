"""The topology model: what a topology may say, and that everything else is refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from lab.topology.model import Interface, Link, Network, Node, Route, Topology


def topo(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "m",
        "networks": {"lan": {"subnet": "10.0.0.0/24"}},
        "nodes": {"a": {"interfaces": {"eth0": {"network": "lan"}}}},
    }
    data.update(extra)
    return data


def error_types(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {e["type"] for e in exc.value.errors()}


def test_minimal_topology() -> None:
    t = Topology.model_validate(topo())
    assert t.name == "m"
    assert str(t.networks["lan"].subnet) == "10.0.0.0/24"
    assert t.nodes["a"].kind == "host"
    assert t.nodes["a"].interfaces["eth0"].address is None
    assert t.ipv6 is False and t.links == []


@pytest.mark.parametrize("model, data", [
    (Topology, topo(typo=1)),
    (Network, {"subnet": "10.0.0.0/24", "gateway": "10.0.0.1"}),
    (Interface, {"network": "lan", "adress": "10.0.0.1/24"}),
    (Route, {"to": "default", "gw": "10.0.0.1"}),
    (Node, {"interface": {}}),
    (Link, {"a": "a:eth0", "b": "b:eth0", "mtu": 1400}),
])
def test_unknown_keys_are_refused_at_every_level(model: type, data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(data)  # type: ignore[attr-defined]
    assert error_types(exc) == {"extra_forbidden"}


def test_links_from_pairs_and_mappings() -> None:
    t = Topology.model_validate(topo(links=[["a:eth1", "b:eth0"], {"a": "c:eth0", "b": "d:eth9"}]))
    assert t.links[0].ends == (("a", "eth1"), ("b", "eth0"))
    assert t.links[1].ends == (("c", "eth0"), ("d", "eth9"))


def test_a_link_with_three_ends_is_refused_at_its_item() -> None:
    with pytest.raises(ValidationError) as exc:
        Topology.model_validate(topo(links=[["a:eth1", "b:eth0"], ["a:eth2", "b:eth1", "c:eth0"]]))
    (err,) = exc.value.errors()
    assert err["loc"] == ("links", 1)
    assert "exactly two endpoints" in err["msg"]


@pytest.mark.parametrize("name, ok", [
    ("lab1", True), ("a", True), ("my-lab", True), ("x" * 20, True),
    ("x" * 21, False), ("-lab", False), ("lab-", False), ("Lab", False), ("../../etc", False),
    ("lab.x", False), ("lab x", False), ("", False),
])
def test_lab_names(name: str, ok: bool) -> None:
    data = topo(name=name)
    if ok:
        assert Topology.model_validate(data).name == name
    else:
        with pytest.raises(ValidationError):
            Topology.model_validate(data)


@pytest.mark.parametrize("node, ok", [
    ("a", True), ("Kongming20", True), ("ernest-laptop", True), ("n" * 32, True),
    ("n" * 33, False), ("1host", False), ("host-", False), ("$(reboot)", False), ("a.b", False),
    ("_sw", False), ("a_b", False), ("../x", False),
])
def test_node_names(node: str, ok: bool) -> None:
    data = topo(nodes={node: {}})
    if ok:
        assert node in Topology.model_validate(data).nodes
    else:
        with pytest.raises(ValidationError):
            Topology.model_validate(data)


@pytest.mark.parametrize("ifname, ok", [
    ("eth0", True), ("e" * 15, True), ("wan_1", True), ("e" * 16, False), ("Eth0", False),
    ("0eth", False), (";rm -rf /", False), ("eth0é", False), ("eth/0", False), ("eth 0", False),
])
def test_interface_names_fit_the_kernel(ifname: str, ok: bool) -> None:
    data = topo(nodes={"a": {"interfaces": {ifname: {"network": "lan"}}}})
    if ok:
        assert len(ifname.encode()) <= 15
        assert ifname in Topology.model_validate(data).nodes["a"].interfaces
    else:
        with pytest.raises(ValidationError):
            Topology.model_validate(data)


@pytest.mark.parametrize("image, ok", [
    ("host", True), ("lab/host:latest", True), ("localhost:5000/lab/web:1.0", True),
    ("debian@sha256:" + "0" * 64, True), ("$(reboot)", False), ("host; rm -rf /", False),
    ("Host", False), ("a" * 256, False), ("host:", False), ("-host", False),
])
def test_images_are_references_not_shell_words(image: str, ok: bool) -> None:
    data = {"kind": "container", "image": image}
    if ok:
        assert Node.model_validate(data).image == image
    else:
        with pytest.raises(ValidationError):
            Node.model_validate(data)


def test_sysctl_values_are_one_line() -> None:
    node = Node.model_validate({"sysctls": {"net.ipv4.tcp_rmem": "4096\t87380\t6291456", "net.ipv4.ip_forward": 1}})
    assert node.sysctls == {"net.ipv4.tcp_rmem": "4096\t87380\t6291456", "net.ipv4.ip_forward": 1}
    with pytest.raises(ValidationError):
        Node.model_validate({"sysctls": {"net.ipv4.ip_forward": "1\nkernel.panic=1"}})
    with pytest.raises(ValidationError):
        Node.model_validate({"sysctls": {"net/../../etc/shadow": 1}})


def test_env_values_cannot_hold_nul_and_keys_are_identifiers() -> None:
    assert Node.model_validate({"env": {"X": "a b\nc"}}).env == {"X": "a b\nc"}
    with pytest.raises(ValidationError):
        Node.model_validate({"env": {"X": "a\x00b"}})
    with pytest.raises(ValidationError):
        Node.model_validate({"env": {"PATH;reboot": "x"}})


def test_routes() -> None:
    r = Route.model_validate({"to": "default", "via": "10.0.0.1"})
    assert r.to == "default" and str(r.via) == "10.0.0.1"
    assert str(Route.model_validate({"to": "10.1.0.0/16", "dev": "eth0"}).to) == "10.1.0.0/16"
    for bad in ({"to": "10.1.0.1/16"}, {"to": "somewhere"}, {"to": "default", "via": "10.0.0.300"}):
        with pytest.raises(ValidationError):
            Route.model_validate(bad)


def test_networks_are_ipv4_subnets_without_host_bits() -> None:
    assert str(Network.model_validate({"subnet": "192.168.1.0/24"}).subnet) == "192.168.1.0/24"
    for bad in ("192.168.1.1/24", "10.0.0.0/33", "fd00::/64", "lan"):
        with pytest.raises(ValidationError):
            Network.model_validate({"subnet": bad})


def test_mtu_bounds() -> None:
    assert Interface.model_validate({"mtu": 576}).mtu == 576
    assert Interface.model_validate({"mtu": 9000}).mtu == 9000
    for bad in (575, 9001, "big"):
        with pytest.raises(ValidationError):
            Interface.model_validate({"mtu": bad})


def test_a_lab_needs_a_node() -> None:
    with pytest.raises(ValidationError) as exc:
        Topology.model_validate(topo(nodes={}))
    assert "at least one node" in str(exc.value)
