"""The fast Safety-Gymnasium navigation backend: upstream's tasks, equivalent step by step, several times faster.

Upstream (safety-gymnasium 1.0.0) recompiles the MuJoCo model from XML at every reset and computes its
observations and costs in Python loops over objects and contacts. This backend builds upstream's own Builder
and task objects and replaces only those parts:

- `layout.py`: a reset writes the newly sampled layout (same random streams) into the model compiled at the
  first reset, including everything the compiler derives from it, instead of recompiling;
- `observation.py`: the flat observation vector from a few numpy calls (sensors, pseudo-lidar of all objects);
- `objects.py`: the objects' costs and the button contacts, vectorised over objects and contacts;
- `task.py`: the mixins that put these into upstream's task classes (`fast_task_class`);
- `env.py`: `FastSafetyGymEnv`, the `CMDPEnv` that `make_safety_gym` builds for `backend: fast`.

Equivalence: tests/test_safety_gym_fast.py gives upstream and this backend the same seeds and actions and
compares observations, rewards, costs, terminations and truncations step by step, and the written model
with upstream's compiled one field by field.
"""
from cmdp.envs.safety_gym_compat import import_patched

import_patched()  # every safety_gymnasium import below needs the Python 3.11 patch in place first

from cmdp.envs.sg_fast.env import FastBuilder, FastSafetyGymEnv  # noqa: E402

__all__ = ["FastBuilder", "FastSafetyGymEnv"]
