"""Render a jinja2 topology template so that it can neither reach Python, run forever, nor eat the machine.

A topology file may come from anyone (a course page, a pull request), and
``lab up`` runs as root, so a template gets three fences:

1. jinja2's ``SandboxedEnvironment``: no attribute that starts with ``_``
   (so no ``''.__class__.__mro__``, no ``lipsum.__globals__``), no range of
   more than 100,000 items.
2. Limits inside the sandbox: all ``range()`` loops together may take at most
   :data:`MAX_LOOP_ITEMS` items, ``*`` and ``**`` refuse results too big to be
   part of a topology, and the output stops at :data:`MAX_OUTPUT_CHARS`.
3. The render runs in a forked child with an address-space limit, a CPU limit
   and a wall-clock deadline, so whatever still finds a way to allocate or to
   spin kills only the child (a fork costs about 2 ms).

Line numbers survive: before rendering, every template line gets an invisible
marker naming its line; after rendering, each output line is mapped back to
the template line that produced it, and the markers are removed. So an error
inside a ``{% for %}`` loop points at the loop's line in the user's file.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import signal
import time
from collections.abc import Iterator
from typing import Any, NoReturn

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import SandboxedEnvironment, safe_range

MAX_OUTPUT_CHARS = 16 * 1024 * 1024
MAX_LOOP_ITEMS = 1_000_000
MAX_POWER_BITS = 100_000
RENDER_SECONDS = 5.0
MEMORY_HEADROOM = 512 * 1024 * 1024

MARK = "\ue000L{}\ue001"  # private-use characters: never typed by a user, never valid YAML syntax
MARK_RE = re.compile("\ue000L(\\d+)\ue001")
_TAG_RE = re.compile(r"\{\{|\{%|\{#|\}\}|%\}|#\}|\n")
_CLOSERS = {"{{": "}}", "{%": "%}", "{#": "#}"}


class RenderError(Exception):
    """A template that could not be rendered: the template line (when known) and what went wrong."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Limit(Exception):
    """A fence was hit. An Exception, not a BaseException, so jinja2 maps its traceback to template lines."""


def render_with_lines(text: str, variables: dict[str, str]) -> tuple[str, list[int]]:
    """Render ``text``; return the output and, for each output line, the template line that made it."""
    rendered = _render_isolated(_mark_lines(text), variables)
    out_lines: list[str] = []
    sources: list[int] = []
    last = 1
    for raw_line in rendered.split("\n"):
        found = MARK_RE.findall(raw_line)
        if found:
            last = int(found[-1])
        sources.append(last)
        out_lines.append(MARK_RE.sub("", raw_line) if found else raw_line)
    return "\n".join(out_lines), sources


def _mark_lines(text: str) -> str:
    """Append a line marker to each template line that does not end inside a jinja tag."""
    out: list[str] = []
    closer: str | None = None
    start = 0
    line = 1
    for match in _TAG_RE.finditer(text):
        token = match.group()
        if token == "\n":
            out.append(text[start:match.start()])
            if closer is None:
                out.append(MARK.format(line))
            out.append("\n")
            start = match.end()
            line += 1
        elif closer is None and token in _CLOSERS:
            closer = _CLOSERS[token]
        elif token == closer:
            closer = None
    out.append(text[start:])
    if closer is None and start < len(text):
        out.append(MARK.format(line))
    return "".join(out)


