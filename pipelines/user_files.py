"""Files written for a user to download (batch results, evaluation predictions, reports): each user's are theirs.

With login on, such files live under ``<Gradio's temp dir>/lmw-outputs/<user folder>/<fresh folder>/``: Gradio
serves a file under its own temp dir as it is (no copy into a shared, content-addressed cache folder), so the URL
of the file names its owner's folder, and :func:`may_download` decides whether a request's user may fetch it
(its owner, or an admin). Without login (``user`` None) nothing changes: files go to a fresh temporary folder.
No gradio import here: the HTTP glue is ``components.users_files``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pipelines.uploads import gradio_temp_dir
from pipelines.users import NAME_CHARS

OUTPUTS_DIR = "lmw-outputs"
ANONYMOUS = "~anyone"  # the folder of a request without a user (OAuth on, not signed in); "~" is in no user name
HASHED_PREFIX = "~"  # names that are not plain file names are hashed to "~<hex>"


def outputs_root(base: str | Path | None = None) -> Path:
    """The folder holding one folder per user (``base``: Gradio's temp dir by default), resolved."""
    return (Path(base) if base is not None else gradio_temp_dir()).expanduser().resolve() / OUTPUTS_DIR


def folder_name(user: str) -> str:
    """The folder name of ``user``: the name itself when it is a plain one (letters, digits, ``_ . - @``, not
    starting with a dot), else ``~`` and a hash; ``""`` (no user) is :data:`ANONYMOUS`."""
    if not user:
        return ANONYMOUS
    if set(user) <= NAME_CHARS and not user.startswith(".") and len(user) <= 100:
        return user
    return HASHED_PREFIX + hashlib.sha256(user.encode("utf-8")).hexdigest()[:32]


def user_folder(user: str, root: str | Path | None = None) -> Path:
    """``<root>/<folder of user>``, created with mode 0700 (the root too)."""
    top = Path(root) if root is not None else outputs_root()
    folder = top / folder_name(user)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in (top, folder):
        os.chmod(path, 0o700)
    return folder


def output_folder(user: str | None, prefix: str = "lmw-output-", root: str | Path | None = None) -> Path:
    """A fresh folder for files written for ``user``: in the user's folder with login on, else a temp folder."""
    if user is None:
        return Path(tempfile.mkdtemp(prefix=prefix))
    return Path(tempfile.mkdtemp(prefix=prefix, dir=user_folder(user, root)))


def keep_for(user: str | None, paths: Iterable[str | Path] | None, prefix: str = "lmw-output-",
             root: str | Path | None = None, move: bool = False) -> list[str]:
    """Copy the files at ``paths`` into a fresh folder of ``user`` (same file names); their new paths. ``move``:
    move them instead (for files just written for this request; folders they leave empty are removed). Without
    login (``user`` None) the paths are returned unchanged, as are files already in the user's folder."""
    given = [str(p) for p in paths or ()]
    if user is None or not given:
        return given
    mine = user_folder(user, root).resolve()
    target: Path | None = None
    kept = []
    for path in map(Path, given):
        if not path.is_file() or _within(path.resolve(), mine):
            kept.append(str(path))
            continue
        if target is None or (target / path.name).exists():
            target = output_folder(user, prefix, root)
        copy = target / path.name
        if not move:
            shutil.copy2(path, copy)
        else:
            shutil.move(str(path), copy)
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # only when nothing else is left in it
        kept.append(str(copy))
    return kept


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def owner_folder(path: str | Path, roots: Iterable[str | Path]) -> str | None:
    """The user folder name of ``path`` when it lies under one of ``roots`` (``""`` for a path that is a root or
    a file directly in one), else None. ``..`` and symlinks are resolved first."""
    try:
        real = Path(os.path.realpath(os.path.abspath(os.fspath(path))))
    except (OSError, ValueError):
        return ""
    for root in roots:
        top = Path(os.path.realpath(os.fspath(root)))
        if _within(real, top):
            parts = real.relative_to(top).parts
            return parts[0] if len(parts) > 1 else ""
    return None


def may_download(path: str | Path, user: str | None, is_admin: bool, roots: Iterable[str | Path]) -> bool:
    """Whether ``user`` may fetch the file at ``path``: always without login (``user`` None) and for a file
    outside ``roots``; under a root, only its owner or an admin."""
    if user is None or is_admin:
        return True
    owner = owner_folder(path, roots)
    return owner is None or (bool(owner) and owner == folder_name(user))
