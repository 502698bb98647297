"""People who sign in to the workspace, and the failed sign-ins that throttle guessing.

Passwords arrive here already hashed (ingest/passwords.py); this module never sees one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, func, insert, select, update

from ledger.storage.schema import USER_ROLES, sign_in_failures, text_limit, users

EMAIL_LIMIT = text_limit(users.c.email)
_IP_LIMIT = text_limit(sign_in_failures.c.ip)
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}")


class BadUser(ValueError):
    """A user that cannot be added or changed as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    role: str
    password_hash: str
    created_at: datetime
    disabled_at: datetime | None
    last_sign_in_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def normalize_email(text: str) -> str:
    email = text.strip().lower()
    if len(email) > EMAIL_LIMIT or not _EMAIL.fullmatch(email):
        raise BadUser(f"{text!r} is not an email address")
    return email


def _user(m: object) -> User:
    return User(**{name: getattr(m, name) for name in User.__dataclass_fields__})


def add(conn: Connection, email: str, password_hash: str, role: str = "viewer") -> User:
    if role not in USER_ROLES:
        raise BadUser(f"role must be one of {', '.join(USER_ROLES)}, not {role!r}")
    address = normalize_email(email)
    if by_email(conn, address) is not None:
        raise BadUser(f"{address} already has an account")
    conn.execute(
        insert(users).values(
            email=address, password_hash=password_hash, role=role, created_at=datetime.now(UTC)
        )
    )
    found = by_email(conn, address)
    assert found is not None
    return found


def by_email(conn: Connection, email: str) -> User | None:
    row = conn.execute(select(users).where(users.c.email == email.strip().lower())).first()
    return None if row is None else _user(row)


def by_id(conn: Connection, user_id: int) -> User | None:
    row = conn.execute(select(users).where(users.c.id == user_id)).first()
    return None if row is None else _user(row)


def all_users(conn: Connection) -> list[User]:
    return [_user(row) for row in conn.execute(select(users).order_by(users.c.email))]


def disable(conn: Connection, email: str) -> User:
    found = by_email(conn, normalize_email(email))
    if found is None:
        raise BadUser(f"no account for {email.strip().lower()}")
    if found.active:
        conn.execute(
            update(users).where(users.c.id == found.id).values(disabled_at=datetime.now(UTC))
        )
    disabled = by_id(conn, found.id)
    assert disabled is not None
    return disabled


def signed_in(conn: Connection, user_id: int, at: datetime) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(last_sign_in_at=at))


# --- throttling ------------------------------------------------------------------------------


def record_failure(conn: Connection, email: str, ip: str, at: datetime) -> None:
    conn.execute(
        insert(sign_in_failures).values(email=email[:EMAIL_LIMIT], ip=ip[:_IP_LIMIT], at=at)
    )


def recent_failures(conn: Connection, email: str, ip: str, since: datetime) -> tuple[int, int]:
    """Failed sign-ins since `since`: (for this account, from this address)."""
    f = sign_in_failures.c
    by_account = select(func.count()).where(f.email == email[:EMAIL_LIMIT], f.at >= since)
    by_address = select(func.count()).where(f.ip == ip[:_IP_LIMIT], f.at >= since)
    return int(conn.execute(by_account).scalar_one()), int(conn.execute(by_address).scalar_one())


def forget_failures(conn: Connection, email: str, before: datetime) -> None:
    """After a successful sign-in: the account's failures, and anyone's older than `before`."""
    f = sign_in_failures.c
    conn.execute(delete(sign_in_failures).where((f.email == email[:EMAIL_LIMIT]) | (f.at < before)))
