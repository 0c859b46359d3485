"""The ``lab`` command: one typer app per verb group, joined here; one place maps errors to exit codes.

Exit codes: 0 success (all held), 1 an expectation failed, 2 bad usage or
input, 3 the environment could not build the lab, 130 interrupted.
"""

from __future__ import annotations

import sys
import traceback

import typer
from typer.exceptions import TyperException

from lab.cli import common
from lab.errors import LabError

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
    for module_name in ("run", "link", "fault", "capture", "images", "graph", "doctor"):
        try:
            module = __import__(f"lab.cli.{module_name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name == f"lab.cli.{module_name}":
                continue
            raise
        module.register(app)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code (also used by tests)."""
    args = sys.argv[1:] if argv is None else argv
    common.DEBUG = "--debug" in args
    try:
        result = app(args=args, prog_name="lab", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        common.err("interrupted")
        code = 130
    except TyperException as exc:  # usage errors: typer prints the usage line and the problem
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            common.err(exc.format_message())
        code = 2
    except LabError as exc:
        if common.DEBUG:
            traceback.print_exc()
        common.err(exc.message, exc.hint)
        code = exc.exit_code
    except KeyboardInterrupt:
        common.err("interrupted")
        code = 130
    except Exception as exc:  # the last line of defence: one line unless --debug
        if common.DEBUG:
            traceback.print_exc()
        common.err(f"internal error: {type(exc).__name__}: {exc}", "run again with --debug and report it")
        code = 70
    if argv is None:
        sys.exit(code)
    return code
