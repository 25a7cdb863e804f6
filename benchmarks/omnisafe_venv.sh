#!/usr/bin/env bash
# Creates ./.venv-omnisafe with OmniSafe 0.5.0 (CPU only), for `python -m benchmarks.omnisafe_side_by_side`.
# Everything comes from the package registry; safe to re-run (pip skips what is already installed).
#
#   benchmarks/omnisafe_venv.sh            # from the repository root, or from anywhere
#
# Why the installs are split:
#  - torch==2.13.0 first: the registry serves the CPU build for this exact pin; a bare `torch` requirement would
#    pull several GB of CUDA packages. The same pin as cmdp-lab's own install.sh.
#  - safety-gymnasium==1.0.0 with --no-deps: its metadata pins pygame==2.1.0, which does not build on Python 3.11
#    and which it never imports. Its real requirements are installed by hand, with the pins of install.sh and of
#    setup.cfg's [safety-gym] extra. Its Python 3.11 import error is handled at run time by
#    envs/safety_gym_compat.py (benchmarks/omnisafe_runner.py calls it before importing omnisafe).
#  - omnisafe==0.5.0 with --no-deps: it requires safety-gymnasium>=0.2.0, and pip would then resolve
#    safety-gymnasium's pygame pin again. Its other requirements (its wheel's metadata) are listed below with its
#    own pins (pandas==2.0.3); NumPy stays below 2 because pandas 2.0.3 and mujoco 2.3.3 are built against NumPy 1.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON=$candidate; break; fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "omnisafe_venv.sh: no python3.11 or python3 found; set PYTHON=/path/to/python3.11" >&2
  exit 2
fi

VENV=.venv-omnisafe
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off --quiet)
"${PIP[@]}" --upgrade pip
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" "numpy==1.23.5"
# Safety-Gymnasium 1.0.0's own requirements except pygame (see above); the pins of install.sh / setup.cfg.
"${PIP[@]}" gymnasium==0.28.1 gymnasium-robotics==1.2.2 mujoco==2.3.3 "xmltodict>=0.13.0" "pyyaml>=6.0" \
  "imageio>=2.27.0"
"${PIP[@]}" --no-deps safety-gymnasium==1.0.0
# OmniSafe 0.5.0's requirements as its wheel's metadata states them (safety-gymnasium and torch installed above).
# `import omnisafe` needs wandb, rich, tensorboard, gdown, tqdm and matplotlib; pandas, seaborn, typer and moviepy
# serve its plotter, command line and videos, and are installed so that the package is whole. Its `typer[all]` is
# written `typer` here: current typer depends on rich and shellingham itself and has no [all] extra any more.
"${PIP[@]}" "numpy==1.23.5" "tensorboard>=2.8.0" "wandb>=0.13.0" "pyyaml>=6.0" "moviepy>=1.0.0" \
  "typing-extensions>=4.0.0" "typer>=0.7.0" "seaborn>=0.12.2" pandas==2.0.3 "matplotlib>=3.7.1" "gdown>=4.6.0"
"${PIP[@]}" --no-deps omnisafe==0.5.0

# The check the side-by-side runner makes: Safety-Gymnasium through our patch, then OmniSafe.
"$VENV/bin/python" - <<'PY'
import importlib.util
import sys

spec = importlib.util.spec_from_file_location("safety_gym_compat", "envs/safety_gym_compat.py")
compat = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compat)
compat.import_patched()
import omnisafe  # noqa: E402

print(f"OmniSafe {omnisafe.__version__} installed in .venv-omnisafe (Python {sys.version.split()[0]})")
PY
