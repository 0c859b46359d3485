"""Impairments without root: units, the topology's impair:, the commands each emulator runs, and
the emulator's decisions (fed packets by hand, its sockets replaced)."""

from __future__ import annotations

import random
import struct

import pytest
from pydantic import ValidationError

from lab.errors import InputError, TopologyError
from lab.net import emulator, faults, impair, nfqueue, nfqueue_rules
from lab.nodes.namespace import LocalNamespace
from lab.topology import units
from lab.topology.loader import load_topology_text
from lab.topology.model import Impair

LAN_EP = faults.Endpoint("lab1", "h1", "eth0", LocalNamespace("lab-lab1.h1"), LocalNamespace("lab-lab1._sw"),
                         "p-h1-eth0", peer_is_switch=True)
P2P_EP = faults.Endpoint("lab1", "r1", "eth1", LocalNamespace("lab-lab1.r1"), LocalNamespace("lab-lab1.r2"), "eth1")


def test_units_are_tc_units() -> None:
    assert units.milliseconds("40ms") == 40 and units.milliseconds("1.5s") == 1500
    assert units.milliseconds("500us") == 0.5
    assert units.percent("0.1%") == 0.1 and units.percent("100%") == 100
    assert units.bits_per_second("10mbit") == 10e6 and units.bits_per_second("1mbps") == 8e6


@pytest.mark.parametrize("parse, text", [(units.milliseconds, "40"), (units.milliseconds, "2min"),
                                         (units.milliseconds, "61s"), (units.percent, "1"),
                                         (units.percent, "0%"), (units.percent, "101%"),
                                         (units.bits_per_second, "fast"), (units.bits_per_second, "0mbit")])
def test_bad_units_are_refused(parse, text) -> None:
    with pytest.raises(ValueError):
        parse(text)


def test_impair_rules_follow_netem() -> None:
    with pytest.raises(ValidationError, match="jitter needs a delay"):
        Impair(jitter="4ms")
    with pytest.raises(ValidationError, match="reorder needs a delay"):
        Impair.model_validate({"reorder": "5%"})
    with pytest.raises(ValidationError, match="empty impair"):
        Impair()
    with pytest.raises(ValidationError, match="with its unit"):
        Impair.model_validate({"loss": True})


TOPO = """\
name: imp
nodes:
  r1:
    interfaces:
      eth0: {address: 10.0.0.1/30, impair: {delay: 40ms, jitter: 4ms, loss: 1%}}
      eth1: {address: 10.0.1.1/30}
  r2:
    interfaces:
      eth0: {address: 10.0.0.2/30}
      eth1: {address: 10.0.1.2/30}
links:
  - [r1:eth0, r2:eth0]
  - {ends: [r1:eth1, r2:eth1], impair: {delay: 15ms, rate: 10mbit}}
"""


def test_a_topology_impairs_interfaces_and_both_ends_of_a_link() -> None:
    topo, _ = load_topology_text(TOPO, "t.yaml")
    found = {where: impair.describe(spec) for where, spec in topo.impairments()}
    assert found == {"r1:eth0": "delay 40ms±4ms loss 1%", "r1:eth1": "delay 15ms rate 10mbit",
                     "r2:eth1": "delay 15ms rate 10mbit"}


def test_an_interface_impaired_twice_is_refused_at_its_line() -> None:
    text = TOPO.replace("eth1: {address: 10.0.1.1/30}", "eth1: {address: 10.0.1.1/30, impair: {loss: 2%}}")
    with pytest.raises(TopologyError, match=r"t.yaml:13: links.1.impair: r1:eth1 has an impair: of its own"):
        load_topology_text(text, "t.yaml")


def test_a_bad_impair_value_names_its_line() -> None:
    with pytest.raises(TopologyError, match=r"t.yaml:13: links.1.impair.rate: 'fast' is not a rate"):
        load_topology_text(TOPO.replace("rate: 10mbit", "rate: fast"), "t.yaml")


