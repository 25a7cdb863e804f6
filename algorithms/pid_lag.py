"""PID Lagrangian PPO (Stooke, Achiam and Abbeel 2020, "Responsive Safety in Reinforcement Learning
by PID Lagrangian Methods"; OmniSafe's CPPOPID).

The policy side is PPO-Lagrangian's: the actor maximises the clipped surrogate of
(A_r - sum_k lambda_k A_c,k) / (1 + sum_k lambda_k). Only the multiplier differs: instead of
gradient ascent (an integral controller, which overshoots and makes the cost oscillate) each
lambda_k is the output of a PID controller on J_c,k - d_k (`cmdp.lagrange.PIDMultiplier`), updated
once per epoch before the policy update. Defaults follow OmniSafe's CPPOPID.yaml: kp 0.1, ki 0.01,
kd 0.01, derivative delay 10 epochs, EMA alphas 0.95, initial multiplier 0.001, no upper bound.
"""
from __future__ import annotations

from dataclasses import dataclass

from cmdp.algorithms.ppo_lag import PPOLag
from cmdp.config import ConfigError
from cmdp.lagrange import PIDMultiplier
from cmdp.registry import register_algorithm
from cmdp.solver import PolicyGradientConfig


@dataclass
class PIDLagConfig(PolicyGradientConfig):
    pid_kp: float = 0.1
    pid_ki: float = 0.01
    pid_kd: float = 0.01
    pid_d_delay: int = 10  # epochs between the smoothed costs whose rise the derivative term penalises
    pid_delta_p_ema_alpha: float = 0.95  # EMA of the error for the proportional term (0: no smoothing)
    pid_delta_d_ema_alpha: float = 0.95  # EMA of the cost for the derivative term (0: no smoothing)
    lagrangian_init: float = 0.001  # initial value of the integral term
    lagrangian_upper_bound: float | None = None

    def validate(self) -> None:
        super().validate()
        for name in ("pid_kp", "pid_ki", "pid_kd", "lagrangian_init"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.pid_d_delay < 1:
            raise ConfigError(f"pid_d_delay must be >= 1, got {self.pid_d_delay}")
        for name in ("pid_delta_p_ema_alpha", "pid_delta_d_ema_alpha"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.lagrangian_upper_bound is not None and self.lagrangian_upper_bound < 0:
            raise ConfigError(f"lagrangian_upper_bound must be >= 0, got {self.lagrangian_upper_bound}")


@register_algorithm("pid_lag")
class PIDLag(PPOLag):
    """PPO-Lagrangian with one PID-controlled multiplier per cost (PID Lagrangian, CPPOPID).

    Everything but the multiplier (advantage combination, logging, checkpoint state) is PPOLag's,
    which only needs `self.multiplier` to have `value`, `update`, `state_dict`, `load_state_dict`.
    """

    Config = PIDLagConfig

    def make_multiplier(self, cfg: PIDLagConfig) -> PIDMultiplier:
        return PIDMultiplier(self.spec.cost_limits, cfg.pid_kp, cfg.pid_ki, cfg.pid_kd, cfg.pid_d_delay,
                             cfg.pid_delta_p_ema_alpha, cfg.pid_delta_d_ema_alpha, cfg.lagrangian_init,
                             cfg.lagrangian_upper_bound)
