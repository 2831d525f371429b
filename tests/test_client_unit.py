"""Unit tests of the client-side pieces of issue 14 (no peer): hints, names, character sets, TLS settings."""

from __future__ import annotations

import ssl

from dcmtools.net import keys as K
from dcmtools.net.matching import element_matches
from dcmtools.net.peer import TLSSettings, load_peers
from dcmtools.net.query import encode_identifier, representable
from dcmtools.net.status import comment_hint, storage_hint


def pn(text: str) -> dict:
    return {"vr": "PN", "Value": [{"Alphabetic": text}]}


def test_storage_hint_from_code_and_comment_only() -> None:
    assert "disk full" not in storage_hint(0xA700)
    assert "without saying why" in storage_hint(0xA700)
    assert "lacks or has a bad attribute" in storage_hint(0xA700, "Missing required attribute SeriesInstanceUID")
    assert "storage is full" in storage_hint(0xA700, "Not enough disk space")
    assert storage_hint(0xA900).startswith("the peer found the dataset does not match")
    assert comment_hint("something odd") == "the peer says: something odd"
    assert comment_hint(None) is None


def test_person_name_sent_byte_for_byte() -> None:
    for text, wire in (
        ("Wang^XiaoDong=王^小東=", "Wang^XiaoDong=王^小東=".encode()),
        ("DOE^J*", b"DOE^J*"),
        ("A^B^", b"A^B^"),
    ):
        identifier = K.identifier_from(K.parse_keys([f"PatientName={text}"]), (), "STUDY")
        data = encode_identifier(identifier, "1.2.840.10008.1.2.1")
        assert wire in data, (text, data)


def test_person_name_matching_by_component_group() -> None:
    stored = {"vr": "PN", "Value": [{"Alphabetic": "Wang^XiaoDong", "Ideographic": "王^小東"}]}
    assert element_matches(pn("Wang^XiaoDong=王^小東="), stored, lenient=True)
    assert element_matches(pn("wang*"), stored, lenient=True)
    assert element_matches(pn("*小東*"), stored, lenient=True)
    assert element_matches(pn("=王^小東"), stored, lenient=True)
    assert not element_matches(pn("Wang^XiaoDong=王^小"), stored, lenient=True)
    assert not element_matches(pn("Li^Na=李^娜="), stored, lenient=True)


def test_representable_in_the_answers_character_set() -> None:
    chinese = pn("Wang^XiaoDong=王^小東=")
    assert not representable(chinese, ["ISO_IR 100"])
    assert not representable(chinese, [])
    assert representable(chinese, ["ISO_IR 192"])
    assert representable(pn("MÜLLER*"), ["ISO_IR 100"])
    assert representable(pn("DOE*"), [])


def test_tls_client_context_verifies_by_default() -> None:
    context = TLSSettings().client_context("pacs.example.org")
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert TLSSettings().check_name("10.0.0.5") is None  # an IP: the chain is checked, not the name
    assert TLSSettings(server_name="PACS").check_name("10.0.0.5") == "PACS"
    assert TLSSettings().check_name("pacs.example.org") == "pacs.example.org"
    insecure = TLSSettings(insecure=True).client_context("pacs.example.org")
    assert insecure.verify_mode == ssl.CERT_NONE and not insecure.check_hostname


def test_peers_file_tls_keys(tmp_path) -> None:
    path = tmp_path / "peers.toml"
    path.write_text(
        '[a]\naet = "A"\nhost = "h"\nport = 104\ntls_insecure = true\n\n'
        '[b]\naet = "B"\nhost = "h"\nport = 104\ntls_server_name = "B"\nmax_results = 500\n'
    )
    peers, _ = load_peers(path)
    assert peers["a"].tls == TLSSettings(insecure=True)
    assert peers["b"].tls == TLSSettings(server_name="B") and peers["b"].extra == {"max_results": 500}


def test_pdv_fragments_are_even_for_any_peer_limit() -> None:
    from dcmtools.net import wire

    assert wire.max_fragment(16384) == 16378
    assert wire.max_fragment(16383) == 16376  # an odd limit: one byte less, still even
    assert wire.max_fragment(0) % 2 == 0
