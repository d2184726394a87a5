"""Secrets generated once into the data directory when the environment gives none."""

import os
import secrets
from pathlib import Path
from typing import Literal

from cryptography.fernet import Fernet


def load_or_create_secret(path: Path, kind: Literal["django", "fernet"]) -> str:
    """Read the secret kept at `path`, creating it (mode 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    value = Fernet.generate_key().decode() if kind == "fernet" else secrets.token_urlsafe(50)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
