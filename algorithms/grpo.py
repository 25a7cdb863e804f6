"""GRPO (Shao et al. 2024, "DeepSeekMath"): critic-free PPO whose advantages come from groups of responses to
the same prompt, the baseline that ignores the costs.

Every prompt is answered `group_size` times; each response's advantage is its return minus the group's mean,
divided by the group's standard deviation (`group_scale`; off: Dr. GRPO's unscaled form), and every token of the
response carries it (`cmdp.group`). The actor then takes PPO-clip steps on it. No value model is loaded: the
text family builds the agent without critics for a solver that declares `Critics.NONE`. The KL to the reference
policy is in the reward by default, as for every text solver of ours (`env_kwargs.kl_coeff`); GRPO's own form puts
it in the loss, beta * KL(pi || pi_ref) per token with the "k3" estimator (`kl_loss_coeff`, `cmdp.group.ReferenceKLInLoss`;
DeepSeekMath uses beta 0.04 with no KL in the reward: set `env_kwargs.kl_coeff: 0`). Defaults are the text family's
(group_size 4, KL 0.01 in the reward, none in the loss).
"""
from __future__ import annotations

from cmdp.family import Critics, Schedule
from cmdp.group import GroupConfig, ReferenceKLInLoss
from cmdp.registry import register_algorithm
from cmdp.solver import PolicyGradientSolver


@register_algorithm("grpo", constrained=False)
class GRPO(ReferenceKLInLoss, PolicyGradientSolver):
    """Critic-free PPO on group-normalised rewards (GRPO): costs measured, not optimised."""

    Config = GroupConfig
    schedule = Schedule.GROUP
    critics = Critics.NONE
