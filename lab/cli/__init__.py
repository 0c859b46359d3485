"""The ``lab`` command: one typer app per verb group, joined here; one place maps errors to exit codes.

Exit codes: 0 success (all held), 1 an expectation failed, 2 bad usage or
input, 3 the environment could not build the lab, 130 interrupted, 70 an
internal error (a bug).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import typer
from typer.exceptions import TyperException

from lab.cli import common
from lab.errors import ExitCode, LabError

app = typer.Typer(
    name="lab",
    help="Build sealed multi-host network labs and run the book's TCP/IP experiments on them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global(debug: bool = typer.Option(False, "--debug", help="Show Python tracebacks for errors.")) -> None:
    common.DEBUG = debug


def _register() -> None:
    from lab.cli import lifecycle

    lifecycle.register(app)
    for module_name in ("run", "check", "link", "fault", "capture", "images", "graph", "doctor", "cluster", "grade"):
        try:
            module = __import__(f"lab.cli.{module_name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name == f"lab.cli.{module_name}":
                continue
            raise
        module.register(app)


_register()


@contextmanager
def _note_ctrl_c() -> Iterator[list[int]]:
    """Remember a SIGINT (still raised as KeyboardInterrupt, so ``up`` rolls back) to report it in one line."""
    seen: list[int] = []

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)
        signal.default_int_handler(signum, frame)

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:  # ignored, or someone else's
        yield seen
        return
    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread (tests calling main from a worker): leave it alone
        yield seen
        return
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def _stdout_identity() -> tuple[int, int] | None:
    """What fd 1 is (device, inode), to see later whether rich replaced it."""
    try:
        status = os.fstat(1)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _reader_has_gone(stdout_at_start: tuple[int, int] | None) -> bool:
    """Whether our stdout's reader has closed it (``lab inspect | head``).

    Either fd 1 is still the pipe and poll says POLLERR, or rich has already found out and put
    /dev/null in its place (its ``on_broken_pipe``).
    """
    if _stdout_identity() != stdout_at_start:
        return True
    poller = select.poll()
    poller.register(1, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code (also used by tests)."""
    args = sys.argv[1:] if argv is None else argv
    common.DEBUG = "--debug" in args
    stdout_at_start = _stdout_identity()
    try:
        with _note_ctrl_c() as interrupted:
            result = app(args=args, prog_name="lab", standalone_mode=False)
        code = result if isinstance(result, int) else ExitCode.OK
        if interrupted and code == ExitCode.INTERRUPTED:  # typer turns Ctrl-C into a silent exit code 130: say it
            common.err("interrupted")
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        common.err("interrupted")
        code = ExitCode.INTERRUPTED
    except TyperException as exc:  # usage errors: typer prints the usage line and the problem
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            common.err(exc.format_message())
        code = ExitCode.USAGE
    except LabError as exc:
        if common.DEBUG:
            traceback.print_exc()
        common.err(exc.message, exc.hint)
        for note in getattr(exc, "__notes__", []):
            common.err(note)
        code = exc.exit_code
    except KeyboardInterrupt:
        common.err("interrupted")
        code = ExitCode.INTERRUPTED
    except SystemExit as exc:
        broken = exc.__context__
        if not isinstance(broken, BrokenPipeError) or _reader_has_gone(stdout_at_start):
            raise
        # click ends on any EPIPE with a silent exit 1, as if our reader had gone; this one was a socket's
        if common.DEBUG:
            traceback.print_exception(broken)
        common.err(f"internal error: BrokenPipeError: {broken}", "run again with --debug and report it")
        code = ExitCode.INTERNAL
    except Exception as exc:  # the last line of defence: one line unless --debug
        if common.DEBUG:
            traceback.print_exc()
        common.err(f"internal error: {type(exc).__name__}: {exc}", "run again with --debug and report it")
        code = ExitCode.INTERNAL
    if argv is None:
        sys.exit(int(code))
    return int(code)