SPEC = Impair(delay="20ms", jitter="5ms", duplicate="1%", reorder="10%", corrupt="0.1%", rate="1gbit", limit=500)


def test_netem_and_the_emulator_get_the_same_impairment() -> None:
    assert impair.netem_args(SPEC) == ["delay", "20ms", "5ms", "duplicate", "1%", "reorder", "10%",
                                       "corrupt", "0.1%", "rate", "1gbit", "limit", "500"]
    assert impair.emulator_args(SPEC) == ["--delay", "20", "--jitter", "5", "--duplicate", "1", "--reorder", "10",
                                          "--corrupt", "0.1", "--rate", "1e+09", "--limit", "500"]


def test_netem_shapes_the_egress_of_each_direction() -> None:
    fault = impair.impair(LAN_EP, SPEC, "both", emulator="netem")
    assert [a[1] for a in fault.apply] == ["--net=/run/netns/lab-lab1._sw", "--net=/run/netns/lab-lab1.h1"]
    assert [a[2:9] for a in fault.apply] == [["tc", "qdisc", "replace", "dev", dev, "root", "netem"]
                                             for dev in ("p-h1-eth0", "eth0")]
    assert [u[2:] for u in fault.undo] == [["tc", "qdisc", "del", "dev", dev, "root"] for dev in ("p-h1-eth0", "eth0")]


def test_the_emulator_adds_its_own_rule_and_is_stopped_from_outside_the_namespace() -> None:
    fault = impair.impair(P2P_EP, Impair(delay="10ms"), "both", emulator="lab")
    assert len(fault.apply) == 2 and all("start" in a for a in fault.apply)
    # in: the egress of the other end of the point-to-point link; out: the node's own egress
    assert [a[1] for a in fault.apply] == ["--net=/run/netns/lab-lab1.r2", "--net=/run/netns/lab-lab1.r1"]
    assert all(a[a.index("--hook") + 1] == "postrouting" for a in fault.apply)
    chains = [a[a.index("--chain") + 1] for a in fault.apply]
    assert chains == [f"fault-{fault.id}-in", f"fault-{fault.id}-out"]
    stop, unqueue = fault.undo[0], fault.undo[1]
    assert "stop" in stop and stop[0] != "nsenter"  # stopped from outside: the namespace may be gone
    assert unqueue[1] == "--net=/run/netns/lab-lab1.r2" and unqueue[-2:] == ["--chain", chains[0]]
    assert len(fault.pidfiles) == 2 and "(lab emulator)" in fault.what


def test_what_arrives_at_a_lan_port_needs_netem() -> None:
    """Held at the node's PREROUTING, a packet is already timestamped: ping would not see the delay."""
    for spec in (Impair(delay="1ms", duplicate="1%"), Impair(delay="1ms")):
        for direction in ("in", "both"):
            with pytest.raises(InputError, match="a LAN port"):
                impair.impair(LAN_EP, spec, direction, emulator="lab")  # type: ignore[arg-type]
    assert impair.impair(LAN_EP, Impair(delay="1ms"), "in", emulator="netem").apply[0][1] == \
        "--net=/run/netns/lab-lab1._sw"  # netem shapes the switch port's egress


def test_an_egress_takes_one_impairment_at_a_time() -> None:
    first = impair.impair(P2P_EP, Impair(delay="10ms"), "out", emulator="lab")
    again = impair.impair(P2P_EP, Impair(duplicate="1%"), "both", emulator="lab")
    other = impair.impair(P2P_EP, Impair(delay="10ms"), "in", emulator="lab")
    journal = _Journal([{"kind": "fault", "id": first.id, "where": first.where, "what": first.what,
                         "holds": first.holds}])
    with pytest.raises(InputError, match=f"already impaired that way by fault {first.id}"):
        faults.refuse_stacking(journal, again)  # type: ignore[arg-type]
    faults.refuse_stacking(journal, other)  # type: ignore[arg-type]  # the other direction is free


