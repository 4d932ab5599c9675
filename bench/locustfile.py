"""A locust load scenario for a running LM Workbench (a local ``python app.py`` or a deployed Space).

Each simulated user mixes, with these weights:

* 3 x chat through the OpenAI-compatible API (``POST /v1/chat/completions``),
* 2 x chat through the Gradio API (``POST /gradio_api/call/generate`` then its SSE result stream, as
  ``gradio_client`` does),
* 3 x zero-shot classification of one text (``/gradio_api/call/classify``),
* 1 x CSV upload (``POST /gradio_api/upload``) classified as a batch (``/gradio_api/call/classify_csv``).

Run it headless for 30 s with 4 users against a local app (install: ``pip install locust``, see
requirements-dev.txt)::

    LMW_WARMUP=0 python app.py &                       # or point --host at a Space: https://<user>-<space>.hf.space
    locust -f bench/locustfile.py --headless -u 4 -r 2 -t 30s --host http://127.0.0.1:7860 --only-summary

Or open the web UI (``locust -f bench/locustfile.py --host ...``, then http://127.0.0.1:8089). Settings from the
environment: ``LMW_LOCUST_MODEL`` (chat model, default ``smollm2-135m-instruct``), ``LMW_LOCUST_ENCODER`` (default
``minilm-l6``), ``LMW_LOCUST_TOKENS`` (new tokens per chat, default 16), ``LMW_API_KEY`` (sent as a bearer key
when the app requires one). A request that answers with an error event or an error object counts as a failure.
"""

from __future__ import annotations

import itertools
import json
import os
import random

from locust import HttpUser, between, task

MODEL = os.environ.get("LMW_LOCUST_MODEL", "smollm2-135m-instruct")
ENCODER = os.environ.get("LMW_LOCUST_ENCODER", "minilm-l6")
TOKENS = int(os.environ.get("LMW_LOCUST_TOKENS", "16"))
LABELS = "cooking, sports, finance"
TEMPLATE = "This text is about {}."
PROMPTS = ("Say hello in five words.", "Name a colour.", "What is 2 + 2?", "Give me a word that rhymes with cat.")
TEXTS = ("Add the butter and stir until golden.", "The striker scored twice in the final.",
         "Shares fell after the bank's quarterly report.", "Whisk the eggs with a pinch of salt.")
CSV_ROWS = 8
TIMEOUT_S = 300


def reviews_csv(rows: int = CSV_ROWS) -> bytes:
    """A small CSV with text,label columns (labels from ``LABELS``)."""
    labels = [label.strip() for label in LABELS.split(",")]
    lines = ["text,label"] + [f'"{text}",{label}' for text, label in
                              itertools.islice(zip(itertools.cycle(TEXTS), itertools.cycle(labels)), rows)]
    return ("\n".join(lines) + "\n").encode()


class WorkbenchUser(HttpUser):
    """One person using the workbench: chats, classifies and uploads small CSVs, with think time between."""

    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        key = os.environ.get("LMW_API_KEY", "").strip()
        if key:
            self.client.headers["Authorization"] = f"Bearer {key}"

    # ---- the Gradio queue API (what gradio_client does) ----------------------------------------------------------
    def gradio_call(self, api_name: str, data: list) -> None:
        """Submit ``data`` to ``/gradio_api/call/<api_name>`` and read its SSE stream to the end; one locust entry
        for the submit and one for the result (the time to the final answer)."""
        with self.client.post(f"/gradio_api/call/{api_name}", json={"data": data}, name=f"gradio {api_name} submit",
                              timeout=TIMEOUT_S, catch_response=True) as submit:
            event_id = submit.json().get("event_id") if submit.ok else None
            if not event_id:
                submit.failure(f"no event id: {submit.status_code} {submit.text[:200]}")
                return
        # read whole (not stream=True, which locust would time at the headers): the server closes the stream
        # after the final "complete" or "error" event
        with self.client.get(f"/gradio_api/call/{api_name}/{event_id}", name=f"gradio {api_name} result",
                             timeout=TIMEOUT_S, catch_response=True) as result:
            events = [line.removeprefix("event:").strip() for line in result.text.splitlines()
                      if line.startswith("event:")]
            if not events or events[-1] != "complete":
                result.failure(f"{result.status_code}, events {events[-3:]}: {result.text[-200:]}")

    def upload(self, name: str, content: bytes) -> dict:
        """Upload a file the way gradio_client does; the FileData to pass to an endpoint."""
        with self.client.post("/gradio_api/upload", files={"files": (name, content, "text/csv")},
                              name="gradio upload", timeout=TIMEOUT_S, catch_response=True) as response:
            paths = response.json() if response.ok else []
            if not paths:
                response.failure(f"upload failed: {response.status_code} {response.text[:200]}")
                return {}
        return {"path": paths[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}

    # ---- tasks -----------------------------------------------------------------------------------------------------
    @task(3)
    def chat_openai(self) -> None:
        body = {"model": MODEL, "max_tokens": TOKENS, "temperature": 0,
                "messages": [{"role": "user", "content": random.choice(PROMPTS)}]}
        with self.client.post("/v1/chat/completions", json=body, name="v1 chat", timeout=TIMEOUT_S,
                              catch_response=True) as response:
            try:
                answer = response.json()
            except json.JSONDecodeError:
                answer = {}
            if response.status_code != 200 or not answer.get("choices"):
                response.failure(f"{response.status_code}: {response.text[:200]}")

    @task(2)
    def chat_gradio(self) -> None:
        self.gradio_call("generate", [random.choice(PROMPTS), MODEL, {"max_new_tokens": TOKENS}, ""])

    @task(3)
    def classify(self) -> None:
        self.gradio_call("classify", [random.choice(TEXTS), "embeddings", ENCODER, LABELS, TEMPLATE])

    @task(1)
    def classify_csv(self) -> None:
        file = self.upload("reviews.csv", reviews_csv())
        if file:
            self.gradio_call("classify_csv", [file, "text", "label", "embeddings", ENCODER, LABELS, TEMPLATE, "auto"])
