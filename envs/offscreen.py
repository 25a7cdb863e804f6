"""Offscreen MuJoCo rendering on a machine without a display: which GL backend, and one clear line when none works.

Safety-Gymnasium renders (the vision tasks' camera, `cmdp eval --video`) through gymnasium's offscreen viewer,
which creates its OpenGL context with the backend the environment variable `MUJOCO_GL` names (egl, osmesa or
glfw), read when the context is created. Unset, it tries GLFW first, which needs a display: on a headless machine
the first frame then fails with "an OpenGL platform library has not been loaded into this process".

`configure_gl` (called by `cmdp.envs.safety_gym.import_safety_gymnasium`, before any task is made) therefore sets
`MUJOCO_GL` for this process and the subprocesses it starts, only when the user has not set it and there is no
display: `egl` when the EGL library is present (Mesa's software renderer on a CPU machine, the driver's on a GPU
machine), else `osmesa` when OSMesa is. With a display, MuJoCo's default (GLFW) is left alone.

`check_offscreen_rendering` renders a one-geom model through that same viewer, in a child process (once per
process), so that the vision tasks and `cmdp eval --video` fail at start with one line saying what to install,
instead of a traceback from inside PyOpenGL at the first frame (or from an environment subprocess).

`mujoco` itself is imported with gymnasium (gymnasium-robotics registers its tasks as a gymnasium plugin), and
MuJoCo's import raises for a `MUJOCO_GL` value it does not know (e.g. `MUJOCO_GL=foo`), or for `egl` or `osmesa`
without that library. `cmdp.mujoco_gl.mujoco_gl_problem` says so without importing anything: `import cmdp` then
leaves gymnasium alone, and the `cmdp` command refuses in one line before anything imports gymnasium.
"""
from __future__ import annotations

import ctypes.util
import functools
import os
import platform
import subprocess
import sys

from cmdp.mujoco_gl import BACKEND_LIBRARIES
from cmdp.spec import ConfigError

INSTALL_HINT = ("install EGL with Mesa (Debian/Ubuntu: apt-get install libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri; "
                "./install.sh does it) or OSMesa (libosmesa6), or set MUJOCO_GL=egl|osmesa|glfw")


def has_display() -> bool:
    """Whether a window can be opened: not on Linux without `DISPLAY` or `WAYLAND_DISPLAY` (other systems: assumed)."""
    return platform.system() != "Linux" or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def configure_gl() -> str | None:
    """Set `MUJOCO_GL` when the user has not and there is no display (see the module docstring); return the
    value set, None when nothing was set."""
    if "MUJOCO_GL" in os.environ or has_display():
        return None
    for backend, library in BACKEND_LIBRARIES.items():
        if ctypes.util.find_library(library):
            os.environ["MUJOCO_GL"] = backend
            return backend
    return None


#: run in a fresh interpreter by `check_offscreen_rendering`: one frame of a one-geom model through gymnasium's
#: offscreen viewer, as the tasks render; a failure prints one marked line and leaves without interpreter teardown
#: (a half-made viewer's `__del__` would print more)
_PROBE = """
import os, sys, warnings
warnings.simplefilter("ignore")  # GLFW reports a missing display as a warning before it fails
try:
    import mujoco
    from gymnasium.envs.mujoco.mujoco_rendering import OffScreenViewer
    model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='1'/></worldbody></mujoco>")
    model.vis.global_.offwidth = model.vis.global_.offheight = 16
    viewer = OffScreenViewer(model, mujoco.MjData(model))
    frame = viewer.render(render_mode="rgb_array")
    viewer.free()
    assert frame.shape == (16, 16, 3), f"a frame of shape {frame.shape}"
except BaseException as exc:
    lines = str(exc).strip().splitlines() or [""]
    print("PROBE-FAILED", type(exc).__name__ + ":", lines[0], flush=True)
    os._exit(1)
os._exit(0)
"""


def check_offscreen_rendering() -> None:
    """ConfigError in one line when MuJoCo cannot render offscreen with this process's `MUJOCO_GL` (checked once per
    value and process). Call after `configure_gl` (i.e. after `import_safety_gymnasium`)."""
    _probe(os.environ.get("MUJOCO_GL"))


@functools.cache
def _probe(backend: str | None) -> None:
    # In a child process: a GL driver that aborts takes only the child down, and nothing the failure leaves behind
    # (half-made contexts) can print into this process's output later. The child inherits MUJOCO_GL.
    res = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300)
    if res.returncode == 0:
        return
    marked = [line for line in res.stdout.splitlines() if line.startswith("PROBE-FAILED ")]
    reason = marked[-1].removeprefix("PROBE-FAILED ") if marked else f"the probe process exited with {res.returncode}"
    raise ConfigError(f"cannot render MuJoCo offscreen (MUJOCO_GL={backend or 'unset'}; {reason}); {INSTALL_HINT}")
