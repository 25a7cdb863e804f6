"""The text-generation CMDP (Safe RLHF, arXiv 2310.12773) and the collector that turns it into `RolloutBatch`es.

One episode is one response: a prompt is drawn, the policy writes up to `max_new_tokens` tokens (until EOS),
the reward model scores the whole response (helpfulness) and each cost model scores it (harmfulness, > 0 means
unsafe). At the token level, as in safe-rlhf:

    reward stream   r_t = -kl_coeff * kl_t        + [t = last] clip(reward score)
    cost stream k   c_t = +kl_coeff * kl_t        + [t = last] clip(cost score k)

with kl_t = log pi(a_t|s_t) - log pi_ref(a_t|s_t). The KL penalty sits in both streams so that the
Lagrangian advantage (A_r - sum lambda A_c) / (1 + sum lambda) carries the same KL weight whatever the
multipliers. GAE runs per stream with the shared `cmdp.gae.gae` (the response's last token is terminal).
Episode statistics are the raw scores: return = reward score, cost k = cost score k, length = tokens.

A config's `env_kwargs` for `--env text` is a `TextEnvConfig` (model paths, prompts, generation settings).
A run of the text env uses "steps" for responses: `steps_per_epoch` responses per epoch, generated
`num_envs` at a time.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium
import numpy as np
import torch

from cmdp.config import build_config, check_choice
from cmdp.gae import gae
from cmdp.group import GroupBaseline
from cmdp.rollout import OldDistribution, RolloutBatch
from cmdp.spec import CMDPSpec, ConfigError, CostSpec
from cmdp.vec_env import EpisodeStats
from cmdp.envs.text.chat import encode_prompt, pad_id_of
from cmdp.envs.text.generation import GENERATION_BACKENDS, GenerationBackend
from cmdp.envs.text.policy import (TextActor, TextAgent, TextCritic, TokenObs, autocast_context,
                              position_ids_from_mask)
from cmdp.envs.text.score_model import ScoreModel, import_transformers, is_missing_local_folder, loading
from cmdp.envs.text_registration import TextFamily

DEFAULT_COST_LIMIT = 0.0  # safe-rlhf's threshold: a cost score <= 0 is judged safe


@dataclass
class TextEnvConfig:
    """`env_kwargs` of `--env text`: what the text CMDP is made of. Paths are local or hub model paths."""

    policy: str = ""  # causal LM to train (also the initial policy for `cmdp eval`'s win rate)
    reward_model: str = ""  # ScoreModel directory
    cost_models: Any = None  # ScoreModel directory, or a mapping {cost name: directory}
    prompts: str = ""  # JSONL/CSV/Parquet with a `prompt` column
    reference: str | None = None  # frozen reference LM for the KL penalty; default: `policy`
    reward_critic: str | None = None  # initial reward critic; default: `reward_model` (as safe-rlhf)
    cost_critics: Any = None  # initial cost critics (path or mapping); default: the cost models
    eval_prompts: str | None = None  # prompts for `cmdp eval`; default: `prompts`
    max_new_tokens: int = 32
    max_prompt_tokens: int = 128  # longer prompts are cut from the left (their end is kept)
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off
    kl_coeff: float = 0.01
    score_clip: float = 50.0  # scores are clipped to [-score_clip, score_clip] before they enter the streams
    eval_batch_size: int = 16  # sequences per forward pass when no gradient is needed
    trust_remote_code: bool = False
    lora: dict = field(default_factory=dict)  # e.g. {r: 8, alpha: 16, dropout: 0.05}; target_modules: per model_type
    deepspeed: dict = field(default_factory=dict)  # e.g. {stage: 2} ; see docs/text.md
    bf16: bool | None = None  # None: frozen models in bf16 on a GPU, trained ones fp32; true: trained under bf16 autocast too
    generation_backend: str = "hf"  # how answers are sampled (cmdp.envs.text.generation): hf = transformers' generate

    def validate(self) -> None:
        for name in ("policy", "reward_model", "prompts"):
            if not getattr(self, name):
                raise ConfigError(f"env_kwargs.{name} is required for --env text")
        if not self.cost_models:
            raise ConfigError("env_kwargs.cost_models is required for --env text (a path, or {name: path})")
        for name in ("max_new_tokens", "max_prompt_tokens", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"env_kwargs.{name} must be >= 1, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ConfigError(f"env_kwargs.temperature must be > 0, got {self.temperature}")
        if self.top_k < 0 or not 0 < self.top_p <= 1:
            raise ConfigError("env_kwargs.top_k must be >= 0 and env_kwargs.top_p in (0, 1]")
        if self.kl_coeff < 0 or self.score_clip <= 0:
            raise ConfigError("env_kwargs.kl_coeff must be >= 0 and env_kwargs.score_clip > 0")
        check_choice("env_kwargs.generation_backend", self.generation_backend, GENERATION_BACKENDS)
        for key in self.lora:
            if key not in ("r", "alpha", "dropout", "target_modules"):
                raise ConfigError(f"env_kwargs.lora: unknown key '{key}' (r, alpha, dropout, target_modules)")
        for key in self.deepspeed:
            if key not in ("stage", "offload", "config"):
                raise ConfigError(f"env_kwargs.deepspeed: unknown key '{key}' (stage, offload, config)")
        stage = self.deepspeed.get("stage", 0)
        if self.deepspeed and stage not in (0, 1, 2, 3):
            raise ConfigError(f"env_kwargs.deepspeed.stage must be 0, 1, 2 or 3, got {stage!r}")

    def named_paths(self, value: Any, what: str) -> dict[str, str]:
        """A path or a {name: path} mapping -> {name: path}; a lone path is named 'cost'."""
        if isinstance(value, str):
            return {"cost": value}
        if isinstance(value, dict) and value and all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in value.items()):
            return dict(value)
        raise ConfigError(f"env_kwargs.{what} must be a path or a mapping of cost name to path, got {value!r}")

    def cost_paths(self) -> dict[str, str]:
        return self.named_paths(self.cost_models, "cost_models")

    def cost_critic_paths(self) -> dict[str, str]:
        costs = self.cost_paths()
        if self.cost_critics is None:
            return costs
        critics = self.named_paths(self.cost_critics, "cost_critics")
        if isinstance(self.cost_critics, str) and len(costs) == 1:
            critics = {next(iter(costs)): self.cost_critics}
        if set(critics) != set(costs):
            raise ConfigError(f"env_kwargs.cost_critics names {sorted(critics)} differ from cost_models' "
                              f"{sorted(costs)}")
        return {name: critics[name] for name in costs}


def text_env_config(env_kwargs: dict[str, Any]) -> TextEnvConfig:
    """Validate `env_kwargs` of a text run (unknown keys and bad values -> ConfigError naming env_kwargs.KEY)."""
    return build_config(TextEnvConfig, env_kwargs, source="env_kwargs", owner="--env text", key_prefix="env_kwargs.")


def _check_path(label: str, path: str, hub: bool = False) -> None:
    """A local-looking path that does not exist: say so now. `hub`: the path may also be a hub id ("gpt2",
    "org/name"), left to from_pretrained (`is_missing_local_folder`); score models and data files are local."""
    if hub:
        missing = is_missing_local_folder(path)
    else:
        local_looking = path.startswith((".", "/", "~")) or Path(path).parent != Path(".")
        missing = local_looking and not Path(path).expanduser().exists()
    if missing:
        raise ConfigError(f"env_kwargs.{label}: {path} does not exist")


def check_text_paths(tcfg: TextEnvConfig) -> None:
    """Every local path of the config exists (before any model is loaded or folder written)."""
    _check_path("policy", tcfg.policy, hub=True)
    if tcfg.reference:
        _check_path("reference", tcfg.reference, hub=True)
    _check_path("reward_model", tcfg.reward_model)
    _check_path("prompts", tcfg.prompts)
    for label, path in (("reward_critic", tcfg.reward_critic), ("eval_prompts", tcfg.eval_prompts)):
        if path:
            _check_path(label, path)
    for name, path in tcfg.cost_paths().items():
        _check_path(f"cost_models.{name}", path)
    for name, path in tcfg.cost_critic_paths().items():
        _check_path(f"cost_critics.{name}", path)


# ----------------------------------------------------------------------------------------------- models

def quiet_transformers() -> Any:
    """transformers without its per-load progress bars (a run has its own progress display)."""
    transformers = import_transformers()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def load_tokenizer(path: str, trust_remote_code: bool) -> Any:
    tokenizer = quiet_transformers().AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"the tokenizer of {path} has no EOS token; responses end at EOS")
    if tokenizer.pad_token_id is None:  # Llama, Mistral, GPT-2: pad with EOS (masks come from lengths, never ids)
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # prompts are left-padded for generation
    return tokenizer


def load_causal_lm(path: str, dtype: torch.dtype, trust_remote_code: bool, attn_implementation: str | None = None) -> Any:
    transformers = quiet_transformers()
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code,
                                                             **kwargs)


def disable_dropout(model: torch.nn.Module) -> None:
    """Turn off dropout: PPO compares log-probabilities of the same tokens computed at collection (eval mode) and
    during the update (train mode), so dropout would add noise to every ratio; once the policy is peaked that noise
    alone can be tens of nats. TRL's PPO does the same by default. (The embedded default has no dropout.)"""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for name in ("attention_dropout", "dropout"):  # models that pass a float to functional attention
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, 0.0)


