"""The project's own servers and clients, deployed into lab nodes: ``python3 -m lab.servers.<name>``.

Each program is small, written for this project after the book's listings
(5-3 testlisten, 5-5 testaccept, 5-6/5-7 OOB, 5-10/5-11 buffers, 5-12
daytime) and the catalogue's extra experiments. They use the standard library
only (Python 3.11) and nothing else from ``lab``, so a node needs just
``lab/__init__.py`` and ``lab/servers/`` on its PYTHONPATH.

Shared conventions (see ``_common``): addresses come as arguments (``IP PORT``),
one flushed line per event on stdout, servers print ``listening on IP:PORT``
when ready, every blocking step has a timeout, exit 0 on success and 1 with
``errno=NAME(n)`` (kernel error) or ``timeout step=...`` (our own deadline).

``python3 -m lab.servers`` lists the programs below.
"""

from __future__ import annotations

PROGRAMS: dict[str, str] = {
    "echo": "TCP echo server (or --udp); one thread per connection",
    "discard": "TCP discard server; reads, drops, prints the byte count at EOF",
    "daytime": "daytime server (RFC 867) on port 13 by default",
    "daytime_client": "book 5-12: resolve host and the daytime service, print port and time",
    "testlisten": "book 5-3: listen with a backlog and never accept",
    "testaccept": "book 5-5: listen, sleep, then accept one connection and print the peer",
    "connect_many": "open N connections at an interval (non-blocking) and report which completed",
    "oob_send": "book 5-6: send '123', 'abc' with MSG_OOB, '123'",
    "oob_recv": "book 5-7: accept, wait, recv normal / MSG_OOB / normal and print the book's lines",
    "setsendbuffer": "book 5-10: set SO_SNDBUF before connect, print the value read back, send N bytes",
    "setrecvbuffer": "book 5-11: set SO_RCVBUF before listen, print the value read back, read to EOF",
    "halfclose_client": "send a message, shutdown(SHUT_WR), read the reply to EOF",
    "halfclose_server": "read to EOF, reply 'bye:'+data, close",
    "linger_abort_server": "write N bytes, set SO_LINGER {1, T}, close(); T=0 aborts with an RST",
    "slow_reader": "small SO_RCVBUF, sleep without reading, then read until EOF or error",
    "keystroke_client": "send one-byte keystrokes at an interval and time each echo",
    "trickle_client": "one-byte writes at an interval without reading (Nagle over a WAN; --nodelay)",
    "nagle_client": "rounds of send 10 B, send 10 B, recv 1 B with Nagle on and/or TCP_NODELAY",
    "nagle_server": "reply 1 byte after every 20 bytes received",
    "bulk_send": "send N bytes (optional TCP_CONGESTION, SO_SNDBUF), print time and TCP_INFO",
    "bulk_recv": "read to EOF (optional SO_RCVBUF before listen/connect), print bytes and TCP_INFO",
    "connect_timer": "time a connect (optional TCP_SYNCNT); print elapsed and errno",
    "bind_client": "bind a fixed local port (optional SO_REUSEADDR), connect, close first",
    "reuse_server": "listen with/without SO_REUSEADDR, accept one, close first (server holds TIME_WAIT)",
    "rst_client": "connect, then send/recv at given times and print each call's errno",
    "udp_client": "send datagrams on a connected UDP socket; report each reply or errno (ICMP errors)",
    "mtlt": "book 9-3: epoll server, level- or edge-triggered, one chunk per read",
    "send_once": "connect, send N bytes in one send (or several, apart), wait, close",
    "reap_server": "fork per connection with SIGCHLD blocked; then reap once per signal or in a WNOHANG loop",
    "udp_burst": "send UDP datagrams of the given sizes, back to back",
    "udp_reader": "wait, then read one datagram per call with a planned buffer size or flag each",
    "peek_reader": "accept, wait, recv(MSG_PEEK), then one recv: several sends come back together",
    "sigpipe_client": "read to the peer's EOF, then write twice: SIGPIPE's default action, MSG_NOSIGNAL or SIG_IGN",
    "unblock_connect": "book 9-5: non-blocking connect, select() for writability, then SO_ERROR",
    "accept_storm": "an LT epoll accept loop out of file descriptors: EMFILE spins; --spare sheds",
    "fork_close_server": "accept, fork; the parent close()s or shutdown()s while the child still holds the socket",
    "close_at": "one end of a connection that closes at an agreed moment (--listen or --connect)",
    "timeo_client": "book 11-1: connect with SO_SNDTIMEO, or recv with SO_RCVTIMEO, and time the failure",
    "close_unread": "accept, maybe reply and read, close: unread data or an inherited SO_LINGER {1,0} gives an RST",
    "late_reply": "accept, never close, send a line later (to a peer whose FIN-WAIT-2 may have expired)",
    "lowat_reader": "accept, SO_RCVLOWAT n, wait in epoll: readable only once n bytes are queued",
    "multi_port": "book 9-8: TCP and UDP echo on one port number, one epoll",
    "bind_as": "drop to another user, then bind a port (ports below ip_unprivileged_port_start need privilege)",
    "oneshot": "book 9-4: ET epoll with a worker thread per event, with or without EPOLLONESHOT",
    "frame_sender": "send length-prefixed messages, one split across two writes",
    "frame_reader": "read length-prefixed messages however the bytes arrive",
    "mcast_recv": "wait for one datagram to a multicast group, joined (IP_ADD_MEMBERSHIP) or not",
    "idle_timers": "book 11-3/11-5/11-6: close connections idle 3 × TIMESLOT, with a sorted list, a wheel or a heap",
    "idle_clients": "three clients of idle_timers: one silent, one steady, one that speaks once",
    "threadpool_http": "book 15-3…15-6: half-sync/half-reactor HTTP server, 8 worker threads, EPOLLONESHOT, writev",
    "http_get": "HTTP requests on one connection (keep-alive, HTTP/1.0, a slow reader), each response read whole",
    "stress_client": "book 16-4 done right: hold N HTTP connections, a request in flight on each, bounded",
    "eintr_recv": "a blocking recv interrupted by SIGALRM: SA_RESTART, EINTR, or Python's own retry (PEP 475)",
    "unified_source": "book 10-1: signals as bytes in a socketpair, read in the epoll loop; SIGTERM closes all",
    "chat_poll": "book 9-7: the poll() chat room, USER_LIMIT users; --book-bug keeps the listing's |= ~POLLIN",
    "chat_client": "a chat room user: connect, maybe say one line at an agreed time, print what comes",
    "processpool_cgi": "book 15-1/15-2: a parent hands connections in turn to a pool that accepts, forks, execs CGI",
    "cgi_client": "request lines (a CGI program's path) to processpool_cgi, one connection each, reply read to EOF",
    "oob_watch": "book 9-1/10-3: urgent data by select()'s exceptfds or by SIGURG (F_SETOWN); --oobinline",
    "keepalive_client": "connect with SO_KEEPALIVE and TCP_KEEPIDLE/INTVL/CNT, then wait in recv",
}
