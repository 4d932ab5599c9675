"""Simultaneous API calls against one app all complete with correct results."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from gradio_client import Client

LABELS = "sports, cooking, finance"
TEXTS = {
    "The striker scored twice and the team won the football match.": "sports",
    "Whisk the eggs with sugar, then bake the cake for forty minutes.": "cooking",
    "The central bank raised interest rates and the stock market fell.": "finance",
    "The tennis player won the championship final in five sets.": "sports",
    "Simmer the tomato sauce with garlic and fresh basil.": "cooking",
    "Investors sold bonds after the quarterly earnings report.": "finance",
    "The marathon runner crossed the finish line first.": "sports",
    "Season the soup with salt and pepper before serving.": "cooking",
}


def test_eight_simultaneous_classify_calls_all_answer_correctly(app_server) -> None:
    url = app_server["url"]

    def call(text: str) -> str:
        client = Client(url, verbose=False)
        label, *_ = client.predict(text, "embeddings", "minilm-l6", LABELS, "", api_name="/classify")
        return label

    with ThreadPoolExecutor(max_workers=8) as pool:
        labels = list(pool.map(call, TEXTS))
    assert labels == list(TEXTS.values())
    assert app_server["proc"].poll() is None  # the app is still up