class _Journal:
    def __init__(self, entries: list[dict[str, object]]) -> None:
        self._entries = entries

    def entries(self) -> list[dict[str, object]]:
        return self._entries


def test_a_queue_rule_is_one_transaction_of_table_chain_and_rule() -> None:
    messages = nfqueue_rules.queue_rule("fault-abc-out", "postrouting", "eth1", 4242, emulator.RESENT_MARK)
    kinds = [nfqueue_rules.NFT_MSG_NEWTABLE, nfqueue_rules.NFT_MSG_NEWCHAIN, nfqueue_rules.NFT_MSG_NEWRULE]
    assert [kind for kind, _, _, _ in messages] == kinds * 2  # in table ip, then ip6
    assert [family for _, _, _, family in messages] == [nfqueue_rules.NFPROTO_IPV4] * 3 + [
        nfqueue_rules.NFPROTO_IPV6] * 3
    assert messages[2][2] == messages[5][2]  # the same rule in either family
    rule = messages[2][2]
    assert b"eth1" + bytes(12) in rule  # oifname, padded to IFNAMSIZ
    assert b"NFQUEUE\0" in rule and struct.pack("=HHH", 4242, 1, nfqueue_rules.NFQ_FLAG_BYPASS) in rule
    assert struct.pack("=I", emulator.RESENT_MARK) in rule
    hook = messages[1][2]
    assert struct.pack("!I", nfqueue_rules.NF_INET_POST_ROUTING) in hook and struct.pack("!i", -150) in hook
    assert [k for k, _, _, _ in nfqueue_rules.remove_chain("x")] == [nfqueue_rules.NFT_MSG_DELRULE,
                                                                     nfqueue_rules.NFT_MSG_DELCHAIN] * 2


def test_lab_emulator_can_be_forced_and_a_bad_choice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_EMULATOR", "lab")
    assert impair.choose() == "lab" and impair.choose("netem") == "netem"
    with pytest.raises(InputError, match="one of auto, netem, lab"):
        impair.choose("tc")


def _netlink_packet(packet_id: int, payload: bytes, uid: bool) -> bytes:
    attrs = nfqueue.attr(nfqueue.NFQA_PACKET_HDR, struct.pack("!IHB", packet_id, 0x0800, 4))
    attrs += nfqueue.attr(nfqueue.NFQA_PAYLOAD, payload)
    if uid:
        attrs += nfqueue.attr(nfqueue.NFQA_UID, struct.pack("!I", 0))
    return nfqueue.message(nfqueue.NFQNL_MSG_PACKET, 0, 7, attrs)


def _ipv4(length: int = 60) -> bytes:
    return bytes([0x45, 0, length >> 8, length & 0xFF]) + bytes(16) + bytes(length - 20)


def test_a_queued_packet_is_read_from_its_netlink_message() -> None:
    message = _netlink_packet(42, _ipv4(), uid=True)
    assert nfqueue.parse_packet(message, len(message)) == (42, 60, _ipv4(), True)
    other = nfqueue.message(nfqueue.NLMSG_ERROR, 0, 0, b"")
    assert nfqueue.parse_packet(other, len(other)) is None


@pytest.mark.parametrize("past_header", [False, True])
def test_corruption_flips_exactly_one_bit_where_a_checksum_will_catch_it(past_header: bool) -> None:
    rng = random.Random(1)
    for _ in range(100):
        packet = _ipv4()
        changed = emulator.corrupt(packet, rng, past_header)
        diff = [a ^ b for a, b in zip(packet, changed, strict=True)]
        flipped = [i for i, d in enumerate(diff) if d]
        assert len(flipped) == 1 and bin(diff[flipped[0]]).count("1") == 1
        assert (flipped[0] >= 20) == past_header


