"""§5.8.2 UDP: a datagram is read whole by one call, or what does not fit is lost.

The reader's calls run under strace: what each ``recvfrom``/``recvmsg`` returned (and its
``msg_flags``) is the kernel's answer. The capture shows the datagrams as sent.
"""

from __future__ import annotations

import ipaddress
import json
import re

from lab.errors import InputError
from lab.experiments import expect, syscalls
from lab.experiments.book import flows
from lab.experiments.context import Run
from lab.experiments.engine import experiment

CLIENT, SERVER = "kongming20", "ernest-laptop"
PLAN = ("full", "short", "recvmsg", "trunc")
CALL = {"full": "recv(1024)", "short": "recv(50)", "recvmsg": "recvmsg(50)", "trunc": "recv(10, MSG_TRUNC)"}


def returned(kind: str, size: int) -> int:
    """What the kernel returns for a datagram of ``size`` bytes read by call ``kind``."""
    if kind == "full":
        return min(size, 1024)
    if kind == "trunc":
        return size  # Linux UDP: MSG_TRUNC returns the real length, however small the buffer
    return min(size, 50)


@experiment(
    id="udp-datagram-boundaries",
    title="UDP keeps message boundaries: one datagram per read, and what does not fit the buffer is lost",
    section="§5.8.2",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
ssize_t recvfrom( int sockfd, void* buf, size_t len, int flags, struct sockaddr* src_addr,
                  socklen_t* addrlen );
(§5.8.2: UDP is connectionless, each read gets one datagram; the study notes: "UDP 有边界",
 TCP 没有. A buffer too small for a datagram loses the rest of it.)""",
    modern="""Unchanged on 6.x. The sender's datagrams (sizes) are all queued before the reader's
    first call, yet each recvfrom returns exactly one of them: recv(1024) the whole datagram,
    recv(50) its first 50 bytes while the rest is dropped (the next call returns the next
    datagram), recvmsg with a 50-byte buffer sets MSG_TRUNC in msg_flags, and recv with a 10-byte
    buffer and MSG_TRUNC returns the datagram's real length (a Linux extension for UDP). ss -uan's
    Recv-Q counts the queued datagrams' memory (skb truesize), not their payload bytes.""",
)
def udp_datagram_boundaries(run: Run, port: int = 12370, sizes: str = "100,200,300,400,500") -> None:
    try:
        lengths = [int(s) for s in sizes.split(",")]
    except ValueError:
        raise InputError(f"-p sizes={sizes}: comma-separated datagram sizes, e.g. 100,200,300") from None
    if not lengths or not all(1 <= n <= 1472 for n in lengths):
        raise InputError(f"-p sizes={sizes}: each from 1 to 1472 bytes (one unfragmented datagram)")
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    prefix, trace = run.strace(SERVER, ("recvfrom", "recvmsg"))
    with run.capture([f"{SERVER}:eth0"], f"udp port {port}"):
        reader = run.spawn(SERVER, [*prefix, run.python(SERVER), "-m", "lab.servers.udp_reader", server_ip, str(port),
                                    "--count", str(len(lengths)), "--wait", "1.5", "--plan", ",".join(PLAN)],
                           title=f"udp_reader {server_ip} {port} (strace)", ready="listening on")
        run.py(CLIENT, "udp_burst", server_ip, str(port), "--sizes", sizes)
        queued = run.sh(SERVER, ["ss", "-Huan", f"sport = :{port}"], title="ss -uan: the datagrams queued")
        reader.wait(15)
    calls = syscalls.named(run.syscalls(SERVER, trace), "recvfrom", "recvmsg")
    sent = expect.udp(run.packets, src=client_ip, dport=port)
    run.expect(expect.equals(f"the capture shows {len(lengths)} datagrams, UDP length = size + 8",
                             [n + 8 for n in lengths], [p.udp.length for p in sent if p.udp], sent))
    recv_q = int(queued.stdout.split()[1]) if len(queued.stdout.split()) > 1 else 0
    run.expect(expect.check("ss -uan: the datagrams wait in the receive queue before the first read (Recv-Q > 0)",
                            recv_q > 0, "> 0", recv_q))
    run.note(f"ss -uan Recv-Q {recv_q} for {sum(lengths)} bytes of payload: it counts buffer memory, not bytes")
    plan = [PLAN[i % len(PLAN)] for i in range(len(lengths))]
    run.expect(expect.equals("one datagram per call: each returns its own datagram's bytes, whatever is queued "
                             f"({', '.join(CALL[k] for k in plan)})",
                             [returned(k, n) for k, n in zip(plan, lengths, strict=True)], [c.ret for c in calls]))
    for i, (kind, size) in enumerate(zip(plan, lengths, strict=True)):
        if kind == "recvmsg" and i < len(calls):
            flagged = "MSG_TRUNC" in calls[i].args
            run.expect(expect.equals(f"recvmsg(50) of a {size}-byte datagram: MSG_TRUNC in msg_flags "
                                     f"{'set' if size > 50 else 'not set'}", size > 50, flagged))


