"""Build the embedded text default from scratch: corpus, tokenizer, a tiny SFT policy, reward and cost models.

    python -m cmdp.envs.text.make_default --out DIR [--seed 0] [--quick] [--device auto] [--force]

Nothing is downloaded: the data come from `envs.text.corpus`, the tokenizer is trained on them with the
`tokenizers` library, the policy is a small GPT-2 trained by SFT, and the score models start from its body.
Same seed, same machine and thread count: the same files. A few minutes on 2 CPU cores (`--quick`: seconds).

    DIR/data/preferences_train.jsonl   decoupled preference pairs (PKU-SafeRLHF columns), train prompts
    DIR/data/preferences_test.jsonl    the same for held-out prompts (never seen by any model)
    DIR/data/prompts.jsonl             RL prompts (`prompt`, plus `is_harmful_prompt` and `split`)
    DIR/data/prompts_{train,test}.jsonl  the same split in two files (RL on train, evaluation on test)
    DIR/data/sft.jsonl                 (prompt, response) SFT pairs, train prompts: some harmful compliance,
                                       some brief, refused or off-topic answers to harmless requests
    DIR/tokenizer/                     the fast tokenizer (bos/eos/pad, chat template)
    DIR/sft/                           the SFT policy (GPT2LMHeadModel, safetensors) and tokenizer
    DIR/reward/, DIR/cost/             score models (`ScoreModel.from_pretrained`) with metrics.json
    DIR/manifest.json                  settings, sizes, metrics, timings and package versions
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from cmdp.config import check_output_folder
from cmdp.logger import strict_json_text
from cmdp.spec import ConfigError
from cmdp.envs.text import corpus as corpus_lib
from cmdp.envs.text.chat import CHAT_TEMPLATE, encode_example, encode_prompt, format_prompt, pad_batch
from cmdp.envs.text.data import write_rows
from cmdp.envs.text.score_model import (ScoreModel, import_transformers, resolve_device,
                                        train_score_model)

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>"}


@dataclass(frozen=True)
class DefaultConfig:
    """Every size and setting of the default; `quick()` is a seconds-long variant for smoke tests.

    The SFT data are 16 sampled answers per training prompt, seen for 4 epochs. Why: the policy is sampled at
    temperature 1, and what it writes is what RL and the scorers work on. Measured on seed 1's corpus (2026-12-02,
    `corpus.answer_kind` on 4 sampled answers per held-out prompt): the first setting, 2 answers per prompt for 20
    epochs, memorised its 816 examples (train loss 0.067, held-out 0.220 nats/token) and garbled 54% of its answers
    to helpful requests and 36% to harmful ones, which the reward and cost models, trained on whole answers of
    every kind, then scored erratically. 16 answers for 4 epochs (816 optimiser steps against 510, about as long to
    train): held-out loss 0.116, garbled 15% and 13%, and the kinds' shares near the SFT data's. 8 answers for 6
    epochs gave 34% and 17%.
    """

    seed: int = 0
    n_helpful_prompts: int = 240
    n_harmful_prompts: int = 240
    pairs_per_prompt: int = 3
    test_fraction: float = 0.15
    # 16 sampled answers per training prompt, 4 epochs: see the docstring
    sft_per_prompt: int = 16
    comply_fraction: float = 0.4
    helpful_sft_mix: tuple[tuple[str, float], ...] = corpus_lib.HELPFUL_SFT_MIX
    vocab_size: int = 1000
    context: int = 128
    n_layer: int = 3
    n_embd: int = 128
    n_head: int = 4
    sft_epochs: int = 4
    sft_lr: float = 3e-3
    sft_batch_size: int = 32
    score_epochs: int = 3
    score_lr: float = 5e-4
    score_batch_size: int = 16
    check_prompts: int = 48  # held-out prompts the SFT policy answers, scored by both models

    @classmethod
    def quick(cls, seed: int = 0) -> DefaultConfig:
        return cls(seed=seed, n_helpful_prompts=80, n_harmful_prompts=80, pairs_per_prompt=2, sft_per_prompt=2,
                   n_layer=1, n_embd=64, n_head=2, sft_epochs=2, score_epochs=1, check_prompts=8)


def train_tokenizer(texts: Sequence[str], out_dir: str | Path, vocab_size: int, context: int) -> Any:
    """Train a byte-level BPE tokenizer on `texts`; save it as a Hugging Face fast tokenizer with our chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=list(SPECIAL_TOKENS.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=context, padding_side="right",
                                   chat_template=CHAT_TEMPLATE, **SPECIAL_TOKENS)
    fast.save_pretrained(str(out_dir))
    return fast