class _Sandbox(SandboxedEnvironment):
    """The sandbox plus size limits on the two operators that can make huge values from small text."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
            if right * abs(left).bit_length() > MAX_POWER_BITS:
                raise SecurityError(f"{left} ** {right} is too large a number for a topology")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and _is_int(times)
                if sized and times * len(seq) > MAX_OUTPUT_CHARS:
                    raise SecurityError(f"'*' would repeat {len(seq)} items {times} times; "
                                        f"a topology renders to at most {MAX_OUTPUT_CHARS // 2**20} MiB")
        return super().call_binop(context, operator, left, right)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _render_here(marked: str, variables: dict[str, str]) -> str:
    """Render in this process with fences 1 and 2; raise RenderError with the template line."""
    budget = [MAX_LOOP_ITEMS]
    written = [0]

    def counted_range(*args: Any) -> range:
        for arg in args:
            if isinstance(arg, Undefined):
                arg._fail_with_undefined_error()
        rng = safe_range(*args)
        budget[0] -= len(rng)
        if budget[0] < 0:
            raise _Limit(f"the template's loops run more than {MAX_LOOP_ITEMS:,} times in all")
        return rng

    def finalize(value: Any) -> Any:
        if isinstance(value, str):
            written[0] += len(value)
            if written[0] > MAX_OUTPUT_CHARS:
                raise _Limit(_too_large())
        return value

    env = _Sandbox(undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True, finalize=finalize)
    env.globals["range"] = counted_range
    try:
        template = env.from_string(marked)
        chunks: list[str] = []
        total = 0
        stream: Iterator[str] = template.generate(**variables)
        for chunk in stream:
            total += len(chunk)
            if total > MAX_OUTPUT_CHARS:
                raise RenderError(_line_being_written(chunks, chunk, stream), _too_large())
            chunks.append(chunk)
        return "".join(chunks)
    except RenderError:
        raise
    except TemplateSyntaxError as exc:
        raise RenderError(exc.lineno, exc.message or str(exc)) from None
    except MemoryError as exc:
        raise RenderError(_template_line(exc), f"the template needs more than {MEMORY_HEADROOM // 2**20} MiB "
                                               "of memory") from None
    except RecursionError as exc:
        raise RenderError(_template_line(exc), "recursion too deep (a macro that calls itself?)") from None
    except (TemplateError, _Limit, ArithmeticError, ValueError, TypeError, LookupError,
            AttributeError) as exc:
        raise RenderError(_template_line(exc), str(exc) or type(exc).__name__) from None


def _too_large() -> str:
    return f"the rendered topology is larger than {MAX_OUTPUT_CHARS // 2**20} MiB"


def _line_being_written(chunks: list[str], chunk: str, stream: Iterator[str]) -> int | None:
    """The template line whose output crossed the limit: the next line marker ends it."""
    found = MARK_RE.search(chunk)
    for _ in range(10_000):
        if found:
            return int(found.group(1))
        nxt = next(stream, None)
        if nxt is None:
            break
        found = MARK_RE.search(nxt)
    for previous in reversed(chunks[-1000:]):
        marks = MARK_RE.findall(previous)
        if marks:
            return int(marks[-1])
    return None


def _template_line(exc: BaseException) -> int | None:
    """The innermost template line in the traceback (jinja2 rewrites its frames to the template's lines)."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _render_isolated(marked: str, variables: dict[str, str]) -> str:
    """Fence 3: render in a forked child under rlimits and a deadline; only text or an error comes back."""
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return _render_here(marked, variables)
    if pid == 0:  # the child: never returns, never runs the parent's cleanup
        _child(read_fd, write_fd, marked, variables)
    os.close(write_fd)
    data = bytearray()
    deadline = time.monotonic() + RENDER_SECONDS + 2
    timed_out = False
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([read_fd], [], [], remaining)
            if not ready:
                continue
            piece = os.read(read_fd, 1 << 20)
            if not piece:
                break
            data += piece
            if len(data) > 4 * MAX_OUTPUT_CHARS + 65536:
                timed_out = True
                break
    finally:
        os.close(read_fd)
        status = _reap(pid)
    if timed_out:
        raise RenderError(None, f"rendering did not finish in {RENDER_SECONDS:g} s (a loop that never ends?)")
    if data[:1] == b"O":
        return bytes(data[1:]).decode("utf-8")
    if data[:1] == b"E":
        err = json.loads(bytes(data[1:]))
        raise RenderError(err["line"], err["message"])
    if os.WIFSIGNALED(status):
        what = signal.Signals(os.WTERMSIG(status)).name
        raise RenderError(None, f"the template renderer was stopped by {what} "
                                f"(it needed more than {RENDER_SECONDS:g} s of CPU or too much memory)")
    raise RenderError(None, "the template renderer failed without a message")


def _reap(pid: int) -> int:
    """Wait for our child; kill it first (by its PID: we started it) if it is still running."""
    done, status = os.waitpid(pid, os.WNOHANG)
    if done == 0:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(pid, 0)
    return status


def _child(read_fd: int, write_fd: int, marked: str, variables: dict[str, str]) -> NoReturn:
    code = 1
    try:
        os.close(read_fd)
        _limit_self()
        try:
            payload = b"O" + _render_here(marked, variables).encode("utf-8")
        except RenderError as exc:
            payload = b"E" + json.dumps({"line": exc.line, "message": exc.message}).encode()
        except UnicodeEncodeError:
            payload = b"E" + json.dumps({"line": None, "message": "the template made text that is not "
                                                                  "valid Unicode"}).encode()
        signal.setitimer(signal.ITIMER_REAL, 0)
        view = memoryview(payload)
        while view:
            view = view[os.write(write_fd, view):]
        code = 0
    except BaseException:  # noqa: B036 - the child must reach os._exit whatever happens
        pass
    finally:
        os._exit(code)


def _limit_self() -> None:
    """In the child: cap address space and CPU time, and raise _Limit in template code at the deadline."""
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/statm") as f:
        size = int(f.read().split()[0]) * page
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + MEMORY_HEADROOM
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    cpu = int(RENDER_SECONDS) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))

    def on_alarm(signum: int, frame: Any) -> None:
        raise _Limit(f"rendering took longer than {RENDER_SECONDS:g} s (a loop that never ends?)")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, RENDER_SECONDS)