@experiment(
    id="tcp-stream-no-boundaries",
    title="TCP keeps no message boundaries (粘包): three sends, one recv; MSG_PEEK reads without taking",
    section="§3.1, §5.8.1",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
(§3.1: TCP 模块发送出的TCP报文段的个数和应用程序执行的写操作次数之间没有固定的数量关系 ... 应用程序对
 数据的发送和接收是没有边界限制的. §5.8.1: MSG_PEEK 窥探读缓存中的数据，此次读操作不会导致这些数据被清除.
 The study notes: 粘包 — frame messages with a length prefix.)""",
    modern="""Unchanged on 6.x. The client writes `sends` messages of `size` bytes (TCP_NODELAY: one
    segment each, as the capture shows); the server, waiting before its first read, gets all of
    them from one recv: the stream has no boundaries, so an application must frame its messages
    (a length prefix, a delimiter). A recv with MSG_PEEK returns the same bytes and leaves them
    queued, so the recv after it returns them again. Nagle and autocorking may coalesce sends on
    a LAN instead; the claims count bytes per call, never segments alone.""",
)
def tcp_stream_no_boundaries(run: Run, port: int = 12375, size: int = 100, sends: int = 3) -> None:
    if not (1 <= size <= 1400 and 2 <= sends <= 20):
        raise InputError(f"-p size={size} -p sends={sends}: size 1..1400, sends 2..20")
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    total = size * sends
    prefix, trace = run.strace(SERVER, ("recvfrom",))
    with run.capture([f"{SERVER}:eth0"], f"tcp port {port}"):
        reader = run.spawn(SERVER, [*prefix, run.python(SERVER), "-m", "lab.servers.peek_reader", server_ip, str(port),
                                    "--wait", "1"], title=f"peek_reader {server_ip} {port} (strace)",
                           ready="listening on")
        run.py(CLIENT, "send_once", server_ip, str(port), "--bytes", str(size), "--times", str(sends), "--gap", "0",
               "--hold", "1.5")
        reader.wait(15)
    calls = syscalls.named(run.syscalls(SERVER, trace), "recvfrom")
    data = expect.data([p for p in run.packets if p.src == client_ip and p.dport == port])
    run.expect(expect.check(f"the capture shows the {total} bytes in more than one segment (the sender wrote "
                            f"{sends} times)", len(data) >= 2 and sum(flows.seg(p).length for p in data) == total,
                            f"≥ 2 segments, {total} bytes", f"{len(data)} segments: "
                            f"{[flows.seg(p).length for p in data]}", data))
    peek = [c for c in calls if "MSG_PEEK" in c.args]
    after = [c for c in calls if "MSG_PEEK" not in c.args]
    run.expect(expect.equals("recv(MSG_PEEK) returns every byte queued, from all the sends (strace)", total,
                             peek[0].ret if peek else None))
    run.expect(expect.equals("the recv after it returns the same bytes again: the peek left them queued, and one "
                             "read takes what several sends wrote", total, after[0].ret if after else None))


def broadcast_address(run: Run, node: str) -> str:
    """The subnet's broadcast address of the node's eth0 address, as the kernel holds it (ip -j addr)."""
    shown = json.loads(run.sh(node, ["ip", "-j", "-4", "addr", "show", "dev", "eth0"], record=False).stdout)
    info = shown[0]["addr_info"][0]
    return str(ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}").network.broadcast_address)


def queued_bytes(run: Run, node: str, port: int) -> int:
    """ss -uan Recv-Q of the UDP socket on ``port`` in ``node`` (0 when none)."""
    shown = run.sh(node, ["ss", "-Huan", f"sport = :{port}"], title=f"ss -uan on {node}").stdout.split()
    return int(shown[1]) if len(shown) > 1 else 0


@experiment(
    id="broadcast-so-broadcast",
    title="UDP broadcast: refused without SO_BROADCAST; with it one frame reaches every host of the LAN, not beyond",
    section="§5.8.2, §1.1",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
(The study notes: 广播 — a datagram to the subnet's broadcast address reaches every host of the LAN;
 routers do not forward it. SO_BROADCAST: 允许发送广播数据报 (§5.11, table 5-4).)""",
    modern="""Unchanged on 6.x. sendto() to 192.168.1.255 fails EACCES (13) until the socket sets
    SO_BROADCAST; then one frame leaves to ff:ff:ff:ff:ff:ff and every host on the LAN (here
    ernest-laptop and the router) queues the datagram for a socket bound to the port, while the
    far host, behind the routers, gets nothing: a router does not forward a subnet broadcast
    (directed broadcasts need net.ipv4.conf.*.bc_forwarding, off by default). Decided from strace
    of the sender, the capture, and ss on each receiver.""",
)
def broadcast_so_broadcast(run: Run, port: int = 12440) -> None:
    receivers = {SERVER: True, "router": True, "far-host": False}
    address = broadcast_address(run, CLIENT)
    readers = [run.serve(node, "udp_reader", "0.0.0.0", str(port), "--count", "1", "--wait", "30")
               for node in receivers]
    prefix, trace = run.strace(CLIENT, ("sendto",))
    with run.capture([f"{SERVER}:eth0"], f"udp port {port}"):
        for flag in ([], ["--broadcast"]):
            run.sh(CLIENT, [*prefix, run.python(CLIENT), "-m", "lab.servers.udp_burst", address, str(port), "--sizes",
                            "32", *flag], title=f"udp_burst {address} {port} {' '.join(flag)} (strace)")
            if not flag:
                refused = syscalls.named(run.syscalls(CLIENT, trace), "sendto")
                prefix, trace = run.strace(CLIENT, ("sendto",))
        run.sleep(0.5)
        queued = {node: queued_bytes(run, node, port) for node in receivers}
    for reader in readers:
        reader.stop()
    sent = syscalls.named(run.syscalls(CLIENT, trace), "sendto")
    run.expect(expect.equals(f"sendto({address}) without SO_BROADCAST fails EACCES (strace)", "EACCES",
                             refused[-1].errno if refused else "no sendto in the trace"))
    run.expect(expect.equals("with SO_BROADCAST it sends the 32 bytes", 32, sent[-1].ret if sent else None))
    frames = expect.udp(run.packets, dport=port)
    run.expect(expect.check(f"one frame to ff:ff:ff:ff:ff:ff, IP destination {address}",
                            len(frames) == 1 and frames[0].is_broadcast and frames[0].dst == address,
                            "1 broadcast frame", [(p.eth_dst, p.dst) for p in frames], frames))
    run.expect(expect.equals("queued for the socket on every LAN host, not on the far host (ss -uan Recv-Q > 0)",
                             receivers, {node: got > 0 for node, got in queued.items()}))


