"""The ``lab`` command: one typer app per verb group, joined here; one place maps errors to exit codes.

Exit codes: 0 success (all held), 1 an expectation failed, 2 bad usage or
input, 3 the environment could not build the lab, 130 interrupted, 70 an
internal error (a bug).
"""

from __future__ import annotations

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
    for module_name in ("run", "check", "link", "fault", "capture", "images", "graph", "doctor", "cluster"):
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code (also used by tests)."""
    args = sys.argv[1:] if argv is None else argv
    common.DEBUG = "--debug" in args
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
    except Exception as exc:  # the last line of defence: one line unless --debug
        if common.DEBUG:
            traceback.print_exc()
        common.err(f"internal error: {type(exc).__name__}: {exc}", "run again with --debug and report it")
        code = ExitCode.INTERNAL
    if argv is None:
        sys.exit(int(code))
    return int(code)
