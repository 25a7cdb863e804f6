"""The exception types a user's command ends in with one line: bad input, and training that diverged. In a module
that imports nothing, so that the `cmdp` command can refuse an unusable environment (e.g. a `MUJOCO_GL` value MuJoCo
rejects at import) before gymnasium is imported."""


class ConfigError(ValueError):
    """Bad user input (config, CLI argument, data). The message names the offending field."""


class TrainingDiverged(FloatingPointError):
    """A loss or gradient that is not finite, caught before it turns every weight into NaN; the message says what
    diverged. `cmdp train` reports it in one line (exit status 2)."""


#: what a divergence message ends with: what the user can change
DIVERGED_ADVICE = "Lower the learning rates or max_grad_norm, or check the environment's rewards and costs."