def test_an_ipv6_packet_is_corrupted_past_its_header_which_has_no_checksum() -> None:
    rng = random.Random(2)
    packet = bytes([0x60]) + bytes(39) + b"payload-bytes"
    for past_header in (False, True):
        changed = emulator.corrupt(packet, rng, past_header)
        flipped = [i for i, (a, b) in enumerate(zip(packet, changed, strict=True)) if a != b]
        assert len(flipped) == 1 and flipped[0] >= 40
    assert emulator.corrupt(bytes([0x60]) + bytes(39), rng) == bytes([0x60]) + bytes(39)  # nothing past it


class Recorder(emulator.Emulator):
    """The emulator's decisions, with what it would send itself recorded instead."""

    def __init__(self, params: emulator.Params) -> None:
        super().__init__(7, "eth0", params, random.Random(7))
        self.sent: list[bytes] = []

    def _send(self, packet: bytes) -> int:
        self.sent.append(packet)
        return 1


def _verdicts(out: list[bytes]) -> list[tuple[int, int, int]]:
    """(message type, verdict, packet id) of each verdict message."""
    return [(struct.unpack_from("=H", m, 4)[0], *struct.unpack_from("!II", m, 24)) for m in out]


def test_kernel_held_packets_leave_in_order_by_one_batch_verdict_when_due() -> None:
    em = Recorder(emulator.Params(delay=0.010))
    out: list[bytes] = []
    for i in range(1, 4):
        em.admit(i, 60, _ipv4(), False, now=0.0, out=out)
    em.release(0.005, out)
    assert out == [] and len(em.held) == 3
    em.release(0.0101, out)
    assert _verdicts(out) == [(nfqueue.NFQNL_MSG_VERDICT_BATCH, nfqueue.NF_ACCEPT, 3)]


def test_a_local_sockets_packet_leaves_the_kernel_at_once_and_is_sent_again_when_due() -> None:
    em = Recorder(emulator.Params(delay=0.010))
    out: list[bytes] = []
    em.admit(5, 60, _ipv4(), True, now=0.0, out=out)
    assert _verdicts(out) == [(nfqueue.NFQNL_MSG_VERDICT, nfqueue.NF_DROP, 5)] and em.sent == []
    em.release(0.011, out)
    assert em.sent == [_ipv4()]


def test_loss_duplicate_and_reorder_rates_follow_their_parameters() -> None:
    em = Recorder(emulator.Params(delay=0.010, loss=0.2, duplicate=0.1, reorder=0.3))
    out: list[bytes] = []
    for i in range(10_000):
        em.admit(i, 60, _ipv4(), True, now=0.0, out=out)
    em.release(1.0, out)
    c = em.counters
    assert abs(c.lost / c.received - 0.2) < 0.02
    assert abs(c.duplicated / c.accepted - 0.1) < 0.02 and abs(c.reordered / c.accepted - 0.3) < 0.03
    assert len(em.sent) == c.accepted + c.duplicated


def test_rate_spaces_departures_and_limit_drops_the_overflow() -> None:
    em = Recorder(emulator.Params(rate=1e6, limit=3))  # 1 Mbit/s: 1500 bytes take 12 ms
    out: list[bytes] = []
    for i in range(5):
        em.admit(i, 1500, _ipv4(1500), False, now=0.0, out=out)
    assert [round(due, 3) for due, *_ in sorted(em.held)] == [0.012, 0.024, 0.036]
    assert em.counters.overflowed == 2


def test_jitter_spreads_delays_uniformly_and_reorders() -> None:
    em = Recorder(emulator.Params(delay=0.020, jitter=0.005))
    out: list[bytes] = []
    for i in range(2000):
        em.admit(i, 60, _ipv4(), False, now=0.0, out=out)
    dues = [due for due, *_ in em.held]
    assert 0.015 <= min(dues) < 0.0152 and 0.0248 < max(dues) <= 0.025
    em.release(1.0, out)
    ids = [v[2] for v in _verdicts(out)]
    assert ids != sorted(ids) and sorted(ids) == list(range(2000))  # one verdict each, out of order