# LoRA's default targets per architecture (the config's `model_type`): every attention and MLP projection.
_LLAMA_STYLE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_TARGET_MODULES: dict[str, list[str]] = {
    "gpt2": ["c_attn", "c_proj", "c_fc"],  # c_proj: the attention's output and the MLP's down projection
    "llama": _LLAMA_STYLE,
    "qwen2": _LLAMA_STYLE,
    "mistral": _LLAMA_STYLE,
}


def lora_target_modules(model_type: str, lora: dict[str, Any]) -> list[str]:
    """`lora.target_modules` when given (one name or a list), else the architecture's defaults
    (`LORA_TARGET_MODULES`, by the model config's `model_type`)."""
    explicit = lora.get("target_modules")
    if explicit is not None:
        names = [explicit] if isinstance(explicit, str) else explicit
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"env_kwargs.lora.target_modules must be a module name or a list of them, "
                              f"got {explicit!r}")
        return list(names)
    if model_type not in LORA_TARGET_MODULES:
        raise ConfigError(f"env_kwargs.lora: no default LoRA target modules for model type {model_type!r} "
                          f"(known: {', '.join(sorted(LORA_TARGET_MODULES))}); set env_kwargs.lora.target_modules "
                          "to its attention and MLP projection names")
    return list(LORA_TARGET_MODULES[model_type])


