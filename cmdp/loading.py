"""Open a run folder: its resolved config, and its saved policy ready to evaluate.

    from cmdp import load_policy

    policy = load_policy("runs/my-run")              # the policy of the last checkpoint, as it was trained
    print(policy.evaluate(episodes=20, seed=0))      # mean return and costs over fresh episodes
    policy.close()

A policy that is a distribution (`policy.stochastic`: PPO's Gaussian, SAC's) is measured by sampling it unless
`deterministic=True` asks for its mean or most likely action; a DDPG or TD3 actor is deterministic, and is measured
without the exploration noise it trained with whichever is asked (as OmniSafe's evaluator does).

A run folder names the plugins it was trained with in its config.yaml, and loading it imports them (they
register the run's solver or environment). Code from a folder someone else made is not run without consent:
`trust_plugins=True` (`--trust-plugins` on the command line), or the same plugins given by the caller.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from cmdp.checkpoint import load_checkpoint
from cmdp.config import RESTORE_RUN_FILE, check_seed, field_names, load_yaml, to_dict
from cmdp.family import FamilyRun, SolverNeeds
from cmdp.networks import Actor
from cmdp.registry import get_algorithm, get_env, plugin_path
from cmdp.resolve import resolve_config
from cmdp.spec import CMDPSpec, ConfigError

CHECKPOINT = "checkpoints/last.pt"

#: Keys added to cmdp-lab after runs were made with it, each with the value that gives what runs made before it did.
#: A run folder whose config.yaml does not name such a key is opened with that value, not today's default, so that
#: `--resume` continues it as it began. (Other keys a config.yaml lacks take today's defaults: `defaults_since`.)
EARLIER_BEHAVIOUR: dict[str, Any] = {
    "lagrangian_steps": "epoch",  # 2026-12-05: the off-policy *_lag multipliers had moved once per epoch
    "network_init": "orthogonal",  # 2026-12-04 (on-policy) and 2026-12-05 (off-policy): orthogonal before
}


#: Keys the config.yaml of every run folder names, whichever cmdp-lab version made it (they define the run).
RUN_CONFIG_KEYS = ("algo", "env", "seed", "total_steps", "steps_per_epoch")


def check_plugins_trusted(run_dir: Path, values: dict[str, Any], trust_plugins: bool,
                          given_plugins: list[str] | None) -> None:
    """ConfigError unless the run's plugins may be imported: `trust_plugins`, or all of them given by the user."""
    named = values.get("plugins") or []
    if not isinstance(named, list) or not all(isinstance(p, str) for p in named):
        raise ConfigError(f"{run_dir / 'config.yaml'}: plugins must be a list of module names or .py files")
    given = {plugin_path(p) for p in (given_plugins or [])}
    untrusted = [p for p in named if plugin_path(p) not in given]
    if untrusted and not trust_plugins:
        raise ConfigError(f"{run_dir} names plugin code that loading it would run: {', '.join(untrusted)}; "
                          "pass --trust-plugins if you trust it (or --plugin with the same files)")


#: What a run keeps at each of these paths of its folder: a file or a folder.
RUN_PATH_KINDS: dict[str, str] = {"checkpoints": "folder", CHECKPOINT: "file", "progress.csv": "file",
                                  "summary.json": "file", "tb": "folder"}


def check_run_paths(run_dir: Path, names: Sequence[str], kinds: Mapping[str, str] = RUN_PATH_KINDS,
                    keeper: str = "a run", fix: str = RESTORE_RUN_FILE) -> None:
    """ConfigError in one line when one of the paths `names` of the folder `run_dir` holds a folder where `keeper`
    keeps a file, or the other way round (`kinds`: name -> "file" or "folder"; a run's by default): reading or
    writing it would end in a traceback. The message ends with `fix`. The one check of a run folder's paths and of a
    benchmark folder's (`cmdp.benchmarks.runner`)."""
    for name in names:
        where, kind = run_dir / name, kinds[name]
        if where.exists() and where.is_dir() != (kind == "folder"):
            found = "folder" if where.is_dir() else "file"
            raise ConfigError(f"{where} is a {found} where {keeper} keeps a {kind}; {fix}")


