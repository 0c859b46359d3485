"""The rules that feed lab's link emulator its packets, written to nf_tables by netlink in-process.

One base chain per impaired direction, in a table of lab's own (``ip lab_emulator``, and the
same in ``ip6 lab_emulator`` for IPv6): it
sends what leaves (``postrouting``, by ``oifname``) or arrives at (``prerouting``, by
``iifname``) one interface to an NFQUEUE, except what the emulator itself sends again
(:data:`~lab.net.emulator.RESENT_MARK`); with the bypass flag, packets pass while no
process reads the queue. The queue verdict is the xtables ``NFQUEUE`` target through
nft_compat (this kernel has no native nft ``queue``), exactly what ``iptables -j NFQUEUE``
would install.

Why not ``iptables``: a rule costs an ``iptables-restore`` process per namespace, about
2.3 ms of CPU each; a lab of 200 impaired routers spent more on them than on the whole rest
of ``up``. A netlink batch costs microseconds, and the emulator daemon, which enters each
namespace anyway to open its queue, writes the rule there too. Standard library only.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Literal

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NFT_MSG_NEWTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_DELCHAIN, NFT_MSG_NEWRULE, NFT_MSG_DELRULE = 0, 3, 5, 6, 8
NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE = 0x1, 0x4, 0x400
NLMSG_ERROR = 2
NLA_F_NESTED = 0x8000
NFPROTO_IPV4, NFPROTO_IPV6 = 2, 10
FAMILIES = (NFPROTO_IPV4, NFPROTO_IPV6)  # IPv4 and IPv6: a table and chain in each
NF_INET_PRE_ROUTING, NF_INET_POST_ROUTING = 0, 4
NF_ACCEPT = 1
NFT_REG_1 = 1
NFT_META_MARK, NFT_META_IIFNAME, NFT_META_OIFNAME = 3, 6, 7
NFT_CMP_EQ, NFT_CMP_NEQ = 0, 1
NFQ_FLAG_BYPASS = 0x01
PRIORITY = -150  # mangle's: with lab's other rules (iptables mangle), before NAT
TABLE = "lab_emulator"

Hook = Literal["postrouting", "prerouting"]
Message = tuple[int, int, bytes, int]  # (message type, flags, attributes, nf_tables family)


def _attr(kind: int, data: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(data), kind) + data + b"\0" * (-len(data) % 4)


def _nested(kind: int, *parts: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(parts))


def _string(kind: int, text: str) -> bytes:
    return _attr(kind, text.encode() + b"\0")


def _be32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("!i" if value < 0 else "!I", value))


def _expr(name: str, *data: bytes) -> bytes:
    return _nested(1, _string(1, name), _nested(2, *data))  # NFTA_LIST_ELEM{NFTA_EXPR_NAME, NFTA_EXPR_DATA}


def _message(kind: int, flags: int, attrs: bytes, seq: int, family: int = NFPROTO_IPV4,
             res_id: int = 0) -> bytes:
    body = struct.pack("BBH", family, 0, socket.htons(res_id)) + attrs
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def queue_rule(chain: str, hook: Hook, ifname: str, queue: int, mark: int) -> list[Message]:
    """The messages that make the table, the base chain and its one rule, in each family."""
    hooknum = NF_INET_POST_ROUTING if hook == "postrouting" else NF_INET_PRE_ROUTING
    key = NFT_META_OIFNAME if hook == "postrouting" else NFT_META_IIFNAME
    name = ifname.encode().ljust(16, b"\0")
    target = struct.pack("=HHH", queue, 1, NFQ_FLAG_BYPASS)  # struct xt_NFQ_info_v3
    rule = _nested(4,  # NFTA_RULE_EXPRESSIONS
                   _expr("meta", _be32(1, NFT_REG_1), _be32(2, key)),
                   _expr("cmp", _be32(1, NFT_REG_1), _be32(2, NFT_CMP_EQ), _nested(3, _attr(1, name))),
                   _expr("meta", _be32(1, NFT_REG_1), _be32(2, NFT_META_MARK)),
                   _expr("cmp", _be32(1, NFT_REG_1), _be32(2, NFT_CMP_NEQ),
                         _nested(3, _attr(1, struct.pack("=I", mark)))),
                   _expr("target", _string(1, "NFQUEUE"), _be32(2, 3), _attr(3, target)))
    create = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK
    return [message for family in FAMILIES for message in (
        (NFT_MSG_NEWTABLE, create, _string(1, TABLE), family),
        (NFT_MSG_NEWCHAIN, create, _string(1, TABLE) + _string(3, chain)
         + _nested(4, _be32(1, hooknum), _be32(2, PRIORITY)) + _be32(5, NF_ACCEPT) + _string(7, "filter"), family),
        (NFT_MSG_NEWRULE, create, _string(1, TABLE) + _string(2, chain) + rule, family),
    )]


def remove_chain(chain: str) -> list[Message]:
    """Its rules (a DELRULE without a handle takes them all), then the chain, in each family."""
    flags = NLM_F_REQUEST | NLM_F_ACK
    return [message for family in FAMILIES for message in (
        (NFT_MSG_DELRULE, flags, _string(1, TABLE) + _string(2, chain), family),
        (NFT_MSG_DELCHAIN, flags, _string(1, TABLE) + _string(3, chain), family))]


def commit(messages: list[Message]) -> None:
    """One nf_tables transaction in this process's network namespace; OSError with the kernel's errno."""
    batch = [_message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, b"", 0, socket.AF_UNSPEC, NFNL_SUBSYS_NFTABLES)]
    batch += [_message(NFNL_SUBSYS_NFTABLES << 8 | kind, flags, attrs, seq, family)
              for seq, (kind, flags, attrs, family) in enumerate(messages, 1)]
    batch.append(_message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, b"", len(messages) + 1, socket.AF_UNSPEC,
                          NFNL_SUBSYS_NFTABLES))
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
        sock.bind((0, 0))
        sock.settimeout(5)
        sock.send(b"".join(batch))
        acked = 0
        while acked < len(messages):
            data = sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _, seq, _ = struct.unpack_from("=IHHII", data, offset)
                if kind == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", data, offset + 16)[0]
                    if err:
                        raise OSError(err, f"nf_tables message {seq}: {os.strerror(err)}")
                    acked += 1
                offset += (length + 3) & ~3 if length else len(data)