def make_policy(tokenizer: Any, cfg: DefaultConfig) -> Any:
    """A fresh tiny GPT-2 causal LM sized by `cfg`, with the tokenizer's special ids (no dropout)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=len(tokenizer), n_positions=cfg.context, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                        n_head=cfg.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    return GPT2LMHeadModel(config)


def _sft_batch(tokenizer: Any, examples: Sequence[tuple[str, str]], max_length: int) -> tuple[torch.Tensor, ...]:
    """input ids, attention mask and labels (-100 on the prompt and the padding: loss on response tokens only)."""
    encoded = [encode_example(tokenizer, p, r, max_length) for p, r in examples]
    ids, mask = pad_batch([e[0] for e in encoded], tokenizer.pad_token_id)
    labels = ids.masked_fill(mask == 0, -100)
    for i, (_, start) in enumerate(encoded):
        labels[i, :start] = -100
    return ids, mask, labels


def _sft_loss(model: Any, batch: tuple[torch.Tensor, ...], device: torch.device) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over the batch's response tokens, and their count."""
    ids, mask, labels = (t.to(device) for t in batch)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    targets = labels[:, 1:]
    count = int((targets != -100).sum())
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                                             ignore_index=-100)
    return loss, count


@torch.no_grad()
def sft_eval_loss(model: Any, tokenizer: Any, examples: Sequence[tuple[str, str]], max_length: int,
                  device: torch.device, batch_size: int = 64) -> float:
    """Mean cross-entropy per response token of `examples` (nats)."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        loss, n = _sft_loss(model, _sft_batch(tokenizer, examples[start:start + batch_size], max_length), device)
        total, count = total + loss.item() * n, count + n
    return total / max(count, 1)


def train_sft(model: Any, tokenizer: Any, train: Sequence[tuple[str, str]], test: Sequence[tuple[str, str]],
              cfg: DefaultConfig, device: torch.device, log: Callable[[str], None]) -> dict[str, Any]:
    """Supervised fine-tuning on (prompt, response) pairs, loss on response tokens (and the EOS) only.

    AdamW, linear warm-up then cosine decay, gradient norm clipped at 1.0. Returns per-epoch train and
    held-out losses (nats per response token).
    """
    generator = torch.Generator().manual_seed(cfg.seed)
    steps = cfg.sft_epochs * math.ceil(len(train) / cfg.sft_batch_size)
    warmup = max(1, steps // 20)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.sft_lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(
        (s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, steps))))))
    history = []
    model.to(device)
    for epoch in range(1, cfg.sft_epochs + 1):
        model.train()
        total, count = 0.0, 0
        for batch in torch.randperm(len(train), generator=generator).split(cfg.sft_batch_size):
            loss, n = _sft_loss(model, _sft_batch(tokenizer, [train[i] for i in batch.tolist()], cfg.context), device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            total, count = total + loss.item() * n, count + n
        row = {"epoch": epoch, "train_loss": total / count,
               "eval_loss": sft_eval_loss(model, tokenizer, test, cfg.context, device)}
        history.append(row)
        log(f"[sft] epoch {epoch}/{cfg.sft_epochs}: train loss {row['train_loss']:.4f}, "
            f"held-out loss {row['eval_loss']:.4f} nats/token")
    model.eval()
    return {"train_examples": len(train), "eval_examples": len(test), "epochs": cfg.sft_epochs, "lr": cfg.sft_lr,
            "train_loss": history[-1]["train_loss"], "eval_loss": history[-1]["eval_loss"], "history": history}


@torch.no_grad()
def generate_responses(model: Any, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int, seed: int,
                       do_sample: bool = True) -> list[str]:
    """Answer each prompt with the policy (sampling at temperature 1), in the chat format.

    Prompts are grouped by token length so that no batch needs padding.
    """
    from transformers.utils import logging as hf_logging

    model.eval()
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    # generate() feeds finished rows their pad id without a mask and transformers then warns about padding
    hf_logging.set_verbosity_error()
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    out: list[str] = [""] * len(prompts)
    by_length: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(i)
    for length, index in sorted(by_length.items()):
        budget = max(1, min(max_new_tokens, model.config.n_positions - length))
        ids = torch.tensor([encoded[i] for i in index], device=device)
        generated = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=budget,
                                   do_sample=do_sample, top_k=0, top_p=1.0, temperature=1.0,
                                   eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        for row, i in enumerate(index):
            out[i] = tokenizer.decode(generated[row, length:], skip_special_tokens=True).strip()
    hf_logging.set_verbosity(verbosity)
    return out


def check_policy(policy: Any, reward: Any, cost: Any, tokenizer: Any, prompts: Sequence[corpus_lib.Prompt],
                 cfg: DefaultConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """Let the SFT policy answer held-out prompts; score the answers; report how often it is unsafe."""
    texts = [p.text for p in prompts]
    responses = generate_responses(policy, tokenizer, texts, max_new_tokens=cfg.context // 2, seed=cfg.seed)
    rewards = reward.score_texts(tokenizer, texts, responses, max_length=cfg.context).cpu()
    costs = cost.score_texts(tokenizer, texts, responses, max_length=cfg.context).cpu()
    harmful = torch.tensor([p.harmful for p in prompts])
    result: dict[str, Any] = {"prompts": len(prompts)}
    for name, sel in (("harmful", harmful), ("helpful", ~harmful)):
        if bool(sel.any()):
            result[f"{name}_prompts_unsafe_fraction"] = (costs[sel] > 0).float().mean().item()
            result[f"{name}_prompts_mean_reward"] = rewards[sel].mean().item()
            result[f"{name}_prompts_mean_cost"] = costs[sel].mean().item()
    result["answer_kinds"] = corpus_lib.kind_shares(texts, [p.harmful for p in prompts], responses)
    result["examples"] = [{"prompt": t, "response": r, "reward": round(float(rw), 3), "cost": round(float(c), 3)}
                          for t, r, rw, c in list(zip(texts, responses, rewards, costs))[:6]]
    log("[check] SFT policy on held-out prompts: " + ", ".join(
        f"{k} {v:.3f}" for k, v in result.items() if isinstance(v, float)))
    for name, shares in result["answer_kinds"].items():
        log(f"[check]   answers to {name} requests: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items() if v))
    for ex in result["examples"][:4]:
        log(f"[check]   {format_prompt(ex['prompt'])!r} -> {ex['response']!r} "
            f"(reward {ex['reward']}, cost {ex['cost']})")
    return result


def _versions() -> dict[str, str]:
    import tokenizers
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "python": sys.version.split()[0]}


def build_default(out: str | Path, cfg: DefaultConfig = DefaultConfig(), *, device: str = "auto", force: bool = False,
                  log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Build every file of the default into `out` (see the module docstring); return the manifest.

    `out` must not exist or be empty unless `force` (then files are overwritten in place).
    """
    say = log or (lambda _: None)
    out = Path(out)
    check_output_folder(out)  # a file in the way: one line now, not mkdir's traceback once the data are made
    if out.exists() and any(out.iterdir()) and not force:
        raise ConfigError(f"{out}: not empty; choose a new folder or pass --force")
    import_transformers()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch_device = resolve_device(device)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    data = out / "data"
    corpus = corpus_lib.make_corpus(seed=cfg.seed, n_helpful=cfg.n_helpful_prompts, n_harmful=cfg.n_harmful_prompts,
                                    pairs_per_prompt=cfg.pairs_per_prompt, test_fraction=cfg.test_fraction,
                                    sft_per_prompt=cfg.sft_per_prompt, comply_fraction=cfg.comply_fraction,
                                    helpful_sft_mix=cfg.helpful_sft_mix)
    write_rows(data / "preferences_train.jsonl", [p.to_row() for p in corpus.train_pairs])
    write_rows(data / "preferences_test.jsonl", [p.to_row() for p in corpus.test_pairs])
    splits = (("train", corpus.train_prompts), ("test", corpus.test_prompts))
    write_rows(data / "prompts.jsonl", [{"prompt": p.text, "is_harmful_prompt": p.harmful, "split": split}
                                        for split, group in splits for p in group])
    for split, group in splits:  # the same prompts by split: RL trains on train, evaluation uses test
        write_rows(data / f"prompts_{split}.jsonl", [{"prompt": p.text, "is_harmful_prompt": p.harmful} for p in group])
    write_rows(data / "sft.jsonl", [{"prompt": p, "response": r} for p, r in corpus.sft_train])
    lap("data", t0)
    say(f"[data] {len(corpus.train_prompts)} train / {len(corpus.test_prompts)} held-out prompts, "
        f"{len(corpus.train_pairs)} / {len(corpus.test_pairs)} preference pairs, {len(corpus.sft_train)} SFT examples "
        f"-> {data}")

    t0 = time.perf_counter()
    sequences = [format_prompt(p) + " " + r for p, r in corpus.sft_train] + corpus.texts()
    tokenizer = train_tokenizer(sequences, out / "tokenizer", cfg.vocab_size, cfg.context)
    lengths = [len(encode_example(tokenizer, p, r, 10**6)[0]) for p, r in corpus.sft_train]
    lap("tokenizer", t0)
    say(f"[tokenizer] byte-level BPE, {len(tokenizer)} tokens; SFT sequences {min(lengths)}-{max(lengths)} tokens "
        f"(context {cfg.context}) -> {out / 'tokenizer'}")
    if max(lengths) > cfg.context:
        raise ConfigError(f"context {cfg.context} is shorter than the longest SFT sequence ({max(lengths)} tokens)")

    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    policy = make_policy(tokenizer, cfg)
    say(f"[sft] GPT-2 {cfg.n_layer} layers x {cfg.n_embd}, {sum(p.numel() for p in policy.parameters()):,} "
        f"parameters, on {torch_device}")
    sft_metrics = train_sft(policy, tokenizer, corpus.sft_train, corpus.sft_test, cfg, torch_device, say)
    policy.generation_config.pad_token_id = tokenizer.pad_token_id
    policy.save_pretrained(str(out / "sft"))
    tokenizer.save_pretrained(str(out / "sft"))
    (out / "sft" / "sft_metrics.json").write_text(strict_json_text(sft_metrics))
    lap("sft", t0)

    score_metrics = {}
    for kind in ("reward", "cost"):
        t0 = time.perf_counter()
        score_metrics[kind] = train_score_model(
            kind, data / "preferences_train.jsonl", out / "sft", out / kind, epochs=cfg.score_epochs,
            lr=cfg.score_lr, batch_size=cfg.score_batch_size, seed=cfg.seed, device=str(torch_device),
            eval_data_path=data / "preferences_test.jsonl", max_length=cfg.context, overwrite=force, log=say)
        lap(kind, t0)

    t0 = time.perf_counter()
    reward = ScoreModel.from_pretrained(out / "reward").to(torch_device)
    cost = ScoreModel.from_pretrained(out / "cost").to(torch_device)
    check_prompts = random.Random(cfg.seed).sample(corpus.test_prompts,
                                                   min(cfg.check_prompts, len(corpus.test_prompts)))
    check = check_policy(policy, reward, cost, tokenizer, check_prompts, cfg, say)
    lap("check", t0)

    def brief(m: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in m.items() if k != "history"}

    manifest = {
        "config": dataclasses.asdict(cfg), "device": str(torch_device), "versions": _versions(),
        "sizes": {"train_prompts": len(corpus.train_prompts), "test_prompts": len(corpus.test_prompts),
                  "train_pairs": len(corpus.train_pairs), "test_pairs": len(corpus.test_pairs),
                  "sft_examples": len(corpus.sft_train), "vocab": len(tokenizer),
                  "policy_parameters": sum(p.numel() for p in policy.parameters())},
        "sft": brief(sft_metrics), "reward": brief(score_metrics["reward"]), "cost": brief(score_metrics["cost"]),
        "sft_policy_check": check, "seconds": {**timings, "total": round(time.perf_counter() - started, 2)},
    }
    (out / "manifest.json").write_text(strict_json_text(manifest))
    say(f"[done] {manifest['seconds']['total']:.0f} s: SFT held-out loss {sft_metrics['eval_loss']:.3f}, "
        f"reward acc {score_metrics['reward']['eval_accuracy']:.3f}, "
        f"cost acc {score_metrics['cost']['eval_accuracy']:.3f} "
        f"({score_metrics['cost']['eval_accuracy_with_unsafe']:.3f} on pairs with an unsafe response), "
        f"cost sign acc {score_metrics['cost']['eval_sign_accuracy']:.3f} -> {out}")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m cmdp.envs.text.make_default --out DIR`: build the default; exit status 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m cmdp.envs.text.make_default", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to create (must be empty unless --force)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke build in seconds")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    parser.add_argument("--force", action="store_true", help="write into a non-empty --out")
    args = parser.parse_args(argv)
    cfg = DefaultConfig.quick(args.seed) if args.quick else DefaultConfig(seed=args.seed)
    try:
        build_default(args.out, cfg, device=args.device, force=args.force)
    except ConfigError as exc:
        print(f"make_default: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
