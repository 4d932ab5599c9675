"""CSV batch mode in Chinese (#18.6): preview headers, status, metrics and notes follow the request's language;
long rows are cut with one note (limits), and every row is still answered."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from gradio_client import Client, handle_file

from components.batch_ui import BatchSpec, run_batch
from pipelines.config import AppConfig
from pipelines.context import AppContext

ZH = {"accept-language": "zh-CN,zh;q=0.9"}
ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "This text is about {}."


@pytest.fixture(scope="module")
def zh(app_server) -> Client:
    return Client(app_server["url"], verbose=False, headers=ZH)


def test_classify_csv_in_chinese(zh, tmp_path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("text,label\nThe striker scored a goal,sports\nBake the bread for an hour,cooking\n",
                    encoding="utf-8")
    status, preview, files, metrics, _ = zh.predict(handle_file(str(path)), "text", "label", "embeddings",
                                                    "minilm-l6", "sports, cooking", TEMPLATE, api_name="/classify_csv")
    assert status.startswith("2 / 2 行（已完成，"), status
    assert preview["headers"] == ["text", "label", "预测标签", "分数"]  # the user's columns keep their names
    assert "**准确率** 1.000" in metrics and "宏平均 F1" in metrics
    csv_file = next(f for f in files if str(f).endswith(".csv"))
    assert list(pd.read_csv(csv_file).columns) == ["text", "label", "predicted_label", "score"]  # downloads: stable


def test_summarize_csv_in_chinese(zh) -> None:
    status, preview, _files, metrics, _ = zh.predict(
        handle_file(str(ROOT / "assets" / "examples" / "news_zh_gbk.csv")), "文本", "摘要", "extractive", "minilm-l6",
        1, 0, 128, api_name="/summarize_csv")
    assert status.startswith("4 / 4 行（已完成，"), status
    assert "模型摘要" in preview["headers"] and "model_summary" not in preview["headers"]
    assert metrics.startswith("**平均 ROUGE-1**") and "共 4 行" in metrics


def test_english_keeps_the_column_names(app_server, tmp_path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("text\nThe striker scored a goal\n", encoding="utf-8")
    status, preview, *_ = Client(app_server["url"], verbose=False).predict(
        handle_file(str(path)), "text", "", "embeddings", "minilm-l6", "sports, cooking", TEMPLATE,
        api_name="/classify_csv")
    assert status.startswith("1 of 1 rows (done, ") and preview["headers"] == ["text", "predicted_label", "score"]


def test_long_rows_are_cut_with_one_note(shared_cache_dir, tiny_root, tmp_path, upload_dir) -> None:
    ctx = AppContext.create(AppConfig(data_dir=tmp_path / "data", cache_dir=shared_cache_dir,
                                      extra_model_roots=[tiny_root], max_input_chars=10))
    path = upload_dir / "long.csv"
    pd.DataFrame({"text": ["short", "x" * 50, "y" * 11, "ok"]}).to_csv(path, index=False)
    seen: list[str] = []
    spec = BatchSpec(lambda texts: seen.extend(texts) or [{"n": len(x)} for x in texts], 2)
    status, preview, *_ = list(run_batch(ctx, "test-cut", str(path), "text", None, lambda: spec))[-1]
    assert [len(x) for x in seen] == [5, 10, 10, 2]  # every row answered, long ones cut to the limit
    assert status.count("longer than") == 1 and "2 row(s) were longer than 10 characters" in status
    assert list(preview["n"]) == [5, 10, 10, 2]
