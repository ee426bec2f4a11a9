"""Cipher: stored records encrypted at rest with a key from the secret store.

Theory of operation: `storage.persistence.encryption: true` makes the Serializer seal every
record it writes (health facts, process heartbeats, the key check) with Fernet from the
`cryptography` package: AES-128-CBC with a random 128-bit IV, authenticated by HMAC-SHA256.
Fernet rather than AES-GCM because its random IVs carry no nonce-reuse limit to count
against: many processes writing one key for years would pass GCM's 2**32 random nonces.

The secret (at least 32 characters, read from the configured secret store under the name
`storage.persistence.encryption_secret` gives) is not used as is: HKDF-SHA256 derives the
Fernet key from it, so any long random string will do. The record's storage key is sealed
inside with its content, so a record copied or moved to another key fails to open rather
than being believed there.

What stays in the clear: key names (pool, provider and model names), the numbers `add` and
`raise_to` keep (spend, request and token counters, the health version: they are updated
atomically by the store itself, which cannot add to a ciphertext), lock names, lease ends and tokens, sizes and
modification times. Nothing of the secret appears in a repr, an error or a log line.
"""
from __future__ import annotations

import base64
from typing import Any

__all__ = ["Cipher", "MIN_SECRET_LENGTH", "SETTING"]

MIN_SECRET_LENGTH = 32
SETTING = "storage.persistence.encryption"
_INFO = b"modelmesh-lite storage encryption v1"


class Cipher:
    """Seals and opens records with a key derived from `secret`, the value of the secret
    named `secret_name` (which errors name; the value itself never appears)."""

    __slots__ = ("secret_name", "_fernet", "_invalid")

    def __init__(self, secret: str, *, secret_name: str) -> None:
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            length = len(secret) if isinstance(secret, str) else 0
            raise ValueError(f"the secret {secret_name!r} is {length} characters long; {SETTING} needs at least "
                             f"{MIN_SECRET_LENGTH} random characters (make one with: python -c "
                             "\"import secrets; print(secrets.token_urlsafe(32))\")")
        try:
            from cryptography.fernet import Fernet, InvalidToken
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF
        except ImportError:
            raise ImportError(f"{SETTING} needs the cryptography package: "
                              "pip install 'modelmesh-lite[encryption]'") from None
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode("utf-8"))
        self.secret_name = secret_name
        self._fernet: Any = Fernet(base64.urlsafe_b64encode(key))
        self._invalid: type[Exception] = InvalidToken

    def __repr__(self) -> str:
        return f"Cipher(secret_name={self.secret_name!r})"

    def seal(self, data: bytes, key: str) -> bytes:
        """`data`, stored under `key`, encrypted and authenticated together with `key`."""
        bound = key.encode("utf-8")
        token: bytes = self._fernet.encrypt(len(bound).to_bytes(4, "big") + bound + data)
        return token

    def open(self, token: bytes, key: str) -> bytes:
        """What `seal(data, key)` sealed; ValueError naming the setting if the token was not
        sealed with this key, or not for `key`."""
        try:
            plain: bytes = self._fernet.decrypt(token)
        except (self._invalid, TypeError, ValueError):
            raise ValueError(f"the stored record {key!r} does not decrypt with the key in the secret "
                             f"{self.secret_name!r} ({SETTING}): it was written with another key, "
                             "without encryption, or altered") from None
        size = int.from_bytes(plain[:4], "big")
        bound = plain[4:4 + size]
        if bound != key.encode("utf-8"):
            raise ValueError(f"the stored record {key!r} was encrypted for the record "
                             f"{bound.decode('utf-8', 'replace')!r}: it was moved or copied, and is not trusted")
        return plain[4 + size:]
