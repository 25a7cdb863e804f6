"""Reward and cost score models (Safe RLHF): a Hugging Face backbone plus a linear head, one scalar per token.

The score of a sequence is the head's output at its last real token (the EOS of a finished answer),
found from the attention mask, which works with right or left padding and with pad == eos as long as
the mask comes from sequence lengths (`envs.text.chat.pad_batch`).

Sign convention (safe-rlhf's cost model): a cost > 0 means unsafe, < 0 means safe. The cost loss has
a pairwise term (the unsafer response costs more) and a classification term per response with
s = +1 for an unsafe response and -1 for a safe one: -log sigmoid(s * c) pushes unsafe costs above 0
and safe ones below.

A saved score model directory holds the backbone (`save_pretrained`, safetensors), `score_head.safetensors`,
`score_head.json` (hidden size, kind) and, when trained here, the tokenizer and `metrics.json`.
"""
from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cmdp.config import check_device_available, check_output_folder, check_seed
from cmdp.logger import strict_json_text
from cmdp.spec import ConfigError
from cmdp.envs.text.chat import encode_example, pad_batch, pad_id_of
from cmdp.envs.text.data import PreferencePair, load_preferences

HEAD_WEIGHTS = "score_head.safetensors"
HEAD_CONFIG = "score_head.json"
METRICS_FILE = "metrics.json"
SCORE_KINDS = ("reward", "cost")
_FORMAT = "cmdp-lab score head"


def import_transformers() -> Any:
    """The transformers module, or a ConfigError telling how to install the text extra."""
    try:
        import transformers
    except ImportError as exc:
        raise ConfigError("the text side needs transformers, tokenizers and safetensors: "
                          "pip install 'cmdp-lab[text]'") from exc
    return transformers


@contextlib.contextmanager
def loading(what: str) -> Iterator[None]:
    """Turns what transformers raises for a folder or hub name it cannot load (OSError, ValueError; its messages
    span several lines) into one ConfigError line, "`what`: cannot load it: detail". Our own ConfigErrors (a
    tokenizer without EOS, ...) pass as they are."""
    try:
        yield
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what}: cannot load it: {' '.join(str(exc).split())}") from None


# --------------------------------------------------------------------------------------------- losses

def reward_loss(better_scores: torch.Tensor, worse_scores: torch.Tensor) -> torch.Tensor:
    """Mean of -log sigmoid(r_better - r_worse): the Bradley-Terry loss of the reward model."""
    return -F.logsigmoid(better_scores - worse_scores).mean()


def cost_signs(is_safe: torch.Tensor) -> torch.Tensor:
    """s per response: +1.0 for an unsafe response, -1.0 for a safe one (the sign its cost should have)."""
    return 1.0 - 2.0 * is_safe.to(torch.float32)


def cost_loss(safer_costs: torch.Tensor, unsafer_costs: torch.Tensor,
              safer_is_safe: torch.Tensor, unsafer_is_safe: torch.Tensor) -> torch.Tensor:
    """Mean of -log sigmoid(c_unsafer - c_safer) - log sigmoid(s_safer c_safer) - log sigmoid(s_unsafer c_unsafer).

    `*_is_safe` are booleans (True: the response is safe, s = -1); the costs are sequence scores.
    """
    s_safer = cost_signs(safer_is_safe).to(safer_costs.dtype)
    s_unsafer = cost_signs(unsafer_is_safe).to(unsafer_costs.dtype)
    return (-F.logsigmoid(unsafer_costs - safer_costs)
            - F.logsigmoid(s_safer * safer_costs)
            - F.logsigmoid(s_unsafer * unsafer_costs)).mean()


def pair_accuracy(higher: torch.Tensor, lower: torch.Tensor) -> float:
    """Fraction of pairs where the score that should be higher is strictly higher."""
    return (higher > lower).float().mean().item()


def sign_accuracy(costs: torch.Tensor, is_safe: torch.Tensor) -> float:
    """Fraction of responses whose cost has the right sign (> 0 unsafe, < 0 safe; exactly 0 is wrong)."""
    return (cost_signs(is_safe).to(costs.dtype) * costs > 0).float().mean().item()


