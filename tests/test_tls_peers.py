"""TLS as a client against DCMTK storescp +tls: the peer is verified by default, and each way
it can fail has its own code and message (certificates made here with the openssl CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from netpeers import env_without_config, storescp
from peers import dcmtools
from tlspeers import make_ca, make_cert, tls_storescp

pytestmark = pytest.mark.peer


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("pki")
    ca, unknown = make_ca(folder, "testca"), make_ca(folder, "unknownca")
    return {
        "ca": ca,
        "unknown": unknown,
        # issued to the AE title, not to the host: the common case in DICOM
        "server": make_cert(folder, "server", ca, "DNS:TLSSCP"),
        "client": make_cert(folder, "client", ca, "DNS:DCMTOOLS"),
        "stranger": make_cert(folder, "stranger", unknown, "DNS:DCMTOOLS"),
        "localhost": make_cert(folder, "localhost", ca, "DNS:localhost,IP:127.0.0.1"),
    }


def echo(peer: str, *args: str, env: dict | None = None):
    result = dcmtools("echo", peer, "--json", "--timeout", "10", *args, env=env)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result, records


def error_code(records: list[dict]) -> str | None:
    return next((r["error"]["code"] for r in records if not r.get("ok", True) and "error" in r), None)


def test_unknown_ca_refused_by_default_accepted_with_insecure_or_ca(
    tmp_path: Path, pki: dict, test_files_dir: Path
) -> None:
    with tls_storescp(tmp_path, pki["server"]) as port:
        peer = f"TLSSCP@127.0.0.1:{port}"
        result, records = echo(peer, "--tls", env=env_without_config(tmp_path))
        assert result.returncode == 3, result.stderr
        assert error_code(records) == "tls_untrusted"
        assert (
            "not trusted" in result.stderr and "system's trust store" in result.stderr and "--tls-ca" in result.stderr
        )
        assert "Traceback" not in result.stderr

        result, records = echo(peer, "--tls-ca", str(pki["unknown"][0]))
        assert result.returncode == 3 and error_code(records) == "tls_untrusted"
        assert "unknownca.pem" in result.stderr

        result, records = echo(peer, "--tls-insecure")
        assert result.returncode == 0, result.stderr
        assert records[0]["ok"] and records[0]["status"] == "0x0000"
        assert "warning" in result.stderr and "without verifying its certificate" in result.stderr

        result, records = echo(peer, "--tls-ca", str(pki["ca"][0]))
        assert result.returncode == 0, result.stderr
        assert records[0]["ok"] and "warning" not in result.stderr

        # send the same way: refused unverified, stored with the CA
        ct = str(test_files_dir / "CT_small.dcm")
        refused = dcmtools("send", peer, ct, "--tls", "--json", "--timeout", "10")
        assert refused.returncode == 3 and "not trusted" in refused.stderr, refused.stderr
        sent = dcmtools("send", peer, ct, "--tls-ca", str(pki["ca"][0]), "--json", "--timeout", "10")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert len(list((tmp_path / f"tls-out-{port}").iterdir())) == 1


def test_host_name_checked_and_ae_title_name(tmp_path: Path, pki: dict) -> None:
    ca = str(pki["ca"][0])
    with tls_storescp(tmp_path, pki["server"]) as port:
        # named by host: the certificate (issued to TLSSCP) must carry that host name
        result, records = echo(f"TLSSCP@localhost:{port}", "--tls-ca", ca)
        assert result.returncode == 3 and error_code(records) == "tls_name_mismatch", result.stderr
        assert "not issued to 'localhost'" in result.stderr and "--tls-server-name" in result.stderr
        # the certificate issued to the AE title
        result, records = echo(f"TLSSCP@localhost:{port}", "--tls-ca", ca, "--tls-server-name", "TLSSCP")
        assert result.returncode == 0, result.stderr
        result, records = echo(f"TLSSCP@127.0.0.1:{port}", "--tls-ca", ca, "--tls-server-name", "OTHER")
        assert result.returncode == 3 and error_code(records) == "tls_name_mismatch"
    with tls_storescp(tmp_path, pki["localhost"]) as port:
        result, records = echo(f"TLSSCP@localhost:{port}", "--tls-ca", ca)
        assert result.returncode == 0, result.stderr


def test_client_certificate_required(tmp_path: Path, pki: dict) -> None:
    ca = str(pki["ca"][0])
    with tls_storescp(tmp_path, pki["server"], client_ca=pki["ca"][0]) as port:
        peer = f"TLSSCP@127.0.0.1:{port}"
        result, records = echo(peer, "--tls-ca", ca)
        assert result.returncode == 3, result.stderr
        assert error_code(records) == "tls_client_cert_required"
        assert "requires a TLS client certificate and we sent none" in result.stderr
        assert "closed the connection" not in result.stderr

        result, records = echo(
            peer, "--tls-ca", ca, "--tls-cert", str(pki["stranger"][0]), "--tls-key", str(pki["stranger"][1])
        )
        assert result.returncode == 3 and error_code(records) == "tls_client_cert_required"
        assert "refused ours" in result.stderr

        result, records = echo(
            peer, "--tls-ca", ca, "--tls-cert", str(pki["client"][0]), "--tls-key", str(pki["client"][1])
        )
        assert result.returncode == 0, result.stderr


def test_protocol_mismatch_tls_to_a_plain_port_or_a_retired_profile(tmp_path: Path, pki: dict) -> None:
    with storescp(tmp_path / "out") as peer:
        result, records = echo(peer, "--tls-insecure")
        assert result.returncode == 3, result.stderr
        assert error_code(records) == "tls_protocol_mismatch"
        assert "does not expect TLS on this port" in result.stderr
    # the retired AES profile (TLS 1.0 ciphers): no version or cipher in common with ours
    with tls_storescp(tmp_path, pki["server"], "+pa") as port:
        result, records = echo(f"TLSSCP@127.0.0.1:{port}", "--tls-ca", str(pki["ca"][0]))
        assert result.returncode == 3, result.stderr
        assert error_code(records) == "tls_protocol_mismatch"
        assert "does not speak a TLS version or cipher we offer" in result.stderr


def test_peers_file_tls_settings(tmp_path: Path, pki: dict) -> None:
    with tls_storescp(tmp_path, pki["server"]) as port:
        peers = tmp_path / "peers.toml"
        peers.write_text(
            f'[plain]\naet = "TLSSCP"\nhost = "127.0.0.1"\nport = {port}\ntls = true\n\n'
            f'[insecure]\naet = "TLSSCP"\nhost = "127.0.0.1"\nport = {port}\ntls_insecure = true\n\n'
            f'[named]\naet = "TLSSCP"\nhost = "localhost"\nport = {port}\ntls_ca = "{pki["ca"][0]}"\ntls_server_name = "TLSSCP"\n'
        )
        result, records = echo("plain", "--peers", str(peers))
        assert result.returncode == 3 and error_code(records) == "tls_untrusted"
        for _run in range(2):  # the warning comes on every run
            result, records = echo("insecure", "--peers", str(peers))
            assert result.returncode == 0 and "without verifying its certificate" in result.stderr
        result, records = echo("named", "--peers", str(peers))
        assert result.returncode == 0, result.stderr
