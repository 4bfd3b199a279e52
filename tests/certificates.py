"""Throwaway certificates made with openssl, for the TLS tests: a CA, and server or client
certificates it signs (the server's for 127.0.0.1)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.peers import tool


def _openssl(*args: str) -> None:
    subprocess.run([tool("openssl"), *args], check=True, capture_output=True)


def make_ca(directory: Path, name: str = "ca") -> tuple[Path, Path]:
    """(certificate, key) of a new self-signed CA."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
             str(cert), "-days", "1", "-subj", f"/CN=boneage test {name}")
    return cert, key


def issue(directory: Path, ca: tuple[Path, Path], name: str) -> tuple[Path, Path]:
    """(certificate, key) signed by `ca`, valid for 127.0.0.1 (as a server or a client)."""
    cert, key, csr = (directory / f"{name}.{ext}" for ext in ("pem", "key", "csr"))
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             "-subj", f"/CN={name}")
    extensions = directory / f"{name}.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile", str(extensions))
    return cert, key


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 it signed: (CA, certificate, key)."""
    ca = make_ca(directory)
    cert, key = issue(directory, ca, "server")
    return ca[0], cert, key