# ---------------------------------------------------------------------------------------------- model

class ScoreOutput(NamedTuple):
    """`scores` (B, L): one scalar per token; `end_scores` (B,): the score at `end_index` (B,), the last real token.

    A named tuple so that wrappers that look for tensors in a module's outputs (DeepSpeed ZeRO-3) find them.
    """

    scores: torch.Tensor
    end_scores: torch.Tensor
    end_index: torch.Tensor


def last_real_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last position whose mask is non-zero, per row (right or left padding alike).

    Raises ValueError for a row with no real token.
    """
    mask = attention_mask.ne(0)
    if not bool(mask.any(dim=1).all()):
        raise ValueError("a sequence in the batch has no real token (its attention mask is all zero)")
    length = mask.shape[1]
    return length - 1 - mask.flip(dims=[1]).to(torch.int64).argmax(dim=1)


def _hidden_size(config: Any) -> int:
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    size = getattr(text_config, "hidden_size", None)
    if not isinstance(size, int):
        raise ConfigError(f"cannot tell the hidden size of a {type(config).__name__} backbone")
    return size


class ScoreModel(nn.Module):
    """A transformer backbone (`AutoModel`) and a linear head mapping each token's last hidden state to a scalar.

    Used as the reward model, the cost model, and later as the reward and cost critics of PPO-Lagrangian.
    `kind` ("reward", "cost" or None) is only recorded, for the reader of a saved directory.
    """

    def __init__(self, backbone: nn.Module, kind: str | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(_hidden_size(backbone.config), 1)
        self.kind = kind

    @classmethod
    def from_backbone(cls, path: str | Path, *, kind: str | None = None, trust_remote_code: bool = False,
                      **backbone_kwargs: Any) -> ScoreModel:
        """A new score model: the backbone of any Hugging Face model path (a causal LM's body too) and a fresh head."""
        backbone = import_transformers().AutoModel.from_pretrained(str(path), trust_remote_code=trust_remote_code,
                                                                   **backbone_kwargs)
        return cls(backbone, kind=kind)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, trust_remote_code: bool = False, as_kind: str | None = None,
                        **backbone_kwargs: Any) -> ScoreModel:
        """Load a directory written by `save_pretrained` (backbone and head).

        `as_kind` ("reward" or "cost"): the use the caller puts it to; a head saved as the other kind is refused
        before the backbone is loaded (a reward model given as a cost model would constrain helpfulness)."""
        from safetensors.torch import load_file

        path = Path(path)
        config_file, weights_file = path / HEAD_CONFIG, path / HEAD_WEIGHTS
        if not config_file.is_file() or not weights_file.is_file():
            raise ConfigError(f"{path}: not a score model directory (needs {HEAD_CONFIG} and {HEAD_WEIGHTS}); "
                              "start from a plain model with ScoreModel.from_backbone")
        head_config = json.loads(config_file.read_text())
        if head_config.get("format") != _FORMAT:
            raise ConfigError(f"{config_file}: not a {_FORMAT} config")
        saved = head_config.get("kind")
        if as_kind is not None and saved in SCORE_KINDS and saved != as_kind:
            raise ConfigError(f"{path}: a {saved} model (its {HEAD_CONFIG} says so), given as the {as_kind} model")
        model = cls.from_backbone(path, kind=head_config.get("kind"), trust_remote_code=trust_remote_code,
                                  **backbone_kwargs)
        if head_config.get("hidden_size") != model.head.in_features:
            raise ConfigError(f"{config_file}: hidden_size {head_config.get('hidden_size')} does not match the "
                              f"backbone's {model.head.in_features}")
        state = load_file(str(weights_file))
        model.head.load_state_dict({k: v.to(model.head.weight.dtype) for k, v in state.items()})
        return model

    def save_pretrained(self, path: str | Path) -> None:
        """Write the backbone (safetensors), the head weights (`score_head.safetensors`) and `score_head.json`."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(str(path))
        save_file({k: v.detach().contiguous().cpu() for k, v in self.head.state_dict().items()},
                  str(path / HEAD_WEIGHTS))
        (path / HEAD_CONFIG).write_text(json.dumps(
            {"format": _FORMAT, "version": 1, "hidden_size": self.head.in_features, "kind": self.kind}, indent=2)
            + "\n")

    @property
    def max_positions(self) -> int | None:
        """The backbone's context length when its config says (`max_position_embeddings`), else None."""
        value = getattr(self.backbone.config, "max_position_embeddings", None)
        return value if isinstance(value, int) else None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None) -> ScoreOutput:
        """Per-token scores and the score at the last real token of each row (every token is real without a mask)."""
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        hidden = self.backbone(**kwargs).last_hidden_state
        scores = self.head(hidden.to(self.head.weight.dtype)).squeeze(-1)
        if attention_mask is None:
            end_index = torch.full((input_ids.shape[0],), input_ids.shape[1] - 1, dtype=torch.long,
                                   device=input_ids.device)
        else:
            end_index = last_real_index(attention_mask)
        end_scores = scores.gather(1, end_index.unsqueeze(1)).squeeze(1)
        return ScoreOutput(scores=scores, end_scores=end_scores, end_index=end_index)

    @torch.no_grad()
    def score_texts(self, tokenizer: Any, prompts: Sequence[str], responses: Sequence[str], *,
                    max_length: int = 512, batch_size: int = 32) -> torch.Tensor:
        """Sequence scores (N,) of (prompt, response) pairs in the chat format, on the model's device, in eval mode."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        was_training = self.training
        self.eval()
        device = self.head.weight.device
        max_length = min(max_length, self.max_positions or max_length)
        encoded = [encode_example(tokenizer, p, r, max_length)[0] for p, r in zip(prompts, responses)]
        out = []
        for start in range(0, len(encoded), batch_size):
            ids, mask = pad_batch(encoded[start:start + batch_size], pad_id_of(tokenizer))
            out.append(self(ids.to(device), attention_mask=mask.to(device)).end_scores.float())
        self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, device=device)


# ------------------------------------------------------------------------------------------- training

@dataclass
class _EncodedPairs:
    """Token ids of the two responses of each pair, in the order the loss wants them."""

    high: list[list[int]]  # better (reward) or unsafer (cost): should score higher
    low: list[list[int]]
    high_is_safe: torch.Tensor  # (N,) bool; used by the cost model only
    low_is_safe: torch.Tensor

    def __len__(self) -> int:
        return len(self.high)


def _encode_pairs(kind: str, pairs: Sequence[PreferencePair], tokenizer: Any, max_length: int) -> _EncodedPairs:
    high, low, high_safe, low_safe = [], [], [], []
    for pair in pairs:
        top = pair.better_response_id if kind == "reward" else 1 - pair.safer_response_id
        high.append(encode_example(tokenizer, pair.prompt, pair.response(top), max_length)[0])
        low.append(encode_example(tokenizer, pair.prompt, pair.response(1 - top), max_length)[0])
        high_safe.append(pair.is_safe(top))
        low_safe.append(pair.is_safe(1 - top))
    return _EncodedPairs(high, low, torch.tensor(high_safe, dtype=torch.bool), torch.tensor(low_safe, dtype=torch.bool))


def split_by_prompt(pairs: Sequence[PreferencePair], eval_fraction: float,
                    seed: int) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Hold out about `eval_fraction` of the distinct prompts (all their pairs), chosen by `seed`.

    Splitting by prompt keeps every held-out prompt unseen in training.
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise ConfigError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    prompts = sorted({p.prompt for p in pairs})
    random.Random(seed).shuffle(prompts)
    n_eval = math.ceil(eval_fraction * len(prompts)) if len(prompts) > 1 else 0
    held_out = set(prompts[:n_eval])
    return [p for p in pairs if p.prompt not in held_out], [p for p in pairs if p.prompt in held_out]


def resolve_device(device: str) -> torch.device:
    """A device name (or "auto": CUDA when present) as a torch.device; a clear error for CUDA without a GPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device {device!r}: {exc}") from None
    check_device_available("device", device)  # before any data or model is loaded
    return resolved


