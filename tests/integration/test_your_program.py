"""A reader's own program under test (``--use``): the book's published listing passes, a wrong one fails,
source that does not compile is bad input, and hostile programs change nothing outside their sandbox.

Every hostile program stands in for ``testlisten`` and keeps its contract (it listens with the backlog
it is given) so the experiment goes on while the program misbehaves; each test then checks that the
machine, a second lab, another submission's files and the process table are exactly as before.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lab import deploy, state
from lab.experiments.engine import find
from lab.experiments.runner import run_one
from lab.report.model import RunResult
from lab.sandbox import jail
from lab.topology import load_topology

pytestmark = pytest.mark.root

BOOK = Path(__file__).resolve().parent.parent / "fixtures" / "book_listings"
LISTEN_BACKLOG = find("listen-backlog")
QUICK = {"extra_clients": "2", "interval": "0.2"}


@contextmanager
def a_book_lan(prefix: str) -> Iterator[str]:
    topo, smap = load_topology("topologies/book-lan.yaml")
    topo.name = f"{prefix}-{secrets.token_hex(3)}"
    deploy.up(topo, smap.text, "topologies/book-lan.yaml")
    try:
        yield topo.name
    finally:
        deploy.down(topo.name)


@pytest.fixture(scope="module")
def book_lan() -> Iterator[str]:
    with a_book_lan("yp") as name:
        yield name


@pytest.fixture(scope="module")
def other_lab() -> Iterator[str]:
    """A second lab, up while the hostile programs run: it must come out exactly as it went in."""
    with a_book_lan("yo") as name:
        yield name


def run(lab: str, program: Path, out: Path, **params: str) -> RunResult:
    return run_one(LISTEN_BACKLOG, {**QUICK, **params}, out, lab=lab, uses={"testlisten": program})


def jailed_processes() -> list[int]:
    """Processes of any sandbox user, anywhere on the machine."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            uid = int((entry / "status").read_text().split("\nUid:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue
        if jail.UID_BASE <= uid < jail.UID_BASE + jail.SLOTS:
            found.append(int(entry.name))
    return found


def lab_view(lab: str) -> str:
    """What a lab's namespaces hold: every node's links, addresses and routes."""
    info = state.read_lab_info(lab)
    return "\n".join(subprocess.run(["ip", "-n", spec["netns"], "-o", what, "show"], capture_output=True,
                                    text=True, check=True).stdout
                     for spec in info["nodes"].values() for what in ("link", "addr", "route"))


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def witness(tmp_path: Path, other_lab: str) -> Iterator[Path]:
    """A directory standing for the machine's and another submission's files (0777, so not even file modes
    protect it), and a check after the test that it, the other lab, the machine's /etc and the process
    table are unchanged (the machine's /tmp is checked by name: other programs may write there)."""
    victim = tmp_path / "victim"
    victim.mkdir()
    victim.chmod(0o777)
    (victim / "other-student.c").write_text("int main(void) { return 0; }\n")
    (victim / "other-student.c").chmod(0o666)
    before = (tree(victim), lab_view(other_lab), set(Path("/etc").iterdir()))
    yield victim
    assert jailed_processes() == [], "a sandboxed process outlived its step"
    after = (tree(victim), lab_view(other_lab), set(Path("/etc").iterdir()))
    assert after[0] == before[0], "the other submission's files changed"
    assert after[1] == before[1], "the other lab changed"
    assert after[2] == before[2], "the machine's /etc changed"


def hostile(tmp_path: Path, body: str) -> Path:
    """A Python testlisten that keeps the contract, then does ``body``."""
    script = tmp_path / "testlisten.py"
    script.write_text("#!/usr/bin/python3\n" + textwrap.dedent("""\
        import os, signal, socket, sys, time
        s = socket.socket()
        s.bind((sys.argv[1], int(sys.argv[2])))
        s.listen(int(sys.argv[3]))
        """) + textwrap.dedent(body))
    return script


def test_the_books_published_5_3_passes_for_backlogs_1_to_8(book_lan: str, tmp_path: Path) -> None:
    for backlog in range(1, 9):
        result = run(book_lan, BOOK / "5-3_testlisten.cpp", tmp_path, backlog=str(backlog))
        assert result.verdict == "pass", (backlog, [str(v) for v in result.expectations if not v.ok], result.error)
        assert any("yours" in n and "5-3_testlisten.cpp" in n for n in result.notes)


