"""TLS for the tests: a CA, certificates it signs (openssl CLI), and DCMTK storescp with +tls."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from peers import free_port, storescp


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def self_signed(folder: Path, name: str, *extensions: str, cn: str | None = None) -> tuple[Path, Path]:
    """A self-signed certificate (CN ``cn``, else ``name``), with ``-addext`` ``extensions``: (certificate, key)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    added = [arg for extension in extensions for arg in ("-addext", extension)]
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        "2",
        "-subj",
        f"/CN={cn or name}",
        *added,
        cwd=folder,
    )
    return cert, key


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    return self_signed(folder, name, "basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign")


def make_cert(folder: Path, name: str, ca: tuple[Path, Path], san: str) -> tuple[Path, Path]:
    """A certificate for ``san`` (e.g. "DNS:localhost,IP:127.0.0.1") signed by ``ca``: (certificate, key)."""
    cert, key, csr, ext = (
        folder / f"{name}.pem",
        folder / f"{name}.key",
        folder / f"{name}.csr",
        folder / f"{name}.ext",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        f"/CN={name}",
        cwd=folder,
    )
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n")
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca[0]),
        "-CAkey",
        str(ca[1]),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(ext),
        cwd=folder,
    )
    return cert, key


@contextlib.contextmanager
def tls_storescp(
    tmp: Path, cert: tuple[Path, Path], *extra: str, client_ca: Path | None = None, aet: str = "TLSSCP"
) -> Iterator[int]:
    """DCMTK storescp speaking DICOM over TLS with ``cert``; asks for a client certificate signed by
    ``client_ca`` when given, else ignores client certificates; ``extra`` options (e.g. a TLS
    profile).  Yields the port."""
    port = free_port()
    out = tmp / f"tls-out-{port}"
    auth = ["+cf", str(client_ca), "-rc"] if client_ca else ["-ic"]
    with storescp(
        out,
        "+tls",
        str(cert[1]),
        str(cert[0]),
        "-pem",
        *auth,
        *extra,
        aet=aet,
        log=tmp / f"tls-storescp-{port}.log",
        port=port,
    ):
        yield port