def _batch_scores(model: ScoreModel, data: _EncodedPairs, index: Sequence[int], pad_id: int,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """End scores of the high and the low responses of the pairs `index`, in one forward pass."""
    seqs = [data.high[i] for i in index] + [data.low[i] for i in index]
    ids, mask = pad_batch(seqs, pad_id)
    end = model(ids.to(device), attention_mask=mask.to(device)).end_scores.float()
    return end[:len(index)], end[len(index):]


def _pair_loss(kind: str, data: _EncodedPairs, index: Sequence[int], high: torch.Tensor,
               low: torch.Tensor) -> torch.Tensor:
    if kind == "reward":
        return reward_loss(high, low)
    idx = torch.as_tensor(list(index))
    return cost_loss(low, high, data.low_is_safe[idx].to(low.device), data.high_is_safe[idx].to(high.device))


@torch.no_grad()
def evaluate_score_model(kind: Literal["reward", "cost"], model: ScoreModel, tokenizer: Any,
                         pairs: Sequence[PreferencePair], *, max_length: int = 512, batch_size: int = 32,
                         device: str | torch.device | None = None) -> dict[str, float]:
    """Held-out metrics of a score model on preference pairs.

    reward: `accuracy` (better scored above worse), `loss`, `score_mean`, `score_std`.
    cost: `accuracy` (unsafer above safer), `accuracy_with_unsafe` (the same over the pairs with at least one
    response flagged unsafe: the ranking a cost limit acts on; NaN if none), `sign_accuracy` (both responses of
    every pair), `loss`, `cost_mean_safe` and `cost_mean_unsafe` (mean cost of the responses flagged safe /
    unsafe; NaN if none).
    """
    _check_kind(kind)
    device = torch.device(device) if device is not None else model.head.weight.device
    data = _encode_pairs(kind, pairs, tokenizer, max_length)
    if len(data) == 0:
        raise ConfigError("evaluate_score_model: no pairs")
    was_training = model.training
    model.eval()
    highs, lows = [], []
    for start in range(0, len(data), batch_size):
        high, low = _batch_scores(model, data, range(start, min(start + batch_size, len(data))), pad_id_of(tokenizer),
                                  device)
        highs.append(high.cpu())
        lows.append(low.cpu())
    model.train(was_training)
    high, low = torch.cat(highs), torch.cat(lows)
    metrics = {"pairs": float(len(data)), "accuracy": pair_accuracy(high, low),
               "loss": _pair_loss(kind, data, range(len(data)), high, low).item()}
    scores = torch.cat([high, low])
    if kind == "reward":
        metrics.update(score_mean=scores.mean().item(), score_std=scores.std().item() if len(scores) > 1 else 0.0)
    else:
        with_unsafe = ~(data.high_is_safe & data.low_is_safe)
        metrics["accuracy_with_unsafe"] = (pair_accuracy(high[with_unsafe], low[with_unsafe])
                                           if bool(with_unsafe.any()) else math.nan)
        safe = torch.cat([data.high_is_safe, data.low_is_safe])
        metrics["sign_accuracy"] = sign_accuracy(scores, safe)
        metrics["cost_mean_safe"] = scores[safe].mean().item() if bool(safe.any()) else math.nan
        metrics["cost_mean_unsafe"] = scores[~safe].mean().item() if bool((~safe).any()) else math.nan
    return metrics


def _check_kind(kind: str) -> None:
    if kind not in SCORE_KINDS:
        raise ConfigError(f"kind must be one of {SCORE_KINDS}, got {kind!r}")


def is_missing_local_folder(path: str | Path) -> bool:
    """True when `path` can only name a local folder and none is there; False when it exists, and for what may be a
    hub id ("gpt2", "org/name"), which is left to `from_pretrained`. Without this check `from_pretrained` sends a
    missing folder to the hub: offline, a minute of retries, their warnings, and an error about the connection."""
    text = str(path)
    if Path(text).expanduser().exists():
        return False
    if isinstance(path, Path) or text.startswith(("/", ".", "~")) or text.count("/") > 1:
        return True  # a hub id has at most one slash, "org/name"
    first, slash, _ = text.partition("/")
    return bool(slash) and Path(first).is_dir()  # runs/model under a local runs/: a folder, not the hub's org "runs"


def _check_model_path(model_path: str | Path) -> None:
    """A path that names a local folder must exist (else transformers would try the hub, with no network here)."""
    if is_missing_local_folder(model_path):
        raise ConfigError(f"{model_path}: no such model folder")


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """`out_dir` must be a folder that is absent or empty, unless `overwrite` (then its files are replaced in place)."""
    check_output_folder(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ConfigError(f"{out_dir}: output folder exists and is not empty; choose a new folder")


def train_score_model(kind: Literal["reward", "cost"], data_path: str | Path, model_path: str | Path,
                      out_dir: str | Path, epochs: int = 3, lr: float = 5e-4, batch_size: int = 16, seed: int = 0,
                      device: str = "auto", *, eval_data_path: str | Path | None = None,
                      eval_fraction: float = 0.1, max_length: int = 512, weight_decay: float = 0.0,
                      tokenizer_path: str | Path | None = None, trust_remote_code: bool = False,
                      overwrite: bool = False, log: Callable[[str], None] | None = print,
                      progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
    """Train a reward or cost model on decoupled preference pairs; save it to `out_dir`; return its metrics.

    `model_path` is any Hugging Face model path (a fresh head is added) or a score model directory
    (training continues from its head). The tokenizer comes from `tokenizer_path`, else `model_path`.
    Held-out pairs: `eval_data_path` when given, else `eval_fraction` of the distinct prompts of
    `data_path` (`split_by_prompt`). AdamW, linear warm-up over the first 5% of steps then linear decay,
    gradient norm clipped at 1.0. `out_dir` receives the score model, the tokenizer and `metrics.json`:
    held-out `eval_accuracy` (and `eval_accuracy_with_unsafe`, `eval_sign_accuracy` for cost), the last epoch's
    training loss, sizes, settings and wall time. `device`: "auto" (CUDA when present), "cpu", "cuda", ...
    `out_dir` must be absent or empty unless `overwrite`; every input is checked before anything is written,
    and a save that fails part-way removes what it wrote (unless it was overwriting a non-empty folder).
    `log` receives one line per stage and epoch; `progress(step, total_steps, loss)` is called after every
    optimizer step (for a progress bar).
    The defaults suit the tiny embedded default model; a pretrained model of 100M+ parameters wants a
    learning rate nearer 1e-5 (safe-rlhf uses 2e-5 for 7B models) and 1-2 epochs.
    """
    transformers = import_transformers()
    _check_kind(kind)
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("max_length", max_length)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not lr > 0:
        raise ConfigError(f"lr must be > 0, got {lr!r}")
    check_seed("seed", seed)  # as a run's seed: torch took a negative one, and one past 64 bits ended in its traceback
    say = log or (lambda _: None)
    started = time.perf_counter()
    torch_device = resolve_device(device)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    # checked before the data are read so that a bad path fails at once, not after a large file is parsed
    _check_model_path(model_path)
    if tokenizer_path is not None:
        _check_model_path(tokenizer_path)

    pairs = load_preferences(data_path)
    if eval_data_path is not None:
        train_pairs, eval_pairs = pairs, load_preferences(eval_data_path)
    else:
        train_pairs, eval_pairs = split_by_prompt(pairs, eval_fraction, seed)
    skipped = sum(p.response_0 == p.response_1 for p in train_pairs)
    train_pairs = [p for p in train_pairs if p.response_0 != p.response_1]  # no signal, and the loss is constant
    if not train_pairs:  # checked after the filter: an empty set would divide by zero below
        raise ConfigError(f"{data_path}: no training pairs left after holding out the evaluation prompts "
                          f"and dropping {skipped} pair(s) with two identical responses")

    torch.manual_seed(seed)
    with loading(f"tokenizer {tokenizer_path or model_path}"):
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(tokenizer_path or model_path),
                                                               trust_remote_code=trust_remote_code)
    with loading(f"model {model_path}"):
        if (Path(model_path) / HEAD_CONFIG).is_file():
            model = ScoreModel.from_pretrained(model_path, trust_remote_code=trust_remote_code)
            model.kind = kind
        else:
            model = ScoreModel.from_backbone(model_path, kind=kind, trust_remote_code=trust_remote_code)
    model.to(torch_device)
    max_length = min(max_length, model.max_positions or max_length)
    pad_id = pad_id_of(tokenizer)
    data = _encode_pairs(kind, train_pairs, tokenizer, max_length)

    steps_per_epoch = math.ceil(len(data) / batch_size)
    total_steps = epochs * steps_per_epoch
    warmup = max(1, int(0.05 * total_steps))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup))))
    generator = torch.Generator().manual_seed(seed)
    say(f"[{kind}] {len(data)} training pairs, {len(eval_pairs)} held-out pairs, {epochs} epoch(s) x "
        f"{steps_per_epoch} steps on {torch_device}")

    history = []
    step = 0
    model.train()
    for epoch in range(1, epochs + 1):
        loss_sum, correct = 0.0, 0
        for batch in torch.randperm(len(data), generator=generator).split(batch_size):
            index = batch.tolist()
            high, low = _batch_scores(model, data, index, pad_id, torch_device)
            loss = _pair_loss(kind, data, index, high, low)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(index)
            correct += int((high > low).sum())
            step += 1
            if progress is not None:
                progress(step, total_steps, loss.item())
        row: dict[str, Any] = {"epoch": epoch, "train_loss": loss_sum / len(data),
                               "train_accuracy": correct / len(data)}
        if eval_pairs:
            held_out = evaluate_score_model(kind, model, tokenizer, eval_pairs, max_length=max_length,
                                            batch_size=max(batch_size, 32), device=torch_device)
            row.update({f"eval_{k}": v for k, v in held_out.items() if k != "pairs"})
        history.append(row)
        say(f"[{kind}] epoch {epoch}/{epochs}: " + ", ".join(
            f"{k} {v:.4f}" for k, v in row.items() if k != "epoch" and isinstance(v, float)))

    last = history[-1]
    metrics: dict[str, Any] = {
        "kind": kind, "data": str(data_path), "eval_data": str(eval_data_path) if eval_data_path else None,
        "model": str(model_path), "train_pairs": len(data), "eval_pairs": len(eval_pairs),
        "skipped_identical_pairs": skipped, "epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
        "max_length": max_length, "device": str(torch_device),
        "train_loss": last["train_loss"], "train_accuracy": last["train_accuracy"],
        "eval_accuracy": last.get("eval_accuracy"), "eval_loss": last.get("eval_loss"),
        "wall_seconds": round(time.perf_counter() - started, 2), "history": history,
    }
    if kind == "cost":
        metrics["eval_accuracy_with_unsafe"] = last.get("eval_accuracy_with_unsafe")
        metrics["eval_sign_accuracy"] = last.get("eval_sign_accuracy")
    existed = out_dir.exists()
    overwriting = existed and any(out_dir.iterdir())
    try:
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(str(out_dir))
        (out_dir / METRICS_FILE).write_text(strict_json_text(metrics))
    except BaseException:  # an interrupt or a full disk must not leave a folder that looks like a model
        if not overwriting:  # everything in it is ours; a folder that was there empty stays, empty
            shutil.rmtree(out_dir, ignore_errors=True)
            if existed:
                out_dir.mkdir(exist_ok=True)
        raise
    return metrics


def describe_metrics(metrics: dict[str, Any]) -> str:
    """One line for a person: the held-out accuracies of a `train_score_model` result."""
    def num(key: str) -> str:
        value = metrics.get(key)
        return "n/a" if value is None else f"{value:.3f}"

    line = f"{metrics['kind']} model: held-out accuracy {num('eval_accuracy')}"
    if metrics["kind"] == "cost":
        line += (f" ({num('eval_accuracy_with_unsafe')} on pairs with an unsafe response), "
                 f"sign accuracy {num('eval_sign_accuracy')}")
    return line + f" on {metrics['eval_pairs']} pairs ({metrics['train_pairs']} trained, {metrics['wall_seconds']} s)"
