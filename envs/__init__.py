"""Built-in environments; importing this package registers each of them by name."""
from envs import safety_gym  # noqa: F401
from envs import exact  # noqa: F401  (registers the exact CMDPs)
from envs import text_registration  # noqa: F401  (registers `text`; loads transformers only when used)