def run_book(exp_id: str, out: Path, **uses: Path) -> RunResult:
    """An experiment on a fresh lab of its own with the given programs of the reader's; then lab check on it."""
    result = run_one(find(exp_id), {}, out, uses=uses)
    check = subprocess.run([sys.executable, "-m", "lab", "check", str(result.run_dir)], capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == (0 if result.verdict == "pass" else 1), check.stdout + check.stderr
    return result


def test_the_books_published_5_6_and_5_7_pass_oob_urg(tmp_path: Path) -> None:
    result = run_book("oob-urg", tmp_path, oob_send=BOOK / "5-6_oobsend.cpp", oob_recv=BOOK / "5-7_oobrecv.cpp")
    assert result.verdict == "pass", [str(v) for v in result.expectations if not v.ok]


def test_the_books_published_5_10_and_5_11_pass_the_buffer_experiment(tmp_path: Path) -> None:
    result = run_book("so-rcvbuf-sndbuf-min", tmp_path, setsendbuffer=BOOK / "5-10_set_send_buffer.cpp",
                      setrecvbuffer=BOOK / "5-11_set_recv_buffer.cpp")
    assert result.verdict == "pass", [str(v) for v in result.expectations if not v.ok]


def test_5_5_as_printed_passes_and_as_published_names_what_it_cannot_judge(tmp_path: Path) -> None:
    published = BOOK / "5-5_testaccept.cpp"
    printed = tmp_path / "testaccept.cpp"  # the book prints sleep(20) before accept(); the download has none
    printed.write_text(published.read_text().replace("    assert( ret != -1 );\n\n    struct sockaddr_in client;",
                                                     "    assert( ret != -1 );\n\n    sleep(20);\n"
                                                     "    struct sockaddr_in client;", 1))
    assert "sleep(20)" in printed.read_text()
    result = run_book("accept-vanished-client", tmp_path, testaccept=printed)
    assert result.verdict == "pass" and all(v.verdict == "pass" for v in result.expectations), \
        [str(v) for v in result.expectations]
    result = run_book("accept-vanished-client", tmp_path, testaccept=published)
    kinds = [v.verdict for v in result.expectations]
    assert "fail" not in kinds and kinds.count("unjudged") == 4, [str(v) for v in result.expectations]
    assert all("accepted before the client vanished" in v.observed
               for v in result.expectations if v.verdict == "unjudged")


def test_a_wrong_backlog_fails_with_the_claim_that_caught_it(book_lan: str, tmp_path: Path) -> None:
    source = (BOOK / "5-3_testlisten.cpp").read_text().replace("listen( sock, backlog )", "listen( sock, 5 )")
    wrong = tmp_path / "testlisten.cpp"
    wrong.write_text(source)
    result = run(book_lan, wrong, tmp_path, backlog="3")
    assert result.verdict == "fail"
    failed = [v for v in result.expectations if not v.ok]
    assert any(v.description.startswith("ss -ltn") and v.observed == "Recv-Q 6 Send-Q 5" for v in failed), failed


def test_a_strict_program_gets_the_books_argv_and_a_quitter_is_named(book_lan: str, tmp_path: Path) -> None:
    source = (BOOK / "5-3_testlisten.cpp").read_text().replace("if( argc <= 3 )", "if( argc != 4 )")
    strict = tmp_path / "testlisten.cpp"
    strict.write_text(source)
    assert run(book_lan, strict, tmp_path).verdict == "pass"  # no --duration 120 after the book's argv
    quitter = tmp_path / "quitter.sh"
    quitter.write_text("#!/bin/sh\necho usage: testlisten ip port backlog\nexit 1\n")
    result = run(book_lan, quitter, tmp_path)
    assert result.verdict == "error"
    assert result.error and "exited with code 1" in result.error and "usage: testlisten" in result.error, result.error


def test_source_that_does_not_compile_is_bad_input_and_builds_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "testlisten.c"
    bad.write_text("int main(void) { return nope; }\n")
    labs = set(state.labs_with_state())
    done = subprocess.run([sys.executable, "-m", "lab", "run", "listen-backlog", "--fresh", "--out", str(tmp_path),
                           "--use", f"testlisten={bad}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "does not compile" in done.stderr and "nope" in done.stderr
    assert set(state.labs_with_state()) == labs


def test_a_program_that_deletes_and_writes_files_changes_nothing(book_lan: str, tmp_path: Path,
                                                                 witness: Path) -> None:
    script = hostile(tmp_path, f"""\
        import shutil
        for path in ["{witness}/other-student.c", "/etc/hostname", "/etc/passwd"]:
            for act in (os.remove, lambda p: open(p, "w").write("owned")):
                try:
                    act(path)
                    print("did", path, flush=True)
                except OSError as exc:
                    print("refused", path, exc.strerror, flush=True)
        for path in ["/etc/lab-owned", "{witness}/new", "/root/owned", "/var/tmp/owned"]:
            try:
                open(path, "w").write("owned")
                print("did", path, flush=True)
            except OSError as exc:
                print("refused", path, exc.strerror, flush=True)
        shutil.rmtree("/usr", ignore_errors=True)
        open("/tmp/lab-hostile-mine", "w").write("fine")  # its own /tmp: allowed, and gone afterwards
        time.sleep(60)
        """)
    result = run(book_lan, script, tmp_path)
    assert result.verdict == "pass", [str(v) for v in result.expectations if not v.ok]
    said = next(s.stdout for s in result.steps if "yours" in s.title)
    assert "did" not in said and said.count("refused") == 10, said
    assert Path("/usr/bin/python3").exists() and not Path("/tmp/lab-hostile-mine").exists()


def test_a_fork_bomb_is_contained_and_ends_with_its_step(book_lan: str, tmp_path: Path, witness: Path) -> None:
    script = hostile(tmp_path, """\
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.01)
        """)
    result = run(book_lan, script, tmp_path)
    assert any("lab-sandbox: " in n and "process limit refused a fork" in n for n in result.notes), result.notes


def test_a_program_that_ignores_sigterm_is_killed(book_lan: str, tmp_path: Path, witness: Path) -> None:
    script = hostile(tmp_path, """\
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if os.fork() == 0:
            os.setsid()
            while True:
                time.sleep(1)
        while True:
            time.sleep(1)
        """)
    result = run(book_lan, script, tmp_path)
    assert result.verdict == "pass"
    assert any("lab-sandbox: killed: it was still running 1 s after SIGTERM" in n for n in result.notes), result.notes


def test_a_program_cannot_flood_forge_or_reach_the_terminal_and_keyrings(book_lan: str, tmp_path: Path,
                                                                          witness: Path) -> None:
    script = hostile(tmp_path, """\
        import ctypes, fcntl, termios
        libc = ctypes.CDLL(None, use_errno=True)
        print("keyctl", libc.syscall(250, 0, 0), ctypes.get_errno(), flush=True)  # KEYCTL_GET_KEYRING_ID
        print("stdin", os.readlink("/proc/self/fd/0"), "sid", os.getsid(0) == os.getpid(), flush=True)
        try:
            fcntl.ioctl(0, termios.TIOCSTI, b"x")
            print("tiocsti worked", flush=True)
        except OSError as exc:
            print("tiocsti refused", exc.errno, flush=True)
        print("lab-sandbox: killed: forged by the program", file=sys.stderr, flush=True)
        block = "y" * 65536
        for _ in range(64):  # 4 MiB
            sys.stdout.write(block)
        sys.stdout.flush()
        time.sleep(60)
        """)
    result = run(book_lan, script, tmp_path)
    step = next(s for s in result.steps if "yours" in s.title)
    assert "keyctl -1 1\n" in step.stdout  # EPERM: the seccomp filter
    assert "stdin /dev/null sid True" in step.stdout and "tiocsti worked" not in step.stdout
    assert len(step.stdout) <= (1 << 20) + 4096 and "dropped" in step.stderr
    assert not any("forged" in n for n in result.notes), result.notes


def test_a_program_cannot_signal_what_is_not_its_own(book_lan: str, tmp_path: Path, witness: Path) -> None:
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        script = hostile(tmp_path, f"""\
            for pid in (1, {bystander.pid}, {os.getpid()}, -1):
                try:
                    os.kill(pid, signal.SIGKILL)
                    print("killed", pid, flush=True)
                except OSError as exc:
                    print("refused", pid, exc.strerror, flush=True)
            time.sleep(60)
            """)
        result = run(book_lan, script, tmp_path)
        assert bystander.poll() is None, "the sandboxed program killed a process of the machine"
        said = next(s.stdout for s in result.steps if "yours" in s.title)
        assert f"killed {bystander.pid}" not in said and "refused 1" in said, said
    finally:
        bystander.kill()
        bystander.wait()


def test_a_program_cannot_reach_an_address_outside_the_lab(book_lan: str, tmp_path: Path, witness: Path) -> None:
    uplink = subprocess.run(["ip", "-o", "-4", "route", "get", "203.0.113.1"], capture_output=True, text=True)
    src = uplink.stdout.split(" src ")[1].split()[0] if " src " in uplink.stdout else "203.0.113.2"
    script = hostile(tmp_path, f"""\
        for address in ("{src}", "203.0.113.1"):
            c = socket.socket()
            c.settimeout(2)
            try:
                c.connect((address, 22))
                print("reached", address, flush=True)
            except OSError as exc:
                print("unreachable", address, exc.strerror or exc, flush=True)
        for path in ("/run/docker.sock", "/var/run/docker.sock"):
            try:
                u = socket.socket(socket.AF_UNIX)
                u.connect(path)
                print("reached", path, flush=True)
            except OSError as exc:
                print("unreachable", path, exc.strerror, flush=True)
        time.sleep(60)
        """)
    result = run(book_lan, script, tmp_path)
    said = next(s.stdout for s in result.steps if "yours" in s.title)
    lines = said.splitlines()
    assert len(lines) == 4 and all(line.startswith("unreachable ") for line in lines), said


def test_a_class_with_good_wrong_broken_hostile_and_missing_submissions_is_graded(tmp_path: Path) -> None:
    book = (BOOK / "5-3_testlisten.cpp").read_text()
    submissions = tmp_path / "class"
    for student, name, text in (
        ("ana", "testlisten.cpp", book),
        ("ben", "testlisten.cpp", book.replace("listen( sock, backlog )", "listen( sock, 9 )")),
        ("cho", "testlisten.c", "int main(void) { return nope; }\n"),
        ("dan", "testlisten", "#!/usr/bin/python3\nimport os, socket, sys, time\ns = socket.socket()\n"
                              "s.bind((sys.argv[1], int(sys.argv[2])))\ns.listen(int(sys.argv[3]))\n"
                              "while True:\n    try:\n        os.fork()\n"
                              "    except OSError:\n        time.sleep(0.01)\n"),
        ("eve", "README", "I forgot\n"),
    ):
        (submissions / student).mkdir(parents=True)
        (submissions / student / name).write_text(text)
        (submissions / student / name).chmod(0o755)
    assignment = tmp_path / "homework.yaml"
    assignment.write_text("name: listen-homework\nprograms: [testlisten]\nexperiments:\n  - {id: listen-backlog, "
                          "points: 10, params: {backlog: {range: [2, 8]}, extra_clients: 2}}\n")
    out = tmp_path / "grades"
    done = subprocess.run([sys.executable, "-m", "lab", "grade", str(submissions), "--assignment", str(assignment),
                           "--jobs", "2", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    with (out / "grades.csv").open() as f:
        rows = {r["student"]: [r["listen-backlog verdict"], r["listen-backlog points"], r["total"]]
                for r in csv.DictReader(f)}
    assert rows == {"ana": ["pass", "10", "10"], "ben": ["fail", "0", "0"], "cho": ["compile", "0", "0"],
                    "dan": ["pass", "10", "10"], "eve": ["missing", "0", "0"]}
    cells = {s["student"]: s["cells"][0] for s in json.loads((out / "grades.json").read_text())["students"]}
    assert "ss -ltn" in cells["ben"]["why"] or "connected" in cells["ben"]["why"]
    assert "process limit" in cells["dan"]["why"]
    assert (out / "cho" / "compile-testlisten.txt").read_text().count("nope") >= 1
    page = (out / "index.html").read_text()
    for student in ("ana", "ben", "dan"):
        report = out / cells[student]["report"]
        assert report.is_file() and f'href="{cells[student]["report"]}"' in page
        check = subprocess.run([sys.executable, "-m", "lab", "check", str(report.parent)], capture_output=True,
                               text=True, timeout=120)
        assert check.returncode == (0 if cells[student]["verdict"] == "pass" else 1), check.stdout + check.stderr
    assert jailed_processes() == []
