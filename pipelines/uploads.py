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
from pipelines.table_sniff import human_size


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
        raise InputError("Upload a file first.")
    if "\x00" in raw:
        raise InputError("The uploaded file name is not valid.")
    roots = [Path(r).expanduser().resolve() for r in (gradio_temp_dir(), *allowed_roots)]
    try:
        resolved = Path(raw).resolve()
    except (OSError, RuntimeError, ValueError):
        raise InputError("The uploaded file name is not valid.") from None
    if not any(resolved.is_relative_to(root) for root in roots):
        raise InputError("That file is not an upload of this app; upload it again with the file picker.")
    if not resolved.exists():
        raise InputError("The uploaded file is gone (uploads are temporary); upload it again.")
    if not resolved.is_file():
        raise InputError("That upload is not a regular file.")
    suffixes = _suffixes(allowed_suffixes)
    name = Path(raw).name
    if suffixes and not resolved.name.lower().endswith(suffixes):
        raise InputError(f"'{name}' has the wrong type; upload a {', '.join(suffixes)} file.")
    size = resolved.stat().st_size
    if size == 0:
        raise InputError(f"'{name}' is empty.")
    if size > max_bytes:
        raise InputError(f"'{name}' is {human_size(size)}; the limit is {human_size(max_bytes)}.")
    return resolved
