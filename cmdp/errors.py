"""The one exception type for bad user input, in a module that imports nothing, so that the `cmdp` command can
refuse an unusable environment (e.g. a `MUJOCO_GL` value MuJoCo rejects at import) before gymnasium is imported."""


class ConfigError(ValueError):
    """Bad user input (config, CLI argument, data). The message names the offending field."""
