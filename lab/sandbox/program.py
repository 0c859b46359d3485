"""A reader's program, made ready to run in the jail: an executable, a script, or C/C++ source compiled.

``lab run ID --use testlisten=./testlisten.c`` and ``lab grade`` hand a path here. The result is a
directory of the machine's (root's, mode 755) holding one executable named after the program it stands
for; the jail binds it read-only at ``/prog``. Source is compiled by the machine's ``cc``/``c++``
inside the jail as well, with no network at all: a submission is untrusted from its first byte, and
``#include "/etc/shadow"`` then finds no such file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lab.errors import EnvironmentProblem, InputError

COMPILERS = {".c": ("cc", "C"), ".cpp": ("c++", "C++"), ".cc": ("c++", "C++"), ".cxx": ("c++", "C++")}
# as the author built them: no optimisation (9-4 lacks a return that -O2 turns into a crash)
FLAGS = ["-pthread", "-fmax-errors=50"]
COMPILE_WALL = 120.0
BINARY_CAP = 64 << 20  # the executable comes out on the compiler jail's stdout


class CompileError(InputError):
    """The program's source does not compile: the compiler's own messages, exit 2, nothing run."""


@dataclass(frozen=True)
class UserProgram:
    """``name`` (the project's program it stands in for), from ``source``, ready in ``directory``."""

    name: str
    source: Path
    directory: Path
    kind: str  # "executable", "script", "C", "C++"

    @property
    def inside(self) -> str:
        """Its path inside the jail."""
        return f"/prog/{self.name}"

    def describe(self) -> str:
        return f"{self.source} ({self.kind})"


def jail_argv(program_dir: Path | str | None, argv: list[str], wall: float, no_net: bool = False,
              tag: str = "", output_cap: int | None = None, python: str = sys.executable) -> list[str]:
    """The command that runs ``argv`` in the jail (lab.sandbox.jail), ``program_dir`` at /prog. ``-P``: the
    current directory (a submissions folder, say) is not on the path of a Python running as root."""
    return [python, "-P", "-m", "lab.sandbox.jail", "--wall", f"{wall:g}", "--tag", tag,
            *(["--program-dir", str(program_dir)] if program_dir else []), *(["--no-net"] if no_net else []),
            *(["--output-cap", str(output_cap)] if output_cap else []), "--", *argv]


def prepare(name: str, source: Path, workdir: Path) -> UserProgram:
    """``source`` ready to run as ``name`` in the jail, in a directory of its own under ``workdir``.

    Raises InputError for a path that is not a program, CompileError when the source does not compile,
    EnvironmentProblem when the machine has no compiler for it.
    """
    option = f"--use {name}={source}"
    if not source.exists():
        raise InputError(f"{option}: no such file")
    if not source.is_file():
        raise InputError(f"{option}: not a file", "give an executable, a script or a C/C++ source file")
    directory = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
    directory.chmod(0o755)
    target = directory / name
    suffix = source.suffix.lower()
    if suffix in COMPILERS:
        compiler, language = COMPILERS[suffix]
        target.write_bytes(compile_source(name, source, compiler, language, directory))
        kind = language
    else:
        head = source.read_bytes()[:4]
        if head.startswith(b"#!"):
            kind = "script"
        elif head == b"\x7fELF":
            kind = "executable"
        else:
            raise InputError(f"{option}: neither an executable (ELF), a script (#!) nor C/C++ source (.c, .cpp)",
                             "name a C file NAME.c, a C++ file NAME.cpp, or start a script with #!")
        shutil.copyfile(source, target)
    target.chmod(0o755)
    return UserProgram(name, source.resolve(), directory, kind)


def compile_source(name: str, source: Path, compiler: str, language: str, directory: Path) -> bytes:
    """The executable ``compiler`` makes of ``source``, compiled in the jail (no network); its bytes come
    out on the jail's stdout, the compiler's messages on its stderr."""
    if shutil.which(compiler) is None:
        raise EnvironmentProblem(f"no {language} compiler ({compiler}) on this machine for {source}",
                                 "apt-get install gcc g++ (lab doctor lists what is missing)")
    src = directory / "src"
    src.mkdir(mode=0o755)
    src.chmod(0o755)
    copy = src / f"{name}{source.suffix.lower()}"
    shutil.copyfile(source, copy)
    copy.chmod(0o644)
    script = f'{compiler} {" ".join(FLAGS)} -o /tmp/{name} "$1" >&2 && cat /tmp/{name}'
    argv = jail_argv(src, ["/bin/sh", "-c", script, "sh", f"/prog/{copy.name}"], COMPILE_WALL, no_net=True,
                     tag="compile", output_cap=BINARY_CAP)
    done = subprocess.run(argv, capture_output=True, timeout=COMPILE_WALL + 30,
                          env={**os.environ, "PYTHONPATH": _lab_path()})
    shutil.rmtree(src)
    if done.returncode != 0 or not done.stdout:
        messages = done.stderr.decode(errors="replace").replace(f"/prog/{copy.name}", str(source)).strip()
        raise CompileError(f"{source} does not compile ({compiler} {' '.join(FLAGS)}):\n{messages}",
                           "fix the errors above; nothing was run")
    return done.stdout


def _lab_path() -> str:
    from lab.nodes.host import programs_path

    return programs_path()
