"""lab.net.rtnl packs requests by hand: check them by decoding with pyroute2's own message classes."""

from __future__ import annotations

import errno
import struct

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from lab.net import rtnl
from lab.net.rtnl import Rtnl


class FakeSocket:
    """Stands in for the kernel: records what was sent, answers with canned replies."""

    def __init__(self, replies: list[bytes] | None = None) -> None:
        self.sent: list[bytes] = []
        self.replies = replies or []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def recv(self, size: int, flags: int = 0) -> bytes:
        if not self.replies:
            raise BlockingIOError
        return self.replies.pop(0)

    def close(self) -> None:
        pass


def offline(replies: list[bytes] | None = None) -> Rtnl:
    r = Rtnl.__new__(Rtnl)
    r.label, r.sock, r._queue, r._what, r._seq = "lab-t.h1", FakeSocket(replies), [], {}, 0  # type: ignore[assignment]
    return r


def split(data: bytes) -> list[bytes]:
    out, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack_from("=I", data, offset)
        out.append(data[offset:offset + length])
        offset += (length + 3) & ~3
    return out


def test_a_veth_is_born_with_names_indexes_master_gso_and_its_peer_in_another_namespace():
    r = offline()
    r.add_veth("h1-eth0", 9, "eth0", 2, 7, mtu=1400, mac="02:00:00:00:00:01", peer_mac="02:00:00:00:00:02", master=3)
    m = ifinfmsg(r._queue[0])
    m.decode()
    assert m["header"]["type"] == rtnl.RTM_NEWLINK
    assert m["header"]["flags"] & (rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL) == rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
    assert not m["header"]["flags"] & 0x4, "sent without NLM_F_ACK: only errors are answered"
    assert (m["index"], m["flags"] & 1, m["change"] & 1) == (9, 1, 1)
    assert m.get_attr("IFLA_IFNAME") == "h1-eth0"
    assert (m.get_attr("IFLA_MTU"), m.get_attr("IFLA_MASTER"), m.get_attr("IFLA_GSO_MAX_SEGS")) == (1400, 3, 1)
    assert m.get_attr("IFLA_ADDRESS") == "02:00:00:00:00:01"
    info = m.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    peer = dict(info.get_attr("IFLA_INFO_DATA")["attrs"])["VETH_INFO_PEER"]
    attrs = dict(peer["attrs"])
    assert peer["index"] == 2 and peer["flags"] == 0, "the peer is born down: a veth without its peer cannot go up"
    assert attrs == {"IFLA_IFNAME": "eth0", "IFLA_MTU": 1400, "IFLA_ADDRESS": "02:00:00:00:00:02",
                     "IFLA_GSO_MAX_SEGS": 1, "IFLA_NET_NS_FD": 7}


def test_a_bridge_has_stp_off_and_no_forward_delay():
    r = offline()
    r.add_bridge("br-lan", 2, mtu=9000)
    m = ifinfmsg(r._queue[0])
    m.decode()
    info = m.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "bridge"
    assert dict(info.get_attr("IFLA_INFO_DATA")["attrs"]) == {"IFLA_BR_FORWARD_DELAY": 0, "IFLA_BR_STP_STATE": 0}
    assert (m["index"], m.get_attr("IFLA_IFNAME"), m.get_attr("IFLA_MTU"), m["flags"] & 1) == (2, "br-lan", 9000, 1)


def test_set_link_changes_only_what_it_is_asked_to():
    r = offline()
    r.set_link(5, master=2)
    r.set_link(1, up=True)
    only_master, lo_up = ifinfmsg(r._queue[0]), ifinfmsg(r._queue[1])
    only_master.decode()
    lo_up.decode()
    assert only_master["change"] == 0 and only_master.get_attr("IFLA_MASTER") == 2
    assert (lo_up["index"], lo_up["flags"], lo_up["change"]) == (1, 1, 1)


def test_an_address_is_local_and_address_with_its_prefix():
    r = offline()
    r.add_address(2, "10.128.3.7/16")
    m = ifaddrmsg(r._queue[0])
    m.decode()
    assert (m["family"], m["prefixlen"], m["index"]) == (2, 16, 2)
    assert m.get_attr("IFA_LOCAL") == m.get_attr("IFA_ADDRESS") == "10.128.3.7"
    assert m.get_attr("IFA_BROADCAST") is None  # as `ip addr add A/P dev IF`


@pytest.mark.parametrize("dst,via,oif,dst_len,scope", [
    ("default", "10.0.0.1", None, 0, 0),
    ("10.64.0.0/22", "10.64.0.5", 3, 22, 0),
    ("10.9.0.0/24", None, 2, 24, 253),  # no gateway: on-link, like `ip route add X dev IF`
])
def test_routes_are_static_in_the_main_table(dst, via, oif, dst_len, scope):
    r = offline()
    r.add_route(dst, via, oif)
    m = rtmsg(r._queue[0])
    m.decode()
    assert (m["dst_len"], m["table"], m["proto"], m["scope"], m["type"]) == (dst_len, 254, 4, scope, 1)
    assert m.get_attr("RTA_DST") == (dst.split("/")[0] if dst_len else None)
    assert (m.get_attr("RTA_GATEWAY"), m.get_attr("RTA_OIF")) == (via, oif)


def test_flush_packs_many_requests_per_send_and_never_more_than_a_chunk():
    r = offline()
    for i in range(2000):
        r.add_address(2 + i % 5, f"10.{i // 250}.{i % 250}.1/24")
    r.flush()
    sent = r.sock.sent  # type: ignore[attr-defined]
    assert 1 < len(sent) < 2000 and all(len(chunk) <= rtnl.CHUNK for chunk in sent)
    messages = [m for chunk in sent for m in split(chunk)]
    seqs = [struct.unpack_from("=I", m, 8)[0] for m in messages]
    assert seqs == list(range(1, 2001))
    assert r.pending() == 0


def error_reply(seq: int, code: int, text: str = "") -> bytes:
    """An NLMSG_ERROR as the kernel sends it with NETLINK_CAP_ACK and NETLINK_EXT_ACK."""
    inner = struct.pack("=IHHII", 32, rtnl.RTM_NEWADDR, 1, seq, 0)
    tlvs = rtnl.nla_str(rtnl.NLMSGERR_ATTR_MSG, text) if text else b""
    flags = 0x100 | (rtnl.NLM_F_ACK_TLVS if text else 0)
    body = struct.pack("=i", -code) + inner + tlvs
    return struct.pack("=IHHII", 16 + len(body), rtnl.NLMSG_ERROR, flags, seq, 0) + body


def test_a_refused_request_is_named_with_the_kernels_own_words():
    r = offline([error_reply(2, errno.EEXIST, "Address already assigned")])
    r.add_address(2, "10.0.0.1/24", "eth0")
    r.add_address(2, "10.0.0.1/24", "eth0")
    with pytest.raises(OSError) as info:
        r.flush()
    assert info.value.errno == errno.EEXIST
    assert str(info.value) == ("[Errno 17] add address 10.0.0.1/24 to eth0 in lab-t.h1: File exists "
                               "(Address already assigned)")


def test_silence_means_success():
    r = offline()
    r.add_route("default", "10.0.0.1")
    r.flush()  # no reply queued: nothing raised
    assert len(r.sock.sent) == 1  # type: ignore[attr-defined]
