"""Secrets at rest (remote endpoints' API keys): one JSON file with mode 0600 in ``<data>/secrets/`` (mode 0700),
outside the run folders, so a run's zip, report or model card never carries one. Written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

SECRETS_DIR = "secrets"
FILE_MODE = 0o600
DIR_MODE = 0o700


class SecretFile:
    """A JSON object kept in ``path`` readable by the app's user only."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def in_data_dir(cls, data_dir: Path, name: str) -> SecretFile:
        return cls(Path(data_dir) / SECRETS_DIR / name)

    def read(self) -> dict[str, Any]:
        """The stored object ({} when there is none or it cannot be read)."""
        try:
            value = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def write(self, value: dict[str, Any]) -> None:
        """Replace the stored object (a 0600 temporary file renamed over the old one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path.parent, DIR_MODE)
        fd, tmp = tempfile.mkstemp(prefix=".secret-", dir=self.path.parent)  # mkstemp creates it 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(value, out)
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