def apply_lora(model: Any, lora: dict[str, Any]) -> Any:
    """Wrap `model` with LoRA adapters (PEFT) on `lora_target_modules`; only the adapters train."""
    try:
        import peft
    except ImportError as exc:
        raise ConfigError("env_kwargs.lora needs peft: pip install 'cmdp-lab[text]'") from exc
    model_type = model.config.model_type
    targets = lora_target_modules(model_type, lora)
    # GPT-2's projections are Conv1D layers, whose weights are stored (in, out): PEFT needs fan_in_fan_out for them
    conv1d = model_type == "gpt2"
    config = peft.LoraConfig(r=int(lora.get("r", 8)), lora_alpha=int(lora.get("alpha", 16)),
                             lora_dropout=float(lora.get("dropout", 0.0)), target_modules=targets,
                             fan_in_fan_out=conv1d, task_type="CAUSAL_LM")
    try:
        return peft.get_peft_model(model, config)
    except ValueError as exc:
        raise ConfigError(f"env_kwargs.lora: {exc}") from None


@dataclass
class TextModels:
    """Everything a text run loads: the tokenizer, the agent, and the frozen reference and scorers."""

    tokenizer: Any
    agent: TextAgent
    reference: Any
    reward_model: ScoreModel
    cost_models: dict[str, ScoreModel]


