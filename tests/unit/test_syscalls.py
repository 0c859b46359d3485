"""strace -f output, as the second half's experiments read it."""

from __future__ import annotations

from lab.experiments import syscalls

TRACE = """\
10565 epoll_wait(5, [{events=EPOLLIN, data={u32=3, u64=3}}], 1023, 1000) = 1
10565 recvfrom(3, "xxxxxxxxx", 9, 0, NULL, NULL) = 9
10565 recvfrom(3, 0x7ffd, 9, 0, NULL, NULL) = -1 EAGAIN (Resource temporarily unavailable)
10566 recvfrom(4,  <unfinished ...>
10565 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=10567} ---
10566 <... recvfrom resumed>"abc", 10, 0, NULL, NULL) = 3
10566 recvmsg(4, {msg_name=NULL, msg_iov=[{iov_base="aaaa", iov_len=50}], msg_flags=MSG_TRUNC}, 0) = 50
10567 +++ exited with 0 +++
10565 epoll_wait(5,  <unfinished ...>
10565 +++ killed by SIGKILL +++
"""


def test_completed_calls_in_order_with_return_values_and_errnos() -> None:
    everything = syscalls.parse(TRACE)
    assert [(c.pid, c.name) for c in everything if c.name.startswith("SIG")] == [(10565, "SIGCHLD")]
    calls = [c for c in everything if not c.name.startswith("SIG")]
    assert [(c.pid, c.name, c.ret, c.errno) for c in calls] == [
        (10565, "epoll_wait", 1, None), (10565, "recvfrom", 9, None), (10565, "recvfrom", -1, "EAGAIN"),
        (10566, "recvfrom", 3, None), (10566, "recvmsg", 50, None)]
    assert calls[3].args.startswith("4, ") and '"abc"' in calls[3].args  # the unfinished half joined
    assert "MSG_TRUNC" in calls[4].args and calls[2].failed


def test_epoll_wait_names_the_ready_fds() -> None:
    assert syscalls.epoll_fds(syscalls.parse(TRACE)[0]) == [3]
    assert syscalls.named(syscalls.parse(TRACE), "recvmsg")[0].ret == 50


def test_the_time_spent_in_a_call_comes_from_strace_t() -> None:
    calls = syscalls.parse("7 connect(3, {sa_family=AF_INET}, 16) = -1 EINPROGRESS (Operation now in progress) "
                           "<2.004511>\n7 recvfrom(3, \"\", 1, 0, NULL, NULL) = 0 <0.000021>\n")
    assert [(c.errno, c.seconds) for c in calls] == [("EINPROGRESS", 2.004511), (None, 0.000021)]


def test_start_times_from_strace_ttt_and_when_a_call_ended() -> None:
    calls = syscalls.parse("9 1700000000.250000 epoll_wait(4,  <unfinished ...>\n"
                           "10 1700000000.500000 epoll_ctl(4, EPOLL_CTL_MOD, 5, {events=EPOLLIN}) = 0 <0.000010>\n"
                           "9 1700000000.500100 <... epoll_wait resumed>[{events=EPOLLIN, data={u32=5, u64=5}}], "
                           "1023, 500) = 1 <0.250120>\n")
    assert [(c.name, c.at) for c in calls] == [("epoll_ctl", 1700000000.5), ("epoll_wait", 1700000000.25)]
    assert abs((calls[1].ended or 0) - 1700000000.50012) < 1e-6


def test_a_delivered_signal_is_a_record_named_after_it() -> None:
    text = ("4496 1796600000.100000 --- SIGURG {si_signo=SIGURG, si_code=SI_KERNEL} ---\n"
            '4496 1796600000.100100 recvfrom(4, "c", 1023, MSG_OOB, NULL, NULL) = 1 <0.000010>\n'
            "4496 1796600000.200000 select(5, [4], NULL, [4], {tv_sec=10, tv_usec=0}) = 1 (except [4], left "
            "{tv_sec=9, tv_usec=990000}) <0.010000>\n")
    urg, oob, chosen = syscalls.parse(text)
    assert (urg.pid, urg.name, urg.ret, urg.at) == (4496, "SIGURG", None, 1796600000.1)
    assert oob.name == "recvfrom" and oob.ret == 1
    assert chosen.after.startswith("(except [4]")