@experiment(
    id="tcp-udp-same-port",
    title="TCP and UDP on one port number: two port spaces, one server (book 9-8)",
    section="§9.7",
    topology="book-lan.yaml",
    book="""\\
/* 代码清单9-8: 同时处理TCP请求和UDP请求的回射服务器 */
int listenfd = socket( PF_INET, SOCK_STREAM, 0 );   ... bind( listenfd, ( struct sockaddr* )&address, ... );
int udpfd = socket( PF_INET, SOCK_DGRAM, 0 );       ... bind( udpfd, ( struct sockaddr* )&udp_address, ... );
(both bound to the same port; the book: 一个socket只能与一个socket地址绑定 ... 但同一个端口可以同时用于TCP
 和UDP ... 需要创建两个不同的socket.)""",
    modern="""Unchanged on 6.x: TCP and UDP have separate port spaces, so one process binds both to one
    port (ss lists a tcp LISTEN and a udp UNCONN with the same pid), and each protocol is answered by
    its own socket. A port bound for TCP only answers a UDP datagram with ICMP port unreachable
    (3/3); a port bound for UDP only answers a TCP SYN with an RST. The book's UDP echo replies with
    its whole buffer (1023 bytes) whatever came in; this server echoes the datagram's own length.""",
)
def tcp_udp_same_port(run: Run, port: int = 12470) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    server = run.serve(SERVER, "multi_port", server_ip, str(port), "--duration", "60")
    tcp_only = run.serve(SERVER, "discard", server_ip, str(port + 1), "--duration", "60")
    udp_only = run.serve(SERVER, "udp_reader", server_ip, str(port + 2), "--count", "1", "--wait", "0")
    listed = run.sh(SERVER, ["ss", "-Htulnp", f"sport = :{port}"], title=f"ss -tulnp: who has port {port}").stdout
    with run.capture([f"{SERVER}:eth0"], f"(tcp or udp or icmp) and host {client_ip}"):
        run.py(CLIENT, "halfclose_client", server_ip, str(port), "--message", "hello-tcp")
        run.py(CLIENT, "udp_client", server_ip, str(port), "--message", "hello-udp")
        run.py(CLIENT, "udp_client", server_ip, str(port + 1), "--message", "to-tcp-only")
        run.py(CLIENT, "connect_timer", server_ip, str(port + 2))
    for proc in (server, tcp_only, udp_only):
        proc.stop()
    rows = [line.split() for line in listed.splitlines() if line.strip()]
    pids = {line.split("pid=")[1].split(",")[0] for line in listed.splitlines() if "pid=" in line}
    run.expect(expect.check(f"ss: port {port} is a tcp LISTEN and a udp UNCONN socket, of one process",
                            sorted((r[0], r[1]) for r in rows) == [("tcp", "LISTEN"), ("udp", "UNCONN")]
                            and len(pids) == 1, "tcp LISTEN + udp UNCONN, 1 pid",
                            f"{sorted((r[0], r[1]) for r in rows)}, pids {sorted(pids)}"))
    tcp_back = [p for p in expect.data(expect.tcp(run.packets, sport=port)) if p.src == server_ip]
    run.expect(expect.equals("the TCP echo comes back on the TCP socket", b"hello-tcp",
                             b"".join(flows.seg(p).payload for p in tcp_back), tcp_back))
    udp_back = expect.udp(run.packets, sport=port, src=server_ip)
    run.expect(expect.equals("the UDP echo comes back on the UDP socket, as long as the datagram (UDP length 17)",
                             [17], [p.udp.length for p in udp_back if p.udp], udp_back))
    unreachable = expect.icmp(run.packets, type=3, code=3)
    run.expect(expect.count(f"UDP to the TCP-only port {port + 1}: ICMP port unreachable (3/3)", unreachable, 1))
    rst = [p for p in expect.rsts(expect.tcp(run.packets, sport=port + 2)) if p.src == server_ip]
    run.expect(expect.count(f"a TCP SYN to the UDP-only port {port + 2}: an RST", rst, 1))