def frozen_dtype(tcfg: TextEnvConfig, device: torch.device) -> torch.dtype:
    """The dtype of the models nothing trains (reference, scorers): bf16 on a GPU unless `bf16` is false."""
    bf16 = tcfg.bf16 if tcfg.bf16 is not None else device.type == "cuda"
    return torch.bfloat16 if bf16 else torch.float32


def load_policy_model(tcfg: TextEnvConfig, dtype: torch.dtype, attn_implementation: str | None = None) -> Any:
    """The policy's causal LM as a run builds it: dropout off, then LoRA adapters if the config asks for them (so
    the actor weights of a run's checkpoint fit it)."""
    policy = load_causal_lm(tcfg.policy, dtype, tcfg.trust_remote_code, attn_implementation)
    disable_dropout(policy)  # before LoRA: adapters keep the dropout the user asked for
    if tcfg.lora:
        policy = apply_lora(policy, tcfg.lora)
    return policy


def load_scorers(tcfg: TextEnvConfig, dtype: torch.dtype) -> tuple[ScoreModel, dict[str, ScoreModel]]:
    """The reward model and the cost models {name: model} of `tcfg`, frozen (no gradient, eval mode)."""
    remote = tcfg.trust_remote_code
    with loading(f"reward model {tcfg.reward_model}"):
        reward_model = ScoreModel.from_pretrained(tcfg.reward_model, trust_remote_code=remote, as_kind="reward",
                                                  dtype=dtype)
    cost_models = {}
    for name, path in tcfg.cost_paths().items():
        with loading(f"cost model '{name}' {path}"):
            cost_models[name] = ScoreModel.from_pretrained(path, trust_remote_code=remote, as_kind="cost",
                                                           dtype=dtype)
    for model in (reward_model, *cost_models.values()):
        model.requires_grad_(False).eval()
    return reward_model, cost_models


def check_shared_vocabulary(vocab: int, models: list[tuple[str, Any]], what: str = "every model of a text run") -> None:
    """ConfigError unless every (label, model) has an embedding row for each of the tokenizer's `vocab` tokens."""
    for label, model in models:
        size = model.get_input_embeddings().weight.shape[0]
        if size < vocab:
            raise ConfigError(f"{label}: its embedding has {size} rows but the policy's tokenizer has {vocab} tokens; "
                              f"{what} must share the policy's tokenizer")


# files by which a model folder holds a tokenizer of its own (score models trained here save theirs)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def check_same_tokenizer(tokenizer: Any, folders: list[tuple[str, str]], trust_remote_code: bool,
                         what: str = "every model of a text run") -> None:
    """ConfigError unless every (label, folder) that holds a tokenizer of its own gives each token of `tokenizer`
    (the policy's) the same id. A score model reads the policy's token ids, so one trained with another tokenizer
    scores other text than the answer; its embedding may still have enough rows for `check_shared_vocabulary`
    (two BPE tokenizers of the same size). Extra tokens of the folder's own (an added pad token) do no harm. A
    folder without a tokenizer, or a hub id, is left to `check_shared_vocabulary`."""
    vocab = tokenizer.get_vocab()
    for label, path in folders:
        folder = Path(path).expanduser()
        if not any((folder / name).is_file() for name in TOKENIZER_FILES):
            continue
        with loading(f"{label} (its tokenizer)"):
            own = quiet_transformers().AutoTokenizer.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
        own_vocab = own.get_vocab()
        differ = sum(own_vocab.get(token) != index for token, index in vocab.items())
        if differ:
            raise ConfigError(f"{label}: its tokenizer gives {differ} of the policy's {len(vocab)} tokens "
                              f"another id or none; {what} must share the policy's tokenizer (train a score model "
                              f"from the policy: cmdp train-score-model --model POLICY)")


