"""Users of a shared app: logins with hashed passwords (``LMW_USERS``) and API keys (``LMW_API_KEYS``).

``LMW_USERS`` is either ``name:hash[:admin],name2:hash2`` or the path of a file with one such line per user
(``#`` comments allowed). A hash is ``scrypt$<n>$<r>$<p>$<salt hex>$<digest hex>``; make one with
``python -m pipelines.users add NAME`` (asks for the password; ``--admin`` marks an admin, ``--file F`` appends
the line to ``F``). Plain passwords are never stored. ``LMW_API_KEYS`` is ``key:user,key2:user2`` or a file with
one ``key:user`` per line. Keys and hashes are compared in constant time and never logged.

Without ``LMW_USERS`` the app is single-user: nothing has an owner and nothing is checked (``user`` is None).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.errors import InputError

SCHEME = "scrypt"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-@")
ADMIN = "admin"


def hash_password(password: str, salt: bytes | None = None, n: int = SCRYPT_N, r: int = SCRYPT_R,
                  p: int = SCRYPT_P) -> str:
    """A salted scrypt hash of ``password`` as ``scrypt$n$r$p$salt$digest`` (hex)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"{SCHEME}${n}${r}${p}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the ``stored`` hash (constant-time compare; False for a malformed hash)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != SCHEME:
            return False
        expected = bytes.fromhex(digest)
        got = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected), maxmem=2**26)
    except (ValueError, TypeError, MemoryError):
        return False
    return hmac.compare_digest(got, expected)


def _is_file(spec: str) -> bool:
    try:
        return Path(spec).expanduser().is_file()
    except (OSError, ValueError):
        return False


def _items(spec: str, sep: str = ",") -> list[str]:
    """The entries of an inline spec (``sep``-separated) or of the file it names (one per line, ``#`` comments)."""
    spec = (spec or "").strip()
    if not spec:
        return []
    if ":" not in spec or _is_file(spec):
        try:
            lines = Path(spec).expanduser().read_text(encoding="utf-8").splitlines()
        except OSError:
            raise InputError("users.error.no_file", path=spec[:200]) from None
        return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    return [item.strip() for item in spec.split(sep) if item.strip()]


@dataclass(frozen=True)
class User:
    """One login: its name, password hash and whether it is an admin (sees and manages every user's data)."""

    name: str
    hash: str = field(repr=False)
    admin: bool = False


def parse_user(line: str) -> User:
    """``name:hash[:admin]`` -> :class:`User`; :class:`InputError` for a malformed line."""
    parts = line.strip().split(":")
    name = parts[0].strip()
    if len(parts) not in (2, 3) or not name or not set(name) <= NAME_CHARS or not parts[1].startswith(SCHEME):
        raise InputError("users.error.bad_line", user=name[:40] or "?")
    if len(parts) == 3 and parts[2].strip() not in ("", ADMIN):
        raise InputError("users.error.bad_line", user=name[:40])
    return User(name, parts[1].strip(), admin=len(parts) == 3 and parts[2].strip() == ADMIN)


@dataclass(frozen=True)
class Users:
    """The logins and API keys of one app (from :class:`~pipelines.config.AppConfig`)."""

    users: tuple[User, ...] = ()
    keys: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # (key, user name)
    oauth: bool = False  # LMW_HF_OAUTH: users sign in with Hugging Face (a Space with hf_oauth), no passwords
    named_admins: frozenset[str] = frozenset()  # LMW_ADMINS: admins by name (Hugging Face usernames with OAuth)

    @classmethod
    def parse(cls, users: str = "", keys: str = "", oauth: bool = False, admins: str = "") -> Users:
        """From the ``LMW_USERS``, ``LMW_API_KEYS`` (inline or file paths), ``LMW_HF_OAUTH`` and ``LMW_ADMINS``
        (``name,name2``) values."""
        parsed = tuple(parse_user(line) for line in _items(users))
        pairs = []
        for item in _items(keys):
            key, sep, name = item.rpartition(":")
            if not sep or not key.strip() or not name.strip():
                raise InputError("users.error.bad_key_line")
            pairs.append((key.strip(), name.strip()))
        named = frozenset(name.strip() for name in (admins or "").split(",") if name.strip())
        return cls(parsed, tuple(pairs), bool(oauth), named)

    @property
    def enabled(self) -> bool:
        """Whether the app has several logins, with passwords or Hugging Face OAuth (ownership is checked only
        then)."""
        return bool(self.users) or self.oauth

    @property
    def passwords(self) -> bool:
        """Whether Gradio's own login form checks ``LMW_USERS`` passwords (not with Hugging Face OAuth)."""
        return bool(self.users) and not self.oauth

    @property
    def admins(self) -> frozenset[str]:
        return frozenset(u.name for u in self.users if u.admin) | self.named_admins

    def is_admin(self, name: str | None) -> bool:
        return bool(name) and name in self.admins

    def check(self, name: str, password: str) -> bool:
        """Gradio's ``auth=`` callable: whether ``name`` and ``password`` match a user (a dummy hash is computed
        for an unknown name, so the answer takes as long either way)."""
        found = next((u for u in self.users if hmac.compare_digest(u.name.encode(), (name or "").encode())), None)
        if found is None:
            verify_password(password or "", DUMMY_HASH)
            return False
        return verify_password(password or "", found.hash)

    def user_of_key(self, given: str) -> str | None:
        """The user an API key belongs to, or None (every key is compared, in constant time)."""
        match = None
        for key, name in self.keys:
            if hmac.compare_digest(key.encode(), (given or "").encode()):
                match = name
        return match


DUMMY_HASH = "scrypt$16384$8$1$00000000000000000000000000000000$" + "00" * 32


def users_of(config: object) -> Users:
    """The :class:`Users` an :class:`~pipelines.config.AppConfig` describes (``users``, ``api_keys``, ``hf_oauth``
    and ``admins`` fields)."""
    return Users.parse(getattr(config, "users", ""), getattr(config, "api_keys", ""),
                       bool(getattr(config, "hf_oauth", False)), getattr(config, "admins", ""))


def can_see(owner: str, user: str | None, admins: frozenset[str] = frozenset()) -> bool:
    """Whether ``user`` may list and use something owned by ``owner``: always without login (``user`` None);
    else only its owner or an admin (things made before login was turned on have no owner: admins only)."""
    if user is None or user in admins:
        return True
    return bool(owner) and hmac.compare_digest(owner.encode(), user.encode())


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.users add NAME [--admin] [--file F]``: print (or append) one ``LMW_USERS`` line."""
    import argparse
    import getpass

    parser = argparse.ArgumentParser(prog="python -m pipelines.users")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="hash a password for a new user")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true")
    add.add_argument("--file", type=Path, help="append the line to this users file (created with mode 0600)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    args = parser.parse_args(argv)
    if not set(args.name) <= NAME_CHARS:
        parser.error("names use letters, digits and _ . - @ only")
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass()
    if not password:
        parser.error("empty password")
    line = f"{args.name}:{hash_password(password)}" + (f":{ADMIN}" if args.admin else "")
    if args.file is None:
        print(line)
        return 0
    fd = os.open(args.file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.write(line + "\n")
    print(f"added {args.name} to {args.file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
