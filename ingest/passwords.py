"""Password hashing for workspace users: werkzeug's salted scrypt, compared in constant time."""

from __future__ import annotations

import secrets

from werkzeug.security import check_password_hash, generate_password_hash

METHOD = "scrypt"
# Checked when the email matches no user, so an unknown account costs as much as a wrong password.
_NOBODY = generate_password_hash(secrets.token_urlsafe(16), method=METHOD)


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=METHOD)


def check(password_hash: str | None, password: str) -> bool:
    if password_hash is None:
        check_password_hash(_NOBODY, password)
        return False
    return check_password_hash(password_hash, password)


def new_password() -> str:
    """A random initial password (96 bits), printed once by `mrr users add`."""
    return secrets.token_urlsafe(12)
