"""Connection-string secrets at rest: Fernet tokens, with key rotation.

GATEWAY_FERNET_KEYS lists the keys: the first encrypts, every one of them decrypts, so a
new key is put first, `rotateconnectionkeys` re-encrypts, and the old key can then go.
"""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretError(Exception):
    """A stored secret could not be decrypted with any configured key."""


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.GATEWAY_FERNET_KEYS))


def encrypt_secret(plain: str) -> str:
    return fernet().encrypt(plain.encode()).decode()


def decrypt_secret(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretError(
            "the connection string cannot be decrypted with the configured keys"
        ) from exc


def rotate_secret(token: str) -> str:
    """Re-encrypt `token` under the first (current) key."""
    return fernet().rotate(token.encode()).decode()
