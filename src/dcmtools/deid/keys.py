"""Keyed, repeatable replacements: UIDs, pseudonyms and date offsets.

Everything here is derived from one secret key with HMAC-SHA256, each use
under its own derived sub-key, so the same key gives the same result for the
same original value in every file, run and machine, and nobody without the
key can recompute (or dictionary-attack) the mapping.

* ``uid(value)``: ``2.25.<decimal of a 128-bit UUID>`` (PS3.5 B.2), the
  UUID's version nibble set to 8 (RFC 9562 custom) and its variant to RFC 4122,
  at most 44 characters.
* ``pseudonym(value, length)``: upper-case letters and digits (base 32),
  prefixed with ``ANON``.
* ``date_offset(patient)``: a whole number of days between -3650 and -365
  (dates move back by 1 to 10 years; times of day are unchanged).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

MIN_SHIFT_DAYS = 365
MAX_SHIFT_DAYS = 3650


class Key:
    """The secret of a run.  ``Key.random()`` when the user gave none."""

    def __init__(self, secret: bytes | str, *, is_random: bool = False) -> None:
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        if not secret:
            raise ValueError("the key is empty")
        self.is_random = is_random
        self._uid_key = self._derive(secret, b"uid")
        self._name_key = self._derive(secret, b"pseudonym")
        self._date_key = self._derive(secret, b"date-offset")
        # Short public fingerprint: tells two runs used the same key, reveals nothing.
        self.fingerprint = self._derive(secret, b"fingerprint").hex()[:12]
        self._uids: dict[str, str] = {}
        self._names: dict[tuple[str, int, str], str] = {}

    @classmethod
    def random(cls) -> Key:
        return cls(os.urandom(32), is_random=True)

    @classmethod
    def from_file(cls, path: str) -> Key:
        """The key file's bytes (one trailing newline ignored)."""
        with open(path, "rb") as f:
            secret = f.read()
        if secret.endswith(b"\r\n"):
            secret = secret[:-2]
        elif secret.endswith(b"\n"):
            secret = secret[:-1]
        return cls(secret)

    @staticmethod
    def _derive(secret: bytes, purpose: bytes) -> bytes:
        return hmac.new(secret, b"dcmtools-deid:" + purpose, hashlib.sha256).digest()

    def uid(self, value: str) -> str:
        """The replacement of one UID (cached: studies repeat their UIDs)."""
        value = value.strip("\0 ")
        new = self._uids.get(value)
        if new is None:
            digest = bytearray(hmac.new(self._uid_key, value.encode("ascii", "replace"), hashlib.sha256).digest()[:16])
            digest[6] = (digest[6] & 0x0F) | 0x80  # version 8
            digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
            new = "2.25." + str(int.from_bytes(digest, "big"))
            if len(self._uids) < 200_000:
                self._uids[value] = new
        return new

    def pseudonym(self, value: str, length: int = 16, prefix: str = "ANON") -> str:
        """A repeatable identifier for ``value``, ``length`` characters in all (cached)."""
        cache_key = (value, length, prefix)
        name = self._names.get(cache_key)
        if name is None:
            digest = hmac.new(self._name_key, value.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
            body = base64.b32encode(digest).decode("ascii").rstrip("=")
            name = (prefix + body)[: max(length, len(prefix) + 6)]
            if len(self._names) < 100_000:
                self._names[cache_key] = name
        return name

    def date_offset(self, patient: str) -> int:
        """Days to add to every date of this patient (negative)."""
        digest = hmac.new(self._date_key, patient.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
        span = MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1
        return -(MIN_SHIFT_DAYS + int.from_bytes(digest[:8], "big") % span)