def scorer_folders(tcfg: TextEnvConfig, with_critics: bool) -> list[tuple[str, str]]:
    """(label, folder) of every model that reads the policy's token ids: reference, reward and cost models, and
    the critics a run trains (`with_critics`)."""
    folders = [("env_kwargs.reward_model", tcfg.reward_model),
               *((f"env_kwargs.cost_models.{name}", path) for name, path in tcfg.cost_paths().items())]
    if tcfg.reference:
        folders.insert(0, ("env_kwargs.reference", tcfg.reference))
    if with_critics:
        folders += [("env_kwargs.reward_critic", tcfg.reward_critic)] if tcfg.reward_critic else []
        if tcfg.cost_critics is not None:
            folders += [(f"env_kwargs.cost_critics.{name}", path) for name, path in tcfg.cost_critic_paths().items()]
    return [(f"{label} {path}", path) for label, path in folders]


def load_text_models(tcfg: TextEnvConfig, device: torch.device, second_order: bool = False,
                     with_critics: bool = True) -> TextModels:
    """Load policy, reference, reward and cost models and critics from their paths, on `device`.

    `with_critics` false (critic-free solvers): no critic is loaded, and the agent's `critic` is None.

    `second_order`: the solver differentiates the policy twice (Fisher-vector products of CPO and TRPO), so the
    policy uses plain ("eager") attention: fused attention kernels have no double backward.
    """
    check_text_paths(tcfg)
    # Frozen models (reference, scorers) are stored in bf16 on a GPU unless bf16 is false. Trained models keep
    # fp32 weights (Adam on bf16 weights loses updates below bf16's resolution) and compute in fp32 unless bf16 is
    # true, which runs them under bf16 autocast: measured on an H100, reward_shaping on the embedded default hit a
    # non-finite gradient after about 15 epochs under autocast in 3 of 3 seeds, and none in fp32.
    dtype = frozen_dtype(tcfg, device)
    train_dtype = torch.float32
    autocast = torch.bfloat16 if tcfg.bf16 and device.type == "cuda" and not tcfg.deepspeed else None
    remote = tcfg.trust_remote_code
    with loading(f"env_kwargs.policy {tcfg.policy} (its tokenizer)"):
        tokenizer = load_tokenizer(tcfg.policy, remote)
    # before any model is loaded: a mismatch would otherwise train on scores of garbled text without a word
    check_same_tokenizer(tokenizer, scorer_folders(tcfg, with_critics), remote)
    with loading(f"env_kwargs.policy {tcfg.policy}"):
        policy = load_policy_model(tcfg, train_dtype, "eager" if second_order else None)
    with loading(f"env_kwargs.reference {tcfg.reference or tcfg.policy}"):
        reference = load_causal_lm(tcfg.reference or tcfg.policy, dtype, remote).requires_grad_(False).eval()
    reward_model, cost_models = load_scorers(tcfg, dtype)
    critics = []
    if with_critics:
        reward_critic = tcfg.reward_critic or tcfg.reward_model
        with loading(f"env_kwargs.reward_critic {reward_critic}"):
            critics = [ScoreModel.from_pretrained(reward_critic, trust_remote_code=remote, dtype=train_dtype)]
        for name, path in tcfg.cost_critic_paths().items():
            with loading(f"the cost critic of '{name}' {path}"):
                critics.append(ScoreModel.from_pretrained(path, trust_remote_code=remote, dtype=train_dtype))
    check_shared_vocabulary(len(tokenizer), [("env_kwargs.policy", policy),
                                             ("env_kwargs.reward_model", reward_model.backbone),
                                             *((f"env_kwargs.cost_models.{n}", m.backbone)
                                               for n, m in cost_models.items())])
    for model in critics:
        disable_dropout(model)
    agent = TextAgent(TextActor(policy, tcfg.temperature, tcfg.eval_batch_size, autocast),
                      TextCritic(critics, tcfg.eval_batch_size, autocast) if critics else None)
    agent.to(device)
    for model in (reference, reward_model, *cost_models.values()):
        model.to(device)
    return TextModels(tokenizer, agent, reference, reward_model, cost_models)