def open_run(run_dir: str | Path, need_checkpoint: bool = True, trust_plugins: bool = False,
             given_plugins: list[str] | None = None) -> tuple[Any, Path]:
    """Read a run folder's resolved config; ConfigError if the folder is not a run or names untrusted plugins.

    A run interrupted before its first checkpoint has a config but no checkpoint: it can be resumed
    (from scratch) but not evaluated.
    """
    path = Path(run_dir)
    if not path.is_dir() or not (path / "config.yaml").is_file():
        raise ConfigError(f"{path} is not a run folder (no config.yaml in it)")
    checkpoint = path / CHECKPOINT
    # something else where the checkpoint belongs: a resume would otherwise start over, drop the progress log's
    # rows and fail at its first save; an evaluation would say the run has no checkpoint yet
    check_run_paths(path, ("checkpoints", CHECKPOINT))
    if need_checkpoint and not checkpoint.is_file():
        raise ConfigError(f"{path} has no checkpoint yet ({CHECKPOINT}): a run saves its first after "
                          f"checkpoint_every epochs (one stopped before that continues with cmdp train --resume {path})")
    values = load_yaml(path / "config.yaml")
    # every version's config.yaml names these; without them today's defaults would stand in (an emptied file
    # opened as ppo_lag on SafetyPointGoal1-v0, and failed on the checkpoint's weights)
    missing = [key for key in RUN_CONFIG_KEYS if key not in values]
    if missing:
        raise ConfigError(f"{path / 'config.yaml'} is not a whole run config (it does not name {', '.join(missing)}); "
                          f"{RESTORE_RUN_FILE}")
    check_plugins_trusted(path, values, trust_plugins, given_plugins)
    source = str(path / "config.yaml")
    cfg, _ = resolve_config(values, source=source)
    earlier = {key: value for key, value in EARLIER_BEHAVIOUR.items()
               if key not in values and key in field_names(type(cfg))}
    if earlier:  # a run begun before these keys existed continues as it began
        cfg, _ = resolve_config({**values, **earlier}, source=source)
    return cfg, path


def defaults_since(run_dir: Path, cfg: Any) -> dict[str, Any]:
    """The keys of `cfg`, the run's config as `open_run` resolves it, that the run folder's config.yaml does not
    name, with the values they took: keys added to cmdp-lab after the run began, at today's defaults (those of
    `EARLIER_BEHAVIOUR` take what runs before them did, and are not listed). A run's
    config.yaml names every key its version had, so a resumed run continues as it began only where these are
    what that version did."""
    saved = load_yaml(Path(run_dir) / "config.yaml")
    return {key: value for key, value in to_dict(cfg).items() if key not in saved and key not in EARLIER_BEHAVIOUR}


#: Keys that do not change what an evaluation measures: how long and how often the run trained and saved, its CPU
#: threads, and the copies and steps per epoch that load_policy sets itself. A config.yaml edited there (total_steps
#: raised to continue the run) is no edit to the evaluated policy.
NOT_EVALUATED: tuple[str, ...] = ("total_steps", "checkpoint_every", "torch_threads", "num_envs", "steps_per_epoch")

#: Keys a resumed run may change without changing how it trains: how long it runs, how often it saves, its CPU
#: threads (raising total_steps in config.yaml is how a run is continued).
NOT_TRAINED: tuple[str, ...] = ("total_steps", "checkpoint_every", "torch_threads")


def config_edits(cfg: Any, state: dict[str, Any],
                 ignore: Sequence[str] = NOT_EVALUATED) -> dict[str, tuple[Any, Any]]:
    """The settings in which `cfg`, a run's config as `open_run` reads it from config.yaml, differs from the config
    its checkpoint `state` was trained with: {key: (trained, now)}, a mapping's keys as `env_kwargs.name`. Keys of
    `ignore` (an evaluation's NOT_EVALUATED, a resume's NOT_TRAINED), and keys only one side has (one cmdp-lab
    version added or dropped them: `defaults_since`), are left out; a checkpoint written before checkpoints held the
    config gives {}."""
    trained = state.get("config")
    if not isinstance(trained, dict):
        return {}
    edits: dict[str, tuple[Any, Any]] = {}

    def compare(key: str, was: Any, now: Any) -> None:
        if isinstance(was, dict) and isinstance(now, dict):
            for name in dict.fromkeys([*was, *now]):
                compare(f"{key}.{name}", was.get(name), now.get(name))
        elif was != now:
            edits[key] = (was, now)

    for key, now in to_dict(cfg).items():
        if key in trained and key not in ignore:
            compare(key, trained[key], now)
    return edits


def config_edits_note(run_dir: Path, edits: dict[str, tuple[Any, Any]], follower: str = "the evaluation") -> str:
    """One line telling that `follower` (the evaluation, the resumed run) follows a config.yaml edited after
    training."""
    return (f"note: {run_dir / 'config.yaml'} was edited after its checkpoint was trained: "
            f"{config_edits_text(edits)}; {follower} follows config.yaml")


def config_edits_text(edits: dict[str, tuple[Any, Any]]) -> str:
    """`config_edits`'s result in words: "actor_lr (trained 0.0003, now 0.001), ..."."""
    return ", ".join(f"{key} (trained {was!r}, now {now!r})" for key, (was, now) in edits.items())


