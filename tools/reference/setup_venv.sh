#!/usr/bin/env bash
# Create (or re-check) <repo>/.venv-ref, the Python environment used by tools/reference/make_fixtures.py.
#
#   /usr/bin/python3 -m venv --system-site-packages .venv-ref     (Debian python3-torch 1.13 comes from the system)
#   .venv-ref/bin/pip install -r tools/reference/requirements.txt
#
# Idempotent: an existing venv is reused and pip does nothing when the pins are already satisfied.
# Needs (Debian 12): apt-get install python3-venv python3-torch python3-torchaudio libopenblas0-openmp
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
VENV="$REPO_ROOT/.venv-ref"
SYS_PY=/usr/bin/python3

if ! "$SYS_PY" -c 'import torch' >/dev/null 2>&1; then
    echo "error: $SYS_PY cannot import torch; install Debian's python3-torch (and libopenblas0-openmp)" >&2
    exit 1
fi
if ! "$SYS_PY" -c 'import torchaudio' >/dev/null 2>&1; then
    echo "error: $SYS_PY cannot import torchaudio; install Debian's python3-torchaudio" >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV"
    "$SYS_PY" -m venv --system-site-packages "$VENV"
else
    echo "reusing $VENV"
fi

"$VENV/bin/pip" install --disable-pip-version-check -q -r "$SCRIPT_DIR/requirements.txt"

"$VENV/bin/python" - <<'PY'
import torch, torchaudio, transformers, sentencepiece, safetensors, soxr
print(f"torch {torch.__version__}  torchaudio {torchaudio.__version__}  transformers {transformers.__version__}  "
      f"sentencepiece {sentencepiece.__version__}  safetensors {safetensors.__version__}  "
      f"soxr {soxr.__version__} (libsoxr {soxr.__libsoxr_version__})")
assert torch.__version__.startswith("1.13"), "expected Debian python3-torch 1.13"
assert torchaudio.__version__.startswith("0.13"), "expected Debian python3-torchaudio 0.13"
assert transformers.__version__ == "4.40.2"
assert sentencepiece.__version__ == "0.1.99"
assert soxr.__version__ == "1.1.0"
PY
echo "ok: $VENV"
