"""checked_upload: only files in Gradio's temp dir (or a given root), with the right suffix and size."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipelines.errors import InputError
from pipelines.uploads import checked_upload, gradio_temp_dir


@pytest.fixture
def gradio_tmp(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "gradio"
    (folder / "abc123").mkdir(parents=True)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    return folder


def upload(folder: Path, name: str = "data.csv", data: bytes = b"text,label\na,b\n") -> Path:
    path = folder / "abc123" / name
    path.write_bytes(data)
    return path


def refusal(*args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        checked_upload(*args, **kwargs)
    return str(info.value)


def test_temp_dir_follows_gradio_rule(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    assert gradio_temp_dir() == tmp_path
    monkeypatch.delenv("GRADIO_TEMP_DIR")
    assert gradio_temp_dir().name == "gradio"


@pytest.mark.parametrize("kind", [str, Path, lambda p: {"path": str(p)}, lambda p: SimpleNamespace(path=str(p))])
def test_accepts_an_upload_in_any_shape(gradio_tmp, kind):
    path = upload(gradio_tmp)
    assert checked_upload(kind(path), (".csv", "tsv"), 1000) == path.resolve()


def test_suffix_is_case_insensitive(gradio_tmp):
    path = upload(gradio_tmp, "DATA.CSV")
    assert checked_upload(str(path), ("csv",), 1000) == path.resolve()


def test_nothing_uploaded(gradio_tmp):
    assert refusal(None, (".csv",), 1000) == "Upload a file first."
    assert refusal("", (".csv",), 1000) == "Upload a file first."


def test_file_outside_the_temp_dir(gradio_tmp, tmp_path):
    outside = tmp_path / "secret.csv"
    outside.write_text("a,b\n1,2\n")
    assert "not an upload of this app" in refusal(str(outside), (".csv",), 1000)
    assert "not an upload of this app" in refusal("/etc/passwd", (".csv",), 1000)


def test_traversal_out_of_the_temp_dir(gradio_tmp, tmp_path):
    (tmp_path / "secret.csv").write_text("a,b\n1,2\n")
    sneaky = gradio_tmp / "abc123" / ".." / ".." / "secret.csv"
    assert "not an upload of this app" in refusal(str(sneaky), (".csv",), 1000)


def test_symlink_out_of_the_temp_dir(gradio_tmp, tmp_path):
    target = tmp_path / "secret.csv"
    target.write_text("a,b\n1,2\n")
    link = gradio_tmp / "abc123" / "innocent.csv"
    os.symlink(target, link)
    assert "not an upload of this app" in refusal(str(link), (".csv",), 1000)


def test_extra_allowed_root(gradio_tmp, tmp_path):
    root = tmp_path / "examples"
    root.mkdir()
    sample = root / "sample.csv"
    sample.write_text("a,b\n1,2\n")
    assert checked_upload(sample, (".csv",), 1000, allowed_roots=[root]) == sample.resolve()


def test_wrong_suffix(gradio_tmp):
    path = upload(gradio_tmp, "data.exe")
    assert refusal(path, (".csv", ".tsv"), 1000) == "'data.exe' has the wrong type; upload a .csv, .tsv file."


def test_size_limits(gradio_tmp):
    assert refusal(upload(gradio_tmp, "big.csv", b"x" * 2048), (".csv",), 1024) == (
        "'big.csv' is 2.0 KB; the limit is 1.0 KB."
    )
    assert refusal(upload(gradio_tmp, "empty.csv", b""), (".csv",), 1024) == "'empty.csv' is empty."


def test_missing_file_and_folder(gradio_tmp):
    assert "gone" in refusal(gradio_tmp / "abc123" / "deleted.csv", (".csv",), 1000)
    folder = gradio_tmp / "abc123" / "folder.csv"
    folder.mkdir()
    assert "not a regular file" in refusal(folder, (".csv",), 1000)


def test_null_byte_in_name(gradio_tmp):
    assert "not valid" in refusal(str(gradio_tmp / "a\x00.csv"), (".csv",), 1000)
