"""Checks for files handed to a tab by an upload component: where they are, what they are, how big.

Gradio stores uploads in its temp dir (``GRADIO_TEMP_DIR``, else ``<tempdir>/gradio``); a path from anywhere else
(an API caller passing ``/etc/passwd``, a symlink planted in the temp dir) is refused. No gradio import here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pipelines.errors import InputError
from pipelines.table_sniff import size_msg


def gradio_temp_dir() -> Path:
    """The folder Gradio saves uploads in (same rule as ``gradio.utils.get_upload_folder``)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def _as_path(upload: object) -> str | None:
    """The path of an upload value: a str/Path, a dict with ``path``/``name``, or an object with ``.path``/``.name``."""
    if upload is None or isinstance(upload, (str, os.PathLike)):
        return os.fspath(upload) if upload is not None else None
    if isinstance(upload, dict):
        value = upload.get("path") or upload.get("name")
    else:
        value = getattr(upload, "path", None) or getattr(upload, "name", None)
    return os.fspath(value) if isinstance(value, (str, os.PathLike)) else None


def _suffixes(allowed: Iterable[str]) -> tuple[str, ...]:
    return tuple("." + s.lower().lstrip(".") for s in allowed)


def checked_upload(
    path: object,
    allowed_suffixes: Iterable[str],
    max_bytes: int,
    *,
    allowed_roots: Iterable[str | Path] = (),
) -> Path:
    """Return the resolved path of an uploaded file, or raise :class:`InputError` with one clear sentence.

    The file must (after resolving symlinks) lie inside Gradio's temp dir or one of ``allowed_roots``, be a
    regular file, end with one of ``allowed_suffixes`` (case-insensitive, e.g. ``(".csv", ".tsv")``) and hold
    between 1 and ``max_bytes`` bytes.
    """
    raw = _as_path(path)
    if not raw or not raw.strip():
        raise InputError("uploads.error.none")
    if "\x00" in raw:
        raise InputError("uploads.error.bad_name")
    roots = [Path(r).expanduser().resolve() for r in (gradio_temp_dir(), *allowed_roots)]
    try:
        resolved = Path(raw).resolve()
    except (OSError, RuntimeError, ValueError):
        raise InputError("uploads.error.bad_name") from None
    if not any(resolved.is_relative_to(root) for root in roots):
        raise InputError("uploads.error.foreign")
    if not resolved.exists():
        raise InputError("uploads.error.gone")
    if not resolved.is_file():
        raise InputError("uploads.error.not_file")
    suffixes = _suffixes(allowed_suffixes)
    name = Path(raw).name
    if suffixes and not resolved.name.lower().endswith(suffixes):
        raise InputError("uploads.error.wrong_type", name=name, types=", ".join(suffixes))
    size = resolved.stat().st_size
    if size == 0:
        raise InputError("uploads.error.empty", name=name)
    if size > max_bytes:
        raise InputError("uploads.error.too_big", name=name, size=size_msg(size), limit=size_msg(max_bytes))
    return resolved
