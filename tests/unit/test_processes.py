"""The report's process table, from strace -f text as strace prints it."""

# ruff: noqa: E501 (strace lines as strace prints them)

from __future__ import annotations

from lab.experiments.processes import process_table
from lab.experiments.syscalls import parse

POOL = """\
100 1796600000.000001 accept4(3, {sa_family=AF_INET, sin_port=htons(40212), sin_addr=inet_addr("192.168.1.109")}, [16], SOCK_CLOEXEC) = 7 <0.000010>
101 1796600000.000100 dup2(7, 1) = 1 <0.000004>
100 1796600000.000050 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 101 <0.000200>
101 1796600000.000200 execve("/usr/bin/uname", ["/usr/bin/uname"], 0x7ffc /* 35 vars */) = 0 <0.000300>
100 1796600000.001000 wait4(-1, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], WNOHANG, NULL) = 101 <0.000005>
100 1796600000.001100 wait4(-1, 0x7ffc, WNOHANG, NULL) = -1 ECHILD (No child processes) <0.000004>
"""


def test_each_process_gets_its_parent_its_program_and_what_it_did() -> None:
    rows = process_table(parse(POOL), "ernest-laptop", "processpool_cgi")
    assert [(r.pid, r.parent, r.program) for r in rows] == [
        (100, None, "processpool_cgi"), (101, 100, "/usr/bin/uname")]
    assert rows[0].did == ["accepted fd 7 from 192.168.1.109:40212", "forked pid 101", "reaped pid 101"]
    assert rows[1].did == ["dup2(7, 1): its standard output", "exec /usr/bin/uname"]


def test_a_long_story_is_cut_and_counted() -> None:
    text = "".join(f"100 1796600000.{i:06d} recvfrom(5, 0x1, 64, 0, NULL, NULL) = -1 EAGAIN (Resource temporarily "
                   f"unavailable) <0.000001>\n" for i in range(20))
    (row,) = process_table(parse(text), "n", "mtlt")
    assert row.calls == 20 and len(row.did) == 12 and row.did[0] == "recvfrom → EAGAIN"


def test_the_traced_programs_own_exec_keeps_its_name() -> None:
    text = ('100 1796600000.000001 execve("/usr/bin/python3", ["/usr/bin/python3", "-m", "lab.servers.mtlt"], '
            '0x7ffc /* 35 vars */) = 0 <0.000300>\n')
    (row,) = process_table(parse(text), "n", "mtlt")
    assert row.program == "mtlt" and row.did == ["exec /usr/bin/python3"]


def test_a_thread_is_named_a_thread() -> None:
    text = ("100 1796600000.000001 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|"
            "CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7f, parent_tid=0x7f, "
            "exit_signal=0, stack=0x7f, stack_size=0x7fff00, tls=0x7f} => {parent_tid=[101]}, 88) = 101 <0.000050>\n")
    rows = process_table(parse(text), "n", "oneshot")
    assert [(r.pid, r.parent, r.program) for r in rows] == [(100, None, "oneshot"), (101, 100, "oneshot (thread)")]
    assert rows[0].did == ["started thread 101"]
