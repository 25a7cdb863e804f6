"""Whether MuJoCo's own import would fail with this process's `MUJOCO_GL`, said without importing anything.

`mujoco` is imported with gymnasium (gymnasium-robotics registers its tasks as a gymnasium plugin), and its import
raises for a `MUJOCO_GL` value it does not know, or for `egl` or `osmesa` without that library. `import cmdp` checks
first and then leaves gymnasium alone, and the `cmdp` command refuses in one line (`cmdp.cli.main`); which backend
to use when the user has not chosen one is `cmdp.envs.offscreen`'s job.
"""
from __future__ import annotations

import ctypes.util
import os
import platform

#: the `MUJOCO_GL` values MuJoCo 2.3.3 accepts on Linux (mujoco/gl_context.py)
_MUJOCO_GL_VALUES = ("disable", "disabled", "off", "false", "0", "enable", "enabled", "on", "true", "1", "glfw", "",
                     "glx", "egl", "osmesa")
#: the headless GL backends and the library each loads, in the order `cmdp.envs.offscreen.configure_gl` prefers them
BACKEND_LIBRARIES = {"egl": "EGL", "osmesa": "OSMesa"}


def mujoco_gl_problem() -> str | None:
    """One line saying why `import mujoco` (and so `import gymnasium`) would fail with this process's `MUJOCO_GL`,
    None when it would not fail for that reason. Imports nothing."""
    value = os.environ.get("MUJOCO_GL", "").lower().strip()
    if platform.system() != "Linux":
        return None
    if value not in _MUJOCO_GL_VALUES:
        return (f"MUJOCO_GL={os.environ['MUJOCO_GL']!r} is not a value MuJoCo accepts (egl, osmesa or glfw); "
                f"set one of those or unset it")
    library = BACKEND_LIBRARIES.get(value)
    if library and not ctypes.util.find_library(library):
        return (f"MUJOCO_GL={value}, but the {library} library is not installed; install it (./install.sh installs "
                f"EGL), set MUJOCO_GL=egl|osmesa|glfw or unset it")
    return None
