"""DeepSpeed (ZeRO stages 0-3) behind the solvers' `updater.step(actor_loss=..., critic_loss=...)`.

The actor and the critics each get an engine (they have separate parameters, learning rates and, under
ZeRO, separate partitions), and each part's loss goes through its own `engine.backward` / `engine.step`.
Gradient clipping is the engines' (`gradient_clipping` = `max_grad_norm`); the learning rate follows the
same per-epoch schedule as `TorchUpdater`.

One process (CPU or one GPU) needs no launcher: a single-rank process group is set up here (gloo on CPU,
nccl on GPU). Several GPUs: start `cmdp train` with the `deepspeed` launcher, which sets RANK/WORLD_SIZE.

Checkpoints hold the base optimisers' states (plain tensors, loadable with weights_only). With fp32
weights (CPU) that is the whole optimiser state, so a resumed run continues exactly; with bf16 the fp32
master copies are rebuilt from the bf16 weights on resume.
"""
from __future__ import annotations

import contextlib
import os
import socket
from typing import Any, Iterator

import torch

from cmdp.optim import linear_decay, trainable_parameters
from cmdp.spec import ConfigError


def init_single_process() -> None:
    """A one-rank process group for DeepSpeed when no launcher set one up."""
    import deepspeed
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return
    if "RANK" not in os.environ:
        os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"})
        if "MASTER_PORT" not in os.environ:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                os.environ["MASTER_PORT"] = str(s.getsockname()[1])
    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")


def deepspeed_config(options: dict[str, Any], max_grad_norm: float, bf16: bool) -> dict[str, Any]:
    """The engine config from `env_kwargs.deepspeed` ({stage, offload, config}); `config` is merged last."""
    stage = int(options.get("stage", 0))
    zero: dict[str, Any] = {"stage": stage}
    if options.get("offload"):
        if stage == 0:
            raise ConfigError("env_kwargs.deepspeed.offload needs ZeRO stage >= 1")
        zero["offload_optimizer"] = {"device": "cpu"}
        if stage == 3:
            zero["offload_param"] = {"device": "cpu"}
    config = {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1,
              "gradient_clipping": max_grad_norm, "zero_optimization": zero, "bf16": {"enabled": bool(bf16)},
              "steps_per_print": 10 ** 9, "wall_clock_breakdown": False}
    extra = options.get("config") or {}
    if not isinstance(extra, dict):
        raise ConfigError("env_kwargs.deepspeed.config must be a mapping of DeepSpeed config keys")
    config.update(extra)
    return config


class DeepSpeedUpdater:
    """DeepSpeed engines (actor, and critic unless the agent is critic-free) with the `TorchUpdater` interface."""

    def __init__(self, agent: torch.nn.Module, cfg: Any, num_epochs: int, options: dict[str, Any], bf16: bool) -> None:
        try:
            import deepspeed
        except ImportError as exc:
            raise ConfigError("env_kwargs.deepspeed needs DeepSpeed: pip install 'cmdp-lab[text]'") from exc
        init_single_process()
        self.stage = int(options.get("stage", 0))
        config = deepspeed_config(options, cfg.max_grad_norm, bf16)
        self.engines, self.optimizers, self.schedulers = {}, {}, {}
        parts = [("actor", agent.actor, cfg.actor_lr, 0.0, cfg.lr_decay)]
        if agent.critic is not None:
            parts.append(("critic", agent.critic, cfg.critic_lr, 2 * cfg.critic_l2, cfg.lr_decay and cfg.critic_lr_decay))
        for part, module, lr, decay, lr_decay in parts:
            params = trainable_parameters(module)
            optimizer = torch.optim.Adam(params, lr=lr, weight_decay=decay)
            engine, _, _, _ = deepspeed.initialize(model=module, optimizer=optimizer, config=dict(config))
            self.engines[part] = engine
            self.optimizers[part] = optimizer
            # the schedule moves per epoch (end_epoch), so it is not handed to the engine (which steps per minibatch)
            self.schedulers[part] = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_decay(num_epochs, lr_decay))

    def step(self, actor_loss: torch.Tensor | None = None, critic_loss: torch.Tensor | None = None) -> None:
        for part, loss in (("actor", actor_loss), ("critic", critic_loss)):
            if loss is not None:
                engine = self.engines[part]
                engine.backward(loss)
                engine.step()

    @property
    def actor_lr(self) -> float:
        return float(self.optimizers["actor"].param_groups[0]["lr"])

    @property
    def critic_lr(self) -> float:
        return float(self.optimizers["critic"].param_groups[0]["lr"]) if "critic" in self.optimizers else 0.0

    @property
    def epochs_done(self) -> int:
        return int(self.schedulers["actor"].last_epoch)

    def fused(self, losses: Any) -> Any:
        raise ConfigError("compile_update=true needs the torch updater; DeepSpeed steps its own engines")

    def end_epoch(self) -> dict[str, float]:
        for scheduler in self.schedulers.values():
            scheduler.step()
        return {}  # the engines clip internally and do not say how often

    @contextlib.contextmanager
    def gathered(self, module: torch.nn.Module, write: bool = False) -> Iterator[None]:
        """Full parameters of `module` inside the block (ZeRO-3 partitions them); a no-op below stage 3."""
        if self.stage < 3:
            yield
            return
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=0 if write else None):
            yield

    def state_dict(self) -> dict[str, Any]:
        """Per part: the engine optimiser's tensors and plain values (Adam moments, fp32 master partitions), and
        the schedule. DeepSpeed's bookkeeping objects are left out; `load_state_dict` takes them from the engine."""
        return {part: {"optimizer": _plain(self.engines[part].optimizer.state_dict()),
                       "scheduler": self.schedulers[part].state_dict()} for part in self.engines}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for part, engine in self.engines.items():
            optimizer = engine.optimizer
            merged = _overlay(optimizer.state_dict(), state[part]["optimizer"])
            if isinstance(optimizer, torch.optim.Optimizer) and type(optimizer).load_state_dict is \
                    torch.optim.Optimizer.load_state_dict:
                optimizer.load_state_dict(merged)  # stage 0: the client optimiser itself
            else:
                # ZeRO takes one state per rank; the saved fp32 master partitions also set the module's weights
                optimizer.load_state_dict([merged], load_from_fp32_weights=True)
            self.schedulers[part].load_state_dict(state[part]["scheduler"])


def _plain(value: Any, top: bool = True) -> Any:
    """What of `value` torch.load(weights_only=True) can read: at the top level the readable entries, below it
    a dict or list only when all of it is readable (so a partly readable structure is never half restored)."""
    if isinstance(value, dict):
        out = {k: _plain(v, top=False) for k, v in value.items() if isinstance(k, (str, int))}
        if any(v is _DROP for v in out.values()) or len(out) != len(value):
            if not top:
                return _DROP
            out = {k: v for k, v in out.items() if v is not _DROP}
        return out
    if isinstance(value, (list, tuple)):
        items = [_plain(v, top=False) for v in value]
        return _DROP if any(i is _DROP for i in items) else items
    if isinstance(value, torch.Tensor) or type(value) in (int, float, str, bool, type(None)):
        return value
    return _DROP


def _overlay(current: Any, saved: Any) -> Any:
    """`current` with every value present in `saved` replaced by the saved one (recursively for dicts)."""
    if isinstance(current, dict) and isinstance(saved, dict):
        out = dict(current)
        for k, v in saved.items():
            out[k] = _overlay(current[k], v) if k in current else v
        return out
    return saved


_DROP = object()
