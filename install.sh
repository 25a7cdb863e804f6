#!/usr/bin/env bash
# Installs cmdp-lab and everything its main job needs into ./.venv (CPU only). Safe to re-run.
#
# Two pins matter on a fresh machine:
#  - torch==2.13.0 first: this machine's local CPU build. A bare `torch` requirement would pull
#    several GB of CUDA packages from the registry.
#  - safety-gymnasium==1.0.0 with --no-deps: its metadata pins pygame==2.1.0, which does not build on
#    Python 3.11 and which it never imports. Its real requirements come from our [safety-gym] extra.
#    Its Python 3.11 import error is handled in envs/safety_gym.py.
# The [text] extra (transformers, tokenizers, safetensors, peft, deepspeed, pyarrow<26) is for the Safe RLHF
# side (envs/text, `cmdp train-score-model`); pyarrow stays below 26 because 26+ needs NumPy 2 (see setup.cfg).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON=$candidate; break; fi
  done
fi
"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"cmdp-lab needs Python >= 3.10 (3.11 recommended); {sys.executable} is {sys.version.split()[0]}")
PY

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --disable-pip-version-check --progress-bar off)
"${PIP[@]}" --quiet --upgrade pip
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" --no-deps safety-gymnasium==1.0.0
# --no-warn-conflicts: pip would print an ERROR for the pygame pin skipped on purpose above; `pip check`
# below reports every other broken requirement.
"${PIP[@]}" --no-warn-conflicts -e ".[safety-gym,test,ray,report,text]"
problems=$(.venv/bin/python -m pip check 2>&1 | grep -v -e '^safety-gymnasium 1.0.0 requires pygame' \
           -e '^No broken requirements found' || true)
if [ -n "$problems" ]; then
  echo "warning: pip check reports broken requirements:" >&2
  echo "$problems" >&2
fi
.venv/bin/python -c "import cmdp, envs.safety_gym as sg; sg.import_safety_gymnasium(); print('cmdp-lab installed in .venv')"
