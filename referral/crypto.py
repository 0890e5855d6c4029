"""Encryption at rest of free text (coordination messages) and webhook secrets.

Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) under a MultiFernet built
from ``ENCRYPTION_KEYS``: the first key encrypts, every key decrypts. Rotation: put a
new key first, run ``referral rotate-keys`` (re-encrypts every stored value with the
first key), then remove the old key. Production refuses to start without a key
(``config.load_config``); development derives one from ``SECRET_KEY`` so the demo works.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask, current_app


class Encryptor:
    """Encrypt and decrypt text with the configured keys."""

    def __init__(self, keys: list[str]):
        if not keys:
            raise ValueError("at least one Fernet key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, text: str) -> str:
        """The ciphertext (a Fernet token, ASCII) of ``text``."""
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The text of a ciphertext made with any configured key (``InvalidToken`` if none)."""
        return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")

    def rotate(self, token: str) -> str:
        """The same text encrypted with the first key."""
        return self._fernet.rotate(token.encode("ascii")).decode("ascii")


def keys_from_config(config) -> list[str]:
    """The Fernet keys of a configuration; development without keys derives one."""
    keys = [key.strip() for key in config.get("ENCRYPTION_KEYS", "").split(",") if key.strip()]
    if not keys:
        digest = hashlib.sha256(("referral-dev-encryption:" + config["SECRET_KEY"])
                                .encode("utf-8")).digest()
        keys = [base64.urlsafe_b64encode(digest).decode("ascii")]
    return keys


def init_app(app: Flask) -> None:
    """Make the app's encryptor from its configuration."""
    app.extensions["referral_encryptor"] = Encryptor(keys_from_config(app.config))


def encryptor(app: Flask | None = None) -> Encryptor:
    """The encryptor of ``app`` (default: the current app)."""
    return (app or current_app).extensions["referral_encryptor"]


def new_key() -> str:
    """A fresh Fernet key for ``ENCRYPTION_KEYS``."""
    return Fernet.generate_key().decode("ascii")


__all__ = ["Encryptor", "InvalidToken", "encryptor", "init_app", "keys_from_config", "new_key"]