@dataclass
class LoadedPolicy:
    """A run's saved policy inside its family's environment side, ready to evaluate (nothing is trained)."""

    cfg: Any  # the run's resolved config
    run: FamilyRun  # spec, agent, evaluation; `run.agent.actor` is the policy
    epoch: int  # epochs trained when the checkpoint was written
    run_dir: Path
    #: settings config.yaml changed after the checkpoint was trained, {key: (trained, now)}: `config_edits`
    config_edits: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def spec(self) -> CMDPSpec:
        return self.run.spec

    @property
    def stochastic(self) -> bool:
        """Whether the trained policy is a distribution its actions are drawn from (`cmdp.networks.Actor.stochastic`),
        so that sampling it and taking its mean or most likely action measure two policies. False for a DDPG or TD3
        actor: its Gaussian noise only explored in training, and it is evaluated without it."""
        actor = self.run.agent.actor
        # cmdp's actors (the text family's too) declare it; another family's policy that does not is taken as drawn
        return actor.stochastic if isinstance(actor, Actor) else True

    def acts_deterministically(self, deterministic: bool) -> bool:
        """Whether an evaluation asked for `deterministic` or not takes each action without drawing it: when asked,
        and always for a deterministic policy (`stochastic` is False)."""
        return deterministic or not self.stochastic

    def action_description(self, deterministic: bool) -> str:
        """What an evaluation asked for `deterministic` or not measures, in words (`cmdp eval`'s first line)."""
        if not self.stochastic:
            return "deterministic: the trained actor's action, without its exploration noise"
        if deterministic:
            return "deterministic: the mean or most likely action"
        return "stochastic: actions sampled from the trained policy"

    def evaluate(self, episodes: int = 10, seed: int = 12345, deterministic: bool = False) -> dict[str, Any]:
        """Fresh episodes (text: prompts) with the saved policy as it was trained: sampled actions (a constrained
        optimum is stochastic) unless `deterministic` (the mean or most likely action); a deterministic policy's
        own action either way (`stochastic`). The result's "deterministic" says which was measured."""
        if episodes < 1:
            raise ConfigError(f"episodes must be >= 1, got {episodes}")
        check_seed("the evaluation seed", seed)
        deterministic = self.acts_deterministically(deterministic)
        result = self.run.evaluate(episodes, seed, deterministic)
        result.update({"run_dir": str(self.run_dir), "epoch": self.epoch, "deterministic": deterministic})
        if self.config_edits:  # the record says what it measured: not quite the trained run
            result["config_edits"] = {key: {"trained": was, "now": now}
                                      for key, (was, now) in self.config_edits.items()}
        return result

    def close(self) -> None:
        self.run.close()

    def __enter__(self) -> "LoadedPolicy":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


#: what a checkpoint whose weights do not fit the run's networks raises while they are loaded
CHECKPOINT_MISMATCH = (KeyError, RuntimeError, TypeError, ValueError, AttributeError, IndexError)


def checkpoint_mismatch(run_dir: Path, exc: Exception,
                        edits: dict[str, tuple[Any, Any]] | None = None) -> ConfigError:
    """The one-line error for a checkpoint whose contents do not fit the run's config; `edits`, the settings of
    config.yaml edited since the checkpoint was trained (`config_edits`), are named: the likely cause."""
    lines = str(exc).splitlines()
    edited = (f", which was edited after the checkpoint was trained: {config_edits_text(edits)}; undo the edits, or "
              f"train a new run with them" if edits else "")
    return ConfigError(f"{run_dir / CHECKPOINT} does not match the run's config{edited} ({type(exc).__name__}: "
                       f"{lines[0] if lines else ''})")


def load_policy(run_dir: str | Path, num_envs: int = 1, trust_plugins: bool = False,
                plugins: list[str] | None = None) -> LoadedPolicy:
    """Load the policy of a run folder's last checkpoint for evaluation.

    `num_envs`: environment copies for evaluation (control families). `trust_plugins` / `plugins`: see the
    module docstring. Raises ConfigError (one line) for anything wrong with the folder or its checkpoint.

    The run is built from its config.yaml as it is now, as `--resume` builds it: a setting edited there since the
    checkpoint was trained (an environment's keyword, the cost limits, a device or model path moved with the run
    folder) is evaluated as edited, and listed in the result's `config_edits` (`cmdp eval` prints it as a note).
    """
    if num_envs < 1:
        raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
    cfg, path = open_run(run_dir, trust_plugins=trust_plugins, given_plugins=plugins)
    # memory-mapped: only the weights are read, not an off-policy run's replay buffer (gigabytes on Humanoid)
    state = load_checkpoint(path / CHECKPOINT, mmap=True)
    edits = config_edits(cfg, state)
    cfg = replace(cfg, num_envs=num_envs, steps_per_epoch=num_envs)
    solver_cls = get_algorithm(cfg.algo)
    run = get_env(cfg.env).family.build(cfg, SolverNeeds.of(solver_cls), training=False)
    try:
        run.agent.load_state_dict(state["agent"])
        run.load_state_dict(state["family"])
        run.agent.eval()
        epoch = int(state["epoch"])
    except CHECKPOINT_MISMATCH as exc:
        run.close()
        raise checkpoint_mismatch(path, exc, edits) from None
    return LoadedPolicy(cfg, run, epoch, path, edits)


__all__ = ["LoadedPolicy", "load_policy", "open_run", "checkpoint_mismatch", "config_edits", "config_edits_text",
           "CHECKPOINT", "CHECKPOINT_MISMATCH"]