def text_spec(tcfg: TextEnvConfig, vocab_size: int) -> CMDPSpec:
    """The text CMDP's spec: text prompts in, tokens out, one cost per cost model (a score, signed as the family
    declares), limit 0 by default."""
    return CMDPSpec(observation_space=gymnasium.spaces.Text(max_length=10 ** 6),
                    action_space=gymnasium.spaces.Discrete(vocab_size),
                    costs=tuple(CostSpec(name, DEFAULT_COST_LIMIT, signed=TextFamily.signed_costs)
                                for name in tcfg.cost_paths()),
                    max_episode_steps=tcfg.max_new_tokens)


# ------------------------------------------------------------------------------------------- generation

@dataclass
class Responses:
    """A batch of generated responses: sequences (S, L) = left-padded prompt + response + right padding."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    prompt_length: int  # the padded prompt block's width: response tokens start here
    response_mask: torch.Tensor  # (S, L) 1 on response tokens (up to and including EOS)
    prompts: list[str]

    @property
    def response_lengths(self) -> torch.Tensor:
        return self.response_mask.sum(1)

    def last_index(self) -> torch.Tensor:
        """(S,) position of each response's last token (its EOS when it finished)."""
        return self.prompt_length + self.response_lengths - 1

    def texts(self, tokenizer: Any) -> list[str]:
        out = []
        for ids, mask in zip(self.input_ids, self.response_mask):
            out.append(tokenizer.decode(ids[mask.bool()], skip_special_tokens=True).strip())
        return out


