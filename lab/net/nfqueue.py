"""The NFQUEUE netlink protocol, as lab's link emulator speaks it: bind a queue, read packets, give verdicts.

A queued packet arrives as one ``NFQNL_MSG_PACKET`` message (its id, its bytes, and whether a
local socket sent it); the answer is a ``NFQNL_MSG_VERDICT`` for one id, or a
``NFQNL_MSG_VERDICT_BATCH`` for every id up to one (packets that leave in the order they came).
From include/uapi/linux/netfilter/nfnetlink_queue.h; standard library only.
"""

from __future__ import annotations

import os
import socket
import struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = NFNL_SUBSYS_QUEUE << 8 | 0
NFQNL_MSG_VERDICT = NFNL_SUBSYS_QUEUE << 8 | 1
NFQNL_MSG_CONFIG = NFNL_SUBSYS_QUEUE << 8 | 2
NFQNL_MSG_VERDICT_BATCH = NFNL_SUBSYS_QUEUE << 8 | 3
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_PACKET = 2
NFQA_CFG_MASK, NFQA_CFG_FLAGS, NFQA_CFG_F_UID_GID = 4, 5, 0x8
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_PAYLOAD, NFQA_CAP_LEN, NFQA_UID = 1, 2, 10, 13, 16
NF_DROP, NF_ACCEPT = 0, 1


def message(msg_type: int, flags: int, queue: int, attrs: bytes, family: int = socket.AF_UNSPEC) -> bytes:
    """A netlink message to the queue subsystem: nlmsghdr, nfgenmsg (the queue number, big-endian), attributes."""
    body = struct.pack("BB", family, 0) + struct.pack("!H", queue) + attrs
    return struct.pack("=IHHII", 16 + len(body), msg_type, flags, 0, 0) + body


def attr(kind: int, data: bytes) -> bytes:
    head = struct.pack("=HH", 4 + len(data), kind)
    return head + data + b"\0" * (-len(data) % 4)


def verdict(queue: int, packet_id: int, decision: int, payload: bytes | None = None, batch: bool = False) -> bytes:
    """ACCEPT or DROP one packet (``batch``: every packet up to this id), optionally with new bytes."""
    attrs = attr(NFQA_VERDICT_HDR, struct.pack("!II", decision, packet_id))
    if payload is not None:
        attrs += attr(NFQA_PAYLOAD, payload)
    return message(NFQNL_MSG_VERDICT_BATCH if batch else NFQNL_MSG_VERDICT, NLM_F_REQUEST, queue, attrs)


def parse_packet(buf: bytes | memoryview, size: int) -> tuple[int, int, bytes, bool] | None:
    """A queued packet's (id, length, bytes, whether a local socket sent it) from one netlink message;
    None for other messages (the kernel names the socket's owner, NFQA_UID, only for a local socket)."""
    if size < 20:
        return None
    _, msg_type = struct.unpack_from("=IH", buf, 0)
    if msg_type != NFQNL_MSG_PACKET:
        return None
    packet_id, length, payload, owned, offset = -1, 0, b"", False, 20
    while offset + 4 <= size:
        alen, atype = struct.unpack_from("=HH", buf, offset)
        if alen < 4:
            break
        atype &= 0x3FFF
        if atype == NFQA_PACKET_HDR:
            packet_id = struct.unpack_from("!I", buf, offset + 4)[0]
        elif atype == NFQA_PAYLOAD:
            payload = bytes(buf[offset + 4:offset + alen])
        elif atype == NFQA_CAP_LEN:
            length = struct.unpack_from("!I", buf, offset + 4)[0]
        elif atype == NFQA_UID:
            owned = True
        offset += (alen + 3) & ~3
    if packet_id < 0:
        return None
    return packet_id, length or len(payload), payload, owned


def bind(sock: socket.socket, queue: int, maxlen: int) -> None:
    """Take ``queue`` (EBUSY if another process has it), ask for whole packets and who sent them.

    One send, one acknowledgement each, in order (the bind first: the others need the queue).
    """
    configs = (attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)),
               attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0xFFFF, NFQNL_COPY_PACKET)),
               attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen)),
               attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_UID_GID))
               + attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_UID_GID)))
    sock.send(b"".join(message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, queue, a) for a in configs))
    for _ in configs:
        answer = sock.recv(4096)
        if struct.unpack_from("=H", answer, 4)[0] == NLMSG_ERROR:
            err = -struct.unpack_from("=i", answer, 16)[0]
            if err:
                raise OSError(err, f"NFQUEUE {queue}: {os.strerror(err)}")
