"""Certificates for engines reached over TCP with TLS (``tcp://HOST:2376`` and ``tls:`` in a cluster file).

Docker's own recipe (https://docs.docker.com/engine/security/protect-access/), made by the
``openssl`` program: one certificate authority, a server certificate per engine naming its
address (the client checks it), and one client certificate that every engine asks for
(``--tlsverify``: no certificate from this CA, no answer). Keys are EC P-256: quick to make,
and both docker-py and the docker CLI take them. Used by ``lab cluster local up --tls``; a
real cluster's certificates are its operator's.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lab.errors import EnvironmentProblem

DAYS = 30  # a simulated cluster lives for a test or a lesson


@dataclass(frozen=True)
class TlsFiles:
    """What one side of a TLS connection needs: the CA it trusts, its certificate and its key."""

    ca: Path
    cert: Path
    key: Path


def make_all(directory: Path, engines: dict[str, str]) -> None:
    """A CA, a certificate for each engine (name -> address) and the client's, all in ``directory``."""
    make_authority(directory)
    for name, address in engines.items():
        make_server(directory, name, address)
    make_client(directory)


def make_authority(directory: Path) -> tuple[Path, Path]:
    """A new CA in ``directory``: (ca.pem, ca-key.pem)."""
    _require_openssl()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca, key = directory / "ca.pem", directory / "ca-key.pem"
    _openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(ca), "-days", str(DAYS), "-subj", "/CN=lab local cluster CA")
    return ca, key


def make_server(directory: Path, name: str, address: str) -> TlsFiles:
    """An engine's certificate for ``address`` (an IP) and ``name``, signed by the CA in ``directory``."""
    cert, key = _signed(directory, name, f"subjectAltName=IP:{address},DNS:{name}\nextendedKeyUsage=serverAuth\n")
    return TlsFiles(directory / "ca.pem", cert, key)


def make_client(directory: Path) -> TlsFiles:
    """The certificate ``lab`` shows every engine, signed by the CA in ``directory``."""
    cert, key = _signed(directory, "client", "extendedKeyUsage=clientAuth\n")
    return TlsFiles(directory / "ca.pem", cert, key)


def _signed(directory: Path, name: str, extensions: str) -> tuple[Path, Path]:
    cert, key, request, ext = (directory / f"{name}-cert.pem", directory / f"{name}-key.pem",
                               directory / f"{name}.csr", directory / f"{name}.ext")
    ext.write_text(extensions)
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(request), "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", str(request), "-CA", str(directory / "ca.pem"),
             "-CAkey", str(directory / "ca-key.pem"), "-CAcreateserial", "-out", str(cert),
             "-days", str(DAYS), "-extfile", str(ext))
    request.unlink()
    ext.unlink()
    key.chmod(0o600)
    return cert, key


def _require_openssl() -> None:
    if shutil.which("openssl") is None:
        raise EnvironmentProblem("--tls needs the openssl program",
                                 "apt-get install openssl (or: bash scripts/setup.sh)")


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise EnvironmentProblem(f"openssl {args[0]}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
