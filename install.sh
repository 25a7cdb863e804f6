#!/usr/bin/env bash
# Installs cmdp-lab and everything its main job needs into ./.venv (CPU only). Safe to re-run.
#
# Two pins matter on a fresh machine:
#  - torch==2.13.0 first: this machine's local CPU build. A bare `torch` requirement would pull
#    several GB of CUDA packages from the registry.
#  - safety-gymnasium==1.0.0 with --no-deps: its metadata pins pygame==2.1.0, which does not build on
#    Python 3.11 and which it never imports. Its real requirements come from our [safety-gym] extra.
#    Its Python 3.11 import error is handled in envs/safety_gym.py.
# Offscreen rendering (vision tasks, videos) needs EGL and Mesa from the system: installed with apt-get when missing
# and possible (see the end of this file), never fatal.
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

# Offscreen rendering (the vision tasks, `cmdp eval --video`): without a display MuJoCo renders through EGL, here
# with Mesa's software renderer (envs/offscreen.py chooses MUJOCO_GL=egl). The system libraries are installed with
# apt-get when they are missing and apt-get can run as root; never fatal: every other task runs without them.
EGL_PACKAGES=(libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri)
egl_present() {
  local libs
  libs=$(ldconfig -p 2>/dev/null || true)
  [[ $libs == *libEGL.so.1* && $libs == *libEGL_mesa.so.0* && $libs == *libGL.so.1* ]] \
    && compgen -G "/usr/lib/*/dri/swrast_dri.so" >/dev/null
}
if ! egl_present; then
  APT=()
  if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
      APT=(env DEBIAN_FRONTEND=noninteractive apt-get)
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      APT=(sudo -n env DEBIAN_FRONTEND=noninteractive apt-get)
    fi
  fi
  if [ ${#APT[@]} -gt 0 ] && "${APT[@]}" update -qq >/dev/null 2>&1 \
      && "${APT[@]}" install -y -qq "${EGL_PACKAGES[@]}" >/dev/null 2>&1; then
    echo "installed ${EGL_PACKAGES[*]} (offscreen rendering)"
  else
    echo "note: could not install ${EGL_PACKAGES[*]} (needs apt-get as root); the vision tasks and" \
         "'cmdp eval --video' need them (or OSMesa) to render offscreen" >&2
  fi
fi

.venv/bin/python -c "import cmdp, envs.safety_gym as sg; sg.import_safety_gymnasium(); print('cmdp-lab installed in .venv')"
.venv/bin/python - <<'PY' || true
from cmdp.envs.safety_gym import import_safety_gymnasium
from cmdp.envs.offscreen import check_offscreen_rendering
from cmdp.spec import ConfigError
import os

import_safety_gymnasium()
try:
    check_offscreen_rendering()
    print(f"offscreen rendering works (MUJOCO_GL={os.environ.get('MUJOCO_GL', 'unset')}): vision tasks and videos")
except ConfigError as exc:
    print(f"note: {exc}")
PY