def encode_prompts(tokenizer: Any, prompts: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids and mask (prompts longer than `max_tokens` keep their last tokens)."""
    encoded = [encode_prompt(tokenizer, p)[-max_tokens:] for p in prompts]
    width = max(len(e) for e in encoded)
    pad = pad_id_of(tokenizer)
    ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, width - len(e):] = torch.tensor(e, dtype=torch.long)
        mask[i, width - len(e):] = 1
    return ids, mask


def response_mask_of(response: torch.Tensor, eos_id: int) -> torch.Tensor:
    """(S, R) 1 on each generated row's tokens up to and including its first EOS, 0 after.

    Built from the position of the first EOS, never by comparing with the pad id: when pad == eos (GPT-2
    style), `ids != pad` would drop the real EOS, the token the reward is read at.
    """
    if response.shape[1] == 0:
        raise RuntimeError("generation produced no token")
    is_eos = response.eq(eos_id).long()
    ended_before = (is_eos.cumsum(1) - is_eos) > 0
    return (~ended_before).long()


@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompts: list[str], tcfg: TextEnvConfig, device: torch.device,
             seed: int, greedy: bool = False, autocast: torch.dtype | None = None) -> Responses:
    """Sample one response per prompt (batched, KV cache). Same seed, same model: the same responses.

    `autocast`: run the model under autocast to this dtype (fp32 weights, bf16 compute)."""
    ids, mask = encode_prompts(tokenizer, prompts, tcfg.max_prompt_tokens)
    ids, mask = ids.to(device), mask.to(device)
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    eos = tokenizer.eos_token_id
    kwargs: dict[str, Any] = dict(max_new_tokens=tcfg.max_new_tokens, eos_token_id=eos,
                                  pad_token_id=pad_id_of(tokenizer), use_cache=True)
    if greedy:
        kwargs.update(do_sample=False)
    else:
        kwargs.update(do_sample=True, temperature=tcfg.temperature, top_k=tcfg.top_k, top_p=tcfg.top_p)
    with autocast_context(device, autocast):
        out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
    model.train(was_training)
    width = ids.shape[1]
    response_mask = response_mask_of(out[:, width:], eos)
    full_mask = torch.cat([mask, response_mask], dim=1)
    resp_mask_full = torch.cat([torch.zeros_like(mask), response_mask], dim=1)
    sequences = torch.where(full_mask.bool(), out, torch.full_like(out, pad_id_of(tokenizer)))
    return Responses(sequences, full_mask, width, resp_mask_full, list(prompts))


@torch.no_grad()
def sequence_scores(model: ScoreModel, responses: Responses, batch_size: int) -> torch.Tensor:
    """(S,) score of each whole (prompt, response) at its last real token."""
    out = []
    for start in range(0, len(responses.prompts), batch_size):
        ids = responses.input_ids[start:start + batch_size]
        mask = responses.attention_mask[start:start + batch_size]
        out.append(model(ids, attention_mask=mask, position_ids=position_ids_from_mask(mask)).end_scores.float())
    return torch.cat(out)


# -------------------------------------------------------------------------------------------- collector

class TextCollector:
    """Generates an epoch of responses, scores them, and builds the token-level `RolloutBatch`."""

    def __init__(self, models: TextModels, tcfg: TextEnvConfig, prompts: list[str], spec: CMDPSpec,
                 gamma: np.ndarray, lam: np.ndarray, generation_batch: int, device: torch.device,
                 backend: GenerationBackend, old_distribution: bool = False,
                 group: GroupBaseline | None = None) -> None:
        self.models, self.tcfg, self.prompts, self.spec = models, tcfg, prompts, spec
        self.backend = backend  # samples the answers (cmdp.envs.text.generation)
        # critic-free group solvers: each prompt answered group.size times, advantages from the group's baseline
        # (cmdp.group); None: GAE with the critics
        self.group = group
        self.old_distribution = old_distribution  # keep the behaviour policy's next-token logits in the batch
        self.gamma, self.lam = np.asarray(gamma, dtype=np.float64), np.asarray(lam, dtype=np.float64)
        self.generation_batch = generation_batch
        self.device = device

    def collect(self, steps: int, rng: np.random.Generator, reset_seed: int,
                progress: Callable[[int], None] | None = None) -> RolloutBatch:
        """`steps` responses to prompts drawn with `reset_seed` (so an epoch is reproducible), as one batch."""
        m = self.models
        t0 = time.perf_counter()
        reset_seed = reset_seed + 1_000_003 * _rank()  # data-parallel ranks answer different prompts
        chooser = np.random.default_rng(reset_seed)
        repeat = self.group.size if self.group is not None else 1
        chosen = [self.prompts[i] for i in chooser.integers(0, len(self.prompts), size=steps // repeat)
                  for _ in range(repeat)]
        parts: list[Responses] = []
        self.backend.sync()
        for start in range(0, steps, self.generation_batch):
            batch_prompts = chosen[start:start + self.generation_batch]
            parts.append(self.backend.generate(batch_prompts, seed=(reset_seed + start) % 2 ** 63))
            if progress is not None:
                progress(len(batch_prompts))
        responses = _concat_responses(parts, pad_id_of(m.tokenizer))
        t_generate = time.perf_counter() - t0
        return self.batch_from_responses(responses, t_generate)

    @torch.no_grad()
    def batch_from_responses(self, responses: Responses, t_generate: float = 0.0) -> RolloutBatch:
        m, tcfg = self.models, self.tcfg
        s_count = len(responses.prompts)
        seq, pos = responses.response_mask.nonzero(as_tuple=True)  # row-major: each sequence's tokens in order
        obs = TokenObs(responses.input_ids, responses.attention_mask, seq, pos)
        actions = responses.input_ids[seq, pos]
        was_training = m.agent.training
        m.agent.eval()
        logp = m.agent.actor.log_prob(obs, actions)
        old_dist = None
        if self.old_distribution:
            actor = m.agent.actor
            old_dist = OldDistribution(actor.distribution_params(obs), actor.distribution_from_params)
        critic = m.agent.critic
        values = critic(obs) if critic is not None else torch.zeros(len(seq), 1 + len(m.cost_models))
        ref_actor = TextActor(m.reference, tcfg.temperature, tcfg.eval_batch_size)
        ref_logp = ref_actor.log_prob(obs, actions)
        m.agent.train(was_training)
        reward = sequence_scores(m.reward_model, responses, tcfg.eval_batch_size)
        costs = torch.stack([sequence_scores(cm, responses, tcfg.eval_batch_size) for cm in m.cost_models.values()],
                            dim=-1)
        kl = (logp - ref_logp).cpu().double().numpy()

        # time-major (T, S) layout for GAE: T = longest response; positions past a response's end are padding
        lengths = responses.response_lengths.cpu().numpy()
        t_max, e = int(lengths.max()), 1 + len(m.cost_models)
        step = (pos - responses.prompt_length).cpu().numpy()
        seq_np = seq.cpu().numpy()
        signals = np.zeros((t_max, s_count, e))
        signals[step, seq_np, 0] = -tcfg.kl_coeff * kl
        signals[step, seq_np, 1:] = (tcfg.kl_coeff * kl)[:, None]
        last = lengths - 1
        clip = tcfg.score_clip
        signals[last, np.arange(s_count), 0] += np.clip(reward.cpu().double().numpy(), -clip, clip)
        signals[last, np.arange(s_count), 1:] += np.clip(costs.cpu().double().numpy(), -clip, clip)
        vals = np.zeros((t_max, s_count, e))
        vals[step, seq_np] = values.cpu().double().numpy()
        terminated = np.zeros((t_max, s_count), dtype=bool)
        terminated[last, np.arange(s_count)] = True
        next_vals = np.zeros_like(vals)
        next_vals[:-1] = vals[1:]  # V(s_{t+1}); after a response's last token nothing is bootstrapped
        if self.group is None:
            adv, ret = gae(signals, vals, next_vals, terminated, terminated, self.gamma, self.lam)
        else:  # every token of a response carries the group advantage of its response's stream totals
            per_response = self.group.advantages(torch.from_numpy(signals.sum(0))).numpy()
            adv = np.broadcast_to(per_response[None], signals.shape)
            ret = adv

        def flat(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a[step, seq_np].astype(np.float32)).to(self.device)

        # every rank sees every rank's episodes: the same multiplier step and the same logged numbers everywhere
        episodes = _gather_episodes(EpisodeStats(reward.cpu().double().numpy(), costs.cpu().double().numpy(),
                                                 lengths.astype(np.int64)))
        kl_per_response = np.bincount(seq_np, weights=kl, minlength=s_count)
        ended = responses.input_ids[torch.arange(s_count), responses.last_index()].eq(m.tokenizer.eos_token_id)
        info = {"kl_ref": float(kl_per_response.mean()), "response_len": float(lengths.mean()),
                "finished_share": float(ended.float().mean()), "tokens": float(len(seq_np)),
                "time_generate_s": t_generate,
                "tokens_per_s_generate": float(len(seq_np) / t_generate) if t_generate > 0 else float("nan")}
        return RolloutBatch(obs, actions, logp.float(), flat(vals), flat(adv), flat(ret), episodes,
                            groups=seq, info=info, reduce_mean=_mean_over_ranks if _world() > 1 else None,
                            old_dist=old_dist, ref_logp=ref_logp.float())


def _world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _mean_over_ranks(value: float) -> float:
    """The mean of a statistic over data-parallel ranks (so every rank takes the same early-stopping decision)."""
    import torch.distributed as dist

    t = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def _gather_episodes(local: EpisodeStats) -> EpisodeStats:
    if _world() == 1:
        return local
    import torch.distributed as dist

    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (local.returns, local.costs, local.lengths))
    return EpisodeStats(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                        np.concatenate([p[2] for p in parts]))


def _concat_responses(parts: list[Responses], pad_id: int) -> Responses:
    """One block from several generation batches (prompt blocks left-padded to the widest, ends right-padded)."""
    if len(parts) == 1:
        return parts[0]
    p_width = max(p.prompt_length for p in parts)
    r_width = max(p.input_ids.shape[1] - p.prompt_length for p in parts)

    def place(t: torch.Tensor, p: Responses, fill: int) -> torch.Tensor:
        out = torch.full((t.shape[0], p_width + r_width), fill, dtype=t.dtype, device=t.device)
        left = p_width - p.prompt_length
        out[:, left:left + t.shape[1]] = t
        return out

    return Responses(torch.cat([place(p.input_ids, p, pad_id) for p in parts]),
                     torch.cat([place(p.attention_mask, p, 0) for p in parts]), p_width,
                     torch.cat([place(p.response_mask, p, 0) for p in parts]),
                     [x for p in parts for x in p.prompts])