ASKED = re.compile(r'^\d+, (?:".*?"(?:\.\.\.)?|0x[0-9a-f]+|NULL), (\d+),')


@experiment(
    id="tcp-length-framing",
    title="Framing a byte stream (粘包's cure): a length prefix; recv returns what has come, not a message",
    section="§3.1, §5.8.1",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
(The study notes on 粘包: TCP delivers a stream, so the application frames its messages, e.g. a fixed
 length prefix, and reads until each message is whole; §5.8.1's recv returns 实际读取到的数据的长度，它可能
 小于我们期望的长度len，因此我们可能要多次调用recv，才能读取到完整的数据.)""",
    modern="""Unchanged on 6.x. The sender writes messages with a 4-byte big-endian length before each,
    and sends one of them in two writes with a pause between (TCP_NODELAY), so a segment ends inside
    that message. The reader asks recv for at most what the message still lacks and gets what has
    arrived: some calls return fewer bytes than they asked (strace), and the reader loops until the
    message is whole. It ends with every message intact (its own report, a weak claim beside the
    kernel's).""",
)
def tcp_length_framing(run: Run, port: int = 12480, sizes: str = "100,200,300") -> None:
    try:
        lengths = [int(s) for s in sizes.split(",")]
    except ValueError:
        raise InputError(f"-p sizes={sizes}: comma-separated message sizes, e.g. 100,200,300") from None
    if not 2 <= len(lengths) <= 20 or not all(2 <= n <= 60000 for n in lengths):
        raise InputError(f"-p sizes={sizes}: 2..20 messages of 2..60000 bytes")
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    prefix, trace = run.strace(SERVER, ("recvfrom",))
    with run.capture([f"{SERVER}:eth0"], f"tcp port {port}"):
        reader = run.spawn(SERVER, [*prefix, run.python(SERVER), "-m", "lab.servers.frame_reader", server_ip,
                                    str(port), "--count", str(len(lengths))],
                           title=f"frame_reader {server_ip} {port} (strace)", ready="listening on")
        run.py(CLIENT, "frame_sender", server_ip, str(port), "--sizes", sizes, "--split", "1", "--pause", "0.3")
        reader.wait(15)
    ends, at = set(), 1
    for n in lengths:
        at += 4 + n
        ends.add(at)
    data = [p for p in expect.data(run.packets) if p.src == client_ip and p.dport == port]
    inside = [p for p in data if (flows.seg(p).rel_seq or 0) + flows.seg(p).length not in ends]
    run.expect(expect.check("a message spans two segments: a segment ends inside it (the capture)", bool(inside),
                            "≥ 1 segment ending mid-message", f"{len(inside)} of {len(data)} segments", inside))
    calls = syscalls.named(run.syscalls(SERVER, trace), "recvfrom")
    short = [c for c in calls if (m := ASKED.match(c.args)) and c.ret is not None and 0 < c.ret < int(m.group(1))]
    run.expect(expect.check("recv returns what has arrived: some calls return fewer bytes than they asked "
                            "(strace), so the reader loops", bool(short), "≥ 1 short read",
                            f"{len(short)} of {len(calls)} recvfrom calls"))
    said = [line for line in reader.stdout.splitlines() if line.startswith("message ")]
    run.expect(expect.equals("the reader ends with every message whole (its own report: a weak claim)",
                             [f"message {i}: {n} bytes intact" for i, n in enumerate(lengths)], said))


def heard(calls: list[syscalls.Syscall]) -> list[int | str | None]:
    """What a receiver's recvfrom calls returned, or ``timeout`` when its wait (poll) ended with nothing."""
    returned: list[int | str | None] = [c.errno or c.ret for c in syscalls.named(calls, "recvfrom")]
    timed_out = any(c.ret == 0 for c in syscalls.named(calls, "poll"))
    return returned or (["timeout"] if timed_out else [])


@experiment(
    id="multicast-igmp",
    title="Multicast: joining a group sends an IGMP report; a group datagram (TTL 1) reaches members only",
    section="§1.1 (the study notes' 多播)",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
(The study notes: 多播 — a datagram to a group address reaches the hosts that joined the group; a host
 joins with IGMP; multicast IP addresses map to 01:00:5e MAC addresses.)""",
    modern="""On 6.x a socket joining a group (IP_ADD_MEMBERSHIP) makes the kernel send an IGMPv3
    membership report to 224.0.0.22 (MAC 01:00:5e:00:00:16, TTL 1; usually twice), and leaving sends
    another. A datagram to the group leaves with TTL 1 (IP_MULTICAST_TTL's default) to the group's
    MAC (01:00:5e + its low 23 bits). The LAN's bridge floods it, but only a member's kernel takes it:
    the router, bound to the port without joining, gets nothing, and the far host, a member behind
    the routers, gets nothing either (TTL 1, and no multicast routing). Decided from the capture
    and strace of each receiver (its recvfrom, or its poll timing out).""",
)
def multicast_igmp(run: Run, port: int = 12485, group: str = "224.1.2.3") -> None:
    if not ipaddress.ip_address(group).is_multicast:
        raise InputError(f"-p group={group}: not a multicast address (224.0.0.0/4)")
    server_ip = run.ip(SERVER)
    receivers = {SERVER: ["--join"], "router": [], "far-host": ["--join"]}
    traces, procs = {}, []
    with run.capture([f"{SERVER}:eth0"], f"igmp or (udp port {port})"):
        for node, join in receivers.items():
            prefix, traces[node] = run.strace(node, ("recvfrom", "poll"))
            procs.append(run.spawn(node, [*prefix, run.python(node), "-m", "lab.servers.mcast_recv", run.ip(node),
                                          group, str(port), "--wait", "3", *join],
                                   title=f"mcast_recv {group} {port} on {node} {' '.join(join)} (strace)",
                                   ready="listening on"))
        run.sleep(0.5)
        run.py(CLIENT, "udp_burst", group, str(port), "--sizes", "40")
        for proc in procs:
            proc.wait(10)
        run.sleep(0.3)
    got = {node: heard(run.syscalls(node, trace)) for node, trace in traces.items()}
    reports = [p for p in run.packets if p.ip and p.ip.proto == 2 and p.src == server_ip]
    run.expect(expect.check("joining sends IGMP membership reports to 224.0.0.22 (MAC 01:00:5e:00:00:16, TTL 1)",
                            bool(reports) and all(p.dst == "224.0.0.22" and p.eth_dst == "01:00:5e:00:00:16"
                                                  and p.ip and p.ip.ttl == 1 for p in reports),
                            "IGMP to 224.0.0.22, TTL 1", [(p.dst, p.eth_dst, p.ip.ttl if p.ip else None)
                                                         for p in reports], reports))
    low = ipaddress.ip_address(group).packed[1:]
    mac = f"01:00:5e:{low[0] & 0x7F:02x}:{low[1]:02x}:{low[2]:02x}"  # the group's low 23 bits
    sent = expect.udp(run.packets, dport=port)
    run.expect(expect.check(f"the group datagram leaves with TTL 1 to {mac}",
                            len(sent) == 1 and sent[0].eth_dst == mac and sent[0].ip is not None
                            and sent[0].ip.ttl == 1,
                            f"1 datagram, {mac}, TTL 1", [(p.eth_dst, p.ip.ttl if p.ip else None) for p in sent],
                            sent))
    run.expect(expect.equals("a member takes it; the router (bound, not joined) and the far host (a member behind "
                             "the routers) get nothing (strace of each recvfrom)",
                             {SERVER: [40], "router": ["timeout"], "far-host": ["timeout"]}, got))
