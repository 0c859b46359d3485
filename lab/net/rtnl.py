"""A raw rtnetlink socket that sends many requests per system call: the fast path of ``lab up``.

Why not pyroute2 here: building a lab is a few thousand fixed-shape requests
(create a veth, add an address, add a route). pyroute2 0.9 runs an asyncio
loop round trip per request and waits for each ACK; that costs more than the
kernel work itself. Here each request is packed with ``struct`` into a queue,
and ``flush()`` hands the kernel up to 64 KiB of requests in one ``send()``.

Two kernel facts make this safe:

- rtnetlink processes a ``send()`` synchronously, in order, before the call
  returns; so when ``flush()`` returns every queued request has been applied
  (a later batch on another namespace's socket can rely on it).
- Requests are sent without NLM_F_ACK: success is silent, but an error is
  always answered. After each send the socket is drained without blocking; any
  answer is an error, mapped back (by sequence number) to the request that
  caused it, with the kernel's extended-ack text when it gives one.

Everything else (reading links for ``lab inspect``, faults) still uses pyroute2.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from ipaddress import ip_address

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
SO_RCVBUFFORCE = 33

NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_ACK_TLVS = 0x200
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK = 16
RTM_SETLINK = 19
RTM_NEWADDR = 20
RTM_NEWROUTE = 24

IFF_UP = 0x1
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_NET_NS_FD = 28
IFLA_GSO_MAX_SEGS = 40
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
IFLA_BR_FORWARD_DELAY = 1
IFLA_BR_STP_STATE = 5

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_F_NODAD = 0x02

RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTN_UNICAST = 1

SIOCETHTOOL = 0x8946
ETHTOOL_GLINK = 0x0A
ETHTOOL_STXCSUM = 0x17

CHUNK = 64 * 1024  # bytes of requests per send(); well under the default 208 KiB socket buffer
BUFFER = 4 * 1024 * 1024  # room for many error answers before the kernel has to drop one

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NLA = struct.Struct("=HH")
_U32 = struct.Struct("=I")


def nla(kind: int, payload: bytes) -> bytes:
    """One netlink attribute: length, type, payload, padded to 4 bytes."""
    length = 4 + len(payload)
    return _NLA.pack(length, kind) + payload + b"\0" * (-length & 3)


def nla_u32(kind: int, value: int) -> bytes:
    return nla(kind, _U32.pack(value))


def nla_str(kind: int, value: str) -> bytes:
    return nla(kind, value.encode() + b"\0")


def _mac(value: str) -> bytes:
    return bytes.fromhex(value.replace(":", ""))


def _link_attrs(ifname: str, mtu: int | None, mac: str | None, gso_max_segs: int | None) -> bytes:
    out = nla_str(IFLA_IFNAME, ifname)
    if mtu:
        out += nla_u32(IFLA_MTU, mtu)
    if mac:
        out += nla(IFLA_ADDRESS, _mac(mac))
    if gso_max_segs:
        out += nla_u32(IFLA_GSO_MAX_SEGS, gso_max_segs)
    return out


class Rtnl:
    """A NETLINK_ROUTE socket bound to the namespace it was opened in, with a queue of requests."""

    def __init__(self, label: str = "") -> None:
        self.label = label  # the namespace's name, for error messages
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, BUFFER)
        except OSError:
            pass  # older kernels, or no CAP_NET_ADMIN: fewer details in errors, same results
        self.sock.bind((0, 0))
        self._queue: list[bytes] = []
        self._what: dict[int, str] = {}
        self._seq = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the queue ---------------------------------------------------------

    def request(self, msg_type: int, flags: int, body: bytes, what: str) -> None:
        """Queue one request; ``what`` names it in the error if the kernel refuses it."""
        self._seq += 1
        self._queue.append(_HDR.pack(16 + len(body), msg_type, NLM_F_REQUEST | flags, self._seq, 0) + body)
        self._what[self._seq] = what

    def pending(self) -> int:
        return len(self._queue)

    def flush(self) -> None:
        """Send every queued request (64 KiB per system call); raise OSError naming the first refused one."""
        queue, self._queue = self._queue, []
        chunk: list[bytes] = []
        size = 0
        for msg in queue:
            if size + len(msg) > CHUNK and chunk:
                self._send(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(msg)
            size += len(msg)
        if chunk:
            self._send(b"".join(chunk))
        self._what.clear()

    def _send(self, data: bytes) -> None:
        self.sock.send(data)
        self._raise_errors()

    def _raise_errors(self) -> None:
        """The kernel answered only if something failed; turn the first answer into an OSError."""
        try:
            data = self.sock.recv(BUFFER, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                msg = f"{self.label}: the kernel refused more requests than it could report"
                raise OSError(errno.ENOBUFS, msg) from None
            raise
        offset = 0
        while offset + 16 <= len(data):
            length, msg_type, flags, seq, _ = _HDR.unpack_from(data, offset)
            if msg_type == NLMSG_ERROR and length >= 20:
                (code,) = struct.unpack_from("=i", data, offset + 16)
                if code:
                    what = self._what.get(seq, f"request {seq}")
                    text = os.strerror(-code)
                    detail = _ext_ack_message(data[offset:offset + length], flags)
                    where = f" in {self.label}" if self.label else ""
                    raise OSError(-code, f"{what}{where}: {text}" + (f" ({detail})" if detail else ""))
            offset += max(16, (length + 3) & ~3)

    # -- requests ----------------------------------------------------------

    def add_veth(
        self, ifname: str, index: int, peer_ifname: str, peer_index: int, peer_netns_fd: int | None, *,
        mtu: int | None = None, mac: str | None = None, peer_mac: str | None = None,
        master: int | None = None, gso_max_segs: int | None = 1, up: bool = True,
    ) -> None:
        """One veth pair, configured at birth: names, indexes, MTU, MACs, GSO, first end's master and state.

        The first end is made in this socket's namespace; the peer goes straight
        into the namespace ``peer_netns_fd`` refers to (None: this one). The
        peer is born down and must be set up by its own namespace's socket: the
        kernel configures the peer before the pair is joined, and a veth with
        no peer yet refuses to go up (ENOTCONN).
        """
        peer = _link_attrs(peer_ifname, mtu, peer_mac, gso_max_segs)
        if peer_netns_fd is not None:
            peer += nla_u32(IFLA_NET_NS_FD, peer_netns_fd)
        peer_msg = _IFINFO.pack(0, 0, peer_index, 0, 0) + peer
        info = nla_str(IFLA_INFO_KIND, "veth") + nla(IFLA_INFO_DATA, nla(VETH_INFO_PEER, peer_msg))
        attrs = _link_attrs(ifname, mtu, mac, gso_max_segs) + nla(IFLA_LINKINFO, info)
        if master:
            attrs += nla_u32(IFLA_MASTER, master)
        flags = IFF_UP if up else 0
        body = _IFINFO.pack(0, 0, index, flags, flags) + attrs
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create veth {ifname}/{peer_ifname}")

    def add_bridge(self, ifname: str, index: int, mtu: int | None = None) -> None:
        """A bridge with STP off and forward delay 0 (ports forward as soon as they are up), already up."""
        data = nla_u32(IFLA_BR_FORWARD_DELAY, 0) + nla_u32(IFLA_BR_STP_STATE, 0)
        info = nla_str(IFLA_INFO_KIND, "bridge") + nla(IFLA_INFO_DATA, data)
        attrs = _link_attrs(ifname, mtu, None, None) + nla(IFLA_LINKINFO, info)
        body = _IFINFO.pack(0, 0, index, IFF_UP, IFF_UP) + attrs
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create bridge {ifname}")

    def set_link(
        self, index: int, *, up: bool | None = None, master: int | None = None, what: str = ""
    ) -> None:
        flags = IFF_UP if up else 0
        change = IFF_UP if up is not None else 0
        attrs = nla_u32(IFLA_MASTER, master) if master else b""
        body = _IFINFO.pack(0, 0, index, flags, change) + attrs
        self.request(RTM_SETLINK, 0, body, what or f"configure interface #{index}")

    def add_address(self, index: int, address: str, ifname: str = "") -> None:
        """``ip addr add A/P dev IF``: IFA_LOCAL and IFA_ADDRESS both the address, no broadcast.

        An IPv6 address is added ``nodad``: usable at once, not tentative while DAD runs.
        """
        ip, _, prefix = address.partition("/")
        parsed = ip_address(ip)
        family, flags = (socket.AF_INET, 0) if parsed.version == 4 else (socket.AF_INET6, IFA_F_NODAD)
        body = _IFADDR.pack(family, int(prefix or parsed.max_prefixlen), flags, 0, index)
        body += nla(IFA_LOCAL, parsed.packed) + nla(IFA_ADDRESS, parsed.packed)
        what = f"add address {address} to {ifname or index}"
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, what)

    def add_route(self, dst: str, via: str | None = None, oif: int | None = None, family: int = 4) -> None:
        """``ip [-6] route add DST [via GW] [dev IF] proto static``; DST 'default' (of ``family``) or a CIDR."""
        if dst == "default":
            dst = "0.0.0.0/0" if family == 4 else "::/0"
        net, _, prefix = dst.partition("/")
        parsed = ip_address(net)
        dst_len = int(prefix or parsed.max_prefixlen)
        af = socket.AF_INET if parsed.version == 4 else socket.AF_INET6
        scope = RT_SCOPE_UNIVERSE if via or parsed.version == 6 else RT_SCOPE_LINK
        body = _RTMSG.pack(af, dst_len, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, scope, RTN_UNICAST, 0)
        if dst_len:
            body += nla(RTA_DST, parsed.packed)
        if via:
            body += nla(RTA_GATEWAY, ip_address(via).packed)
        if oif:
            body += nla_u32(RTA_OIF, oif)
        what = f"add route {dst}" + (f" via {via}" if via else "") + (f" dev #{oif}" if oif else "")
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, what)

    # -- not netlink, but per namespace and cheap on this socket ------------

    def tx_checksum_off(self, ifname: str) -> None:
        """``ethtool -K IF tx off``, through this socket: device ioctls act in the socket's namespace."""
        self._ethtool(ifname, ETHTOOL_STXCSUM, 0, "turn TX checksum offload off on")

    def settle_link(self, ifname: str) -> bool:
        """``ethtool IF`` (get link): the kernel first applies the link's pending carrier event; True if up.

        A carrier change is applied later by the kernel's linkwatch worker, at
        most ~100-200 devices a run and a run a second: until then a veth
        that came up before its peer keeps a no-op qdisc (drops what it is
        given) and a bridge port stays disabled. With 1,000 ports that is
        tens of seconds of a half-working LAN after ``up`` returned. Asking
        for the link state applies the pending event at once, in this call.
        """
        return bool(self._ethtool(ifname, ETHTOOL_GLINK, 0, "read the link state of"))

    def _ethtool(self, ifname: str, cmd: int, data: int, what: str) -> int:
        import ctypes
        import fcntl

        value = ctypes.create_string_buffer(struct.pack("II", cmd, data))
        ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value))
        try:
            fcntl.ioctl(self.sock.fileno(), SIOCETHTOOL, ifreq)
        except OSError as exc:
            raise OSError(exc.errno, f"{what} {ifname} in {self.label}: {exc.strerror}") from None
        return int(struct.unpack_from("II", value.raw)[1])


def _ext_ack_message(msg: bytes, flags: int) -> str:
    """The kernel's own words for an error (NETLINK_EXT_ACK), when it sent any."""
    if not flags & NLM_F_ACK_TLVS or len(msg) < 36:
        return ""
    (inner_len,) = struct.unpack_from("=I", msg, 20)
    offset = 20 + (16 if flags & 0x100 else (inner_len + 3) & ~3)  # NLM_F_CAPPED: only the request's header
    while offset + 4 <= len(msg):
        length, kind = _NLA.unpack_from(msg, offset)
        if length < 4:
            break
        if kind == NLMSGERR_ATTR_MSG:
            return msg[offset + 4: offset + length].rstrip(b"\0").decode(errors="replace")
        offset += (length + 3) & ~3
    return ""
