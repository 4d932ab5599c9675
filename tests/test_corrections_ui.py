"""Fix wrong rows, retrain, in the browser: after a labelled batch run the corrections table appears; editing a
label, excluding a row and pressing Retrain trains a new run and shows the before/after line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import open_tab

ROWS = [("The striker scored a goal in the final minute", "sports"), ("The team won the championship match", "sports"),
        ("She ran the marathon in record time", "sports"), ("The referee showed a red card", "sports"),
        ("The tennis player served an ace", "sports"), ("The goalkeeper saved the penalty", "sports"),
        ("Bake the bread for an hour", "cooking"), ("Stir the sauce until it thickens", "cooking"),
        ("Chop the onions and fry them in butter", "cooking"), ("Whisk the eggs with sugar", "cooking"),
        ("Simmer the soup for twenty minutes", "cooking"), ("Season the steak with salt and pepper", "cooking")]


@pytest.mark.browser
def test_editing_a_correction_and_retraining_shows_the_before_after_line(page, tiny_root, tmp_path: Path,
                                                                         artifacts_dir: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("text,label\n" + "".join(f"{text},{label}\n" for text, label in ROWS), encoding="utf-8")
    open_tab(page, "Classify")
    page.get_by_role("tab", name="Batch").first.click()
    assert not page.locator("#corrections-panel").is_visible()  # nothing to correct before a labelled batch run
    picker = page.locator("#classify-model input")
    picker.fill(str(tiny_root / "tiny-bert"))  # embeddings zero-shot on a tiny encoder: fast, mostly wrong
    picker.press("Enter")
    page.locator("#classify-batch-file input[type=file]").set_input_files(str(path))
    page.wait_for_timeout(1500)
    page.locator("#classify-batch-run").click()
    page.locator("#classify-batch-status").get_by_text("done").wait_for(timeout=120_000)
    note = page.locator("#corrections-note")
    note.get_by_text("low-confidence").wait_for(timeout=30_000)
    assert "of 12; batch accuracy" in note.inner_text()

    table = page.locator("#corrections-table")
    assert table.locator("[role=columnheader]").first.is_visible()
    gold = table.locator('[data-testid="cell-0-2"]').inner_text().strip()
    new = "cooking" if gold == "sports" else "sports"
    table.locator('[data-testid="cell-0-5"]').dblclick()
    page.keyboard.press("Control+A")
    page.keyboard.type(new)
    page.keyboard.press("Enter")
    table.locator('[data-testid="cell-1-6"] input[type=checkbox]').check()
    page.wait_for_timeout(500)
    assert table.locator('[data-testid="cell-0-5"]').inner_text().strip() == new

    page.locator("#corrections-retrain").click()
    status = page.locator("#corrections-status")
    status.get_by_text("Before:").wait_for(timeout=480_000)
    shown = status.inner_text()
    page.screenshot(path=str(artifacts_dir / "corrections-before-after.png"), full_page=True)
    assert "After:" in shown and "on 12 batch rows" in shown and "on the 11 corrected rows by run:" in shown
    assert "Corrected labels: 1; excluded rows: 1." in shown
    run_id = page.locator("#corrections-run textarea, #corrections-run input").first.input_value()
    assert run_id and f"run:{run_id}" in shown
    files = page.locator("#corrections-files").inner_text().replace("\n", "")
    assert "corrected.csv" in files and "training.csv" in files


def test_corrections_endpoint_takes_a_batch_result_and_edits_and_returns_the_new_run(app_server, tiny_root,
                                                                                   tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    path = tmp_path / "rows.csv"
    path.write_text("text,label\n" + "".join(f"{text},{label}\n" for text, label in ROWS), encoding="utf-8")
    client = Client(app_server["url"], verbose=False)
    model = str(tiny_root / "tiny-bert")
    *_, files, _, _ = client.predict(handle_file(str(path)), "text", "label", "embeddings", model, "sports, cooking",
                                     "", "auto", api_name="/classify_csv")
    result = next(f for f in files if str(f).endswith(".csv"))
    edits = {"headers": ["row", "text", "gold", "predicted", "confidence", "new_label", "exclude"],
             "data": [[1, "", "sports", "", None, "cooking", False], [2, "", "sports", "", None, "cooking", False],
                      [3, "", "sports", "", None, "cooking", False], [8, "", "cooking", "", None, "cooking", True]]}
    run_id, status, out = client.predict(handle_file(result), edits, model, "text", "label", "quick",
                                         api_name="/corrections")
    assert run_id and f"run:{run_id}" in status and "Corrected labels: 3; excluded rows: 1." in status
    assert "on 12 batch rows" in status and "on the 11 corrected rows" in status
    assert [Path(f).name for f in out] == ["corrected.csv", "training.csv"]
    with pytest.raises(Exception, match="outside the batch result"):
        client.predict(handle_file(result), {"headers": edits["headers"], "data": [[99, "", "", "", None, "x", False]]},
                       model, "text", "label", "quick", api_name="/corrections")
