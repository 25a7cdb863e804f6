"""cmdp-lab: constrained (safe) reinforcement learning on one CMDP API.

Entry points: the `cmdp` command (cmdp.cli), `cmdp.load_policy` (a run folder's saved policy, see cmdp.loading),
`cmdp.trainer.Trainer`, the registries in `cmdp.registry`, and the shared math in cmdp.gae / cmdp.lagrange /
cmdp.losses.
"""
import contextlib as _contextlib
import io as _io
import sys as _sys
from typing import TYPE_CHECKING as _TYPE_CHECKING

__version__ = "0.1.0"

from cmdp.mujoco_gl import mujoco_gl_problem as _mujoco_gl_problem

# gymnasium-robotics 1.2.2 (a safety-gymnasium requirement) makes every `import gymnasium` print a
# notice about its Adroit hand tasks, which cmdp-lab never uses. Import gymnasium once with stderr
# captured and pass on anything else it printed. Not with a MUJOCO_GL that MuJoCo refuses: then
# `import cmdp` still works, and the `cmdp` command says what is wrong in one line (cmdp.cli.main).
if "gymnasium" not in _sys.modules and _mujoco_gl_problem() is None:
    _captured = _io.StringIO()
    with _contextlib.redirect_stderr(_captured):
        import gymnasium  # noqa: F401
    for _line in _captured.getvalue().splitlines():
        if "AdroitHand" not in _line:
            print(_line, file=_sys.stderr)


if _TYPE_CHECKING:
    from os import PathLike

    from cmdp.loading import LoadedPolicy


def load_policy(run_dir: "str | PathLike[str]", num_envs: int = 1, trust_plugins: bool = False,
                plugins: "list[str] | None" = None) -> "LoadedPolicy":
    """Load the policy of a run folder's last checkpoint for evaluation: see `cmdp.loading.load_policy`.

    Imported lazily: torch and the environments load on the first call, not with `import cmdp`.
    """
    from cmdp.loading import load_policy as _load_policy

    return _load_policy(run_dir, num_envs=num_envs, trust_plugins=trust_plugins, plugins=plugins)
