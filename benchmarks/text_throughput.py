"""Text-side throughput: generated tokens per second and time per PPO iteration (a benchmark, not a test).

    python -m cmdp.benchmarks.text_throughput --default runs/text-demo/seed0/default            # the tiny default, CPU
    python -m cmdp.benchmarks.text_throughput --default DIR --size gpt2-small --device cuda  # GPT-2-small-sized, GPU

`--size tiny` uses the default's own SFT policy, reward and cost models. `--size gpt2-small` builds, with random
weights, a GPT-2 of GPT-2 small's shape (12 layers x 768, 124M parameters with the 50,257-row embedding) for the
policy and for both score models, using the default's tokenizer (ids below 1,000 index the larger embedding), so
the numbers measure the model's cost, not its quality. Each iteration is one epoch of `--algo` (default `ppo_lag`)
through the shared trainer: generate `--responses` answers (through the run's generation backend,
`env_kwargs.generation_backend`, default `hf`), score them, one PPO update. Reported: generated tokens/s, update
tokens/s (the epoch's response tokens over the update's time) and the split of an iteration. The first iteration is
a warm-up and is reported apart.

It also accounts for the memory the run holds after its last update (`memory`): the bytes of the frozen models'
weights (reference, reward and cost models), of the trained models' weights (the policy, and the value models of a
solver with critics), of their gradients and of the optimisers' states, and the process's peak resident memory (CPU)
or the peak CUDA allocation (GPU). `--algo grpo_lag` against the default `ppo_lag` measures what a critic-free
solver saves. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def gpt2_small_models(default: Path, out: Path) -> dict[str, str]:
    """Random GPT-2-small-shaped policy, reward and cost models in `out`, with the default's tokenizer."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from cmdp.envs.text.score_model import ScoreModel

    tokenizer = AutoTokenizer.from_pretrained(str(default / "sft"))
    config = GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    policy = GPT2LMHeadModel(config)
    policy.save_pretrained(str(out / "policy"))
    tokenizer.save_pretrained(str(out / "policy"))
    for kind in ("reward", "cost"):
        score = ScoreModel.from_backbone(out / "policy", kind=kind)
        score.save_pretrained(out / kind)
    return {"policy": str(out / "policy"), "reward_model": str(out / "reward"), "cost_models": str(out / "cost")}


def _tensor_bytes(value: Any) -> int:
    """Bytes of every tensor in a (nested) state dict or list."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def memory_account(trainer: Any, device: str) -> dict[str, Any]:
    """What a text run holds in memory (see the module docstring), in MiB."""
    import resource

    models = trainer.run.models
    frozen = [models.reference, models.reward_model, *models.cost_models.values()]
    trained = [p for p in trainer.agent.parameters() if p.requires_grad]
    mib = 2 ** 20
    account = {
        "frozen_models": len(frozen), "value_models": 0 if trainer.agent.critic is None else
        1 + len(models.cost_models),
        "frozen_weights_mib": sum(_tensor_bytes(list(m.parameters())) for m in frozen) / mib,
        "trained_weights_mib": _tensor_bytes(trained) / mib,
        "trained_parameters": sum(p.numel() for p in trained),
        "gradients_mib": _tensor_bytes([p.grad for p in trained if p.grad is not None]) / mib,
        "optimizer_state_mib": _tensor_bytes(trainer.updater.state_dict()) / mib,
    }
    account["total_mib"] = sum(v for k, v in account.items() if k.endswith("_mib"))
    if device.startswith("cuda"):
        account["peak_cuda_allocated_mib"] = torch.cuda.max_memory_allocated() / mib
    else:
        account["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in account.items()}


def measure(default: Path, size: str, device: str, responses: int, max_new_tokens: int, iters: int,
            generation_batch: int, threads: int, algo: str = "ppo_lag") -> dict[str, Any]:
    from cmdp.trainer import new_run, resolve_config

    work = Path(tempfile.mkdtemp(prefix="cmdp-text-throughput-"))
    try:
        if size == "tiny":
            paths = {"policy": str(default / "sft"), "reward_model": str(default / "reward"),
                     "cost_models": str(default / "cost")}
        else:
            paths = gpt2_small_models(default, work)
        values = {"algo": algo, "env": "text", "device": device, "torch_threads": threads,
                  "total_steps": responses * (iters + 1), "steps_per_epoch": responses, "num_envs": generation_batch,
                  "update_iters": 1, "batch_size": 8, "actor_lr": 1e-5,
                  "env_kwargs": {**paths, "prompts": str(default / "data" / "prompts_train.jsonl"),
                                 "max_new_tokens": max_new_tokens, "eval_batch_size": 16}}
        cfg, _ = resolve_config(values)
        trainer, run_dir = new_run(cfg, str(work / "run"))
        params = sum(p.numel() for p in trainer.agent.actor.parameters())
        rows: list[dict[str, Any]] = []
        trainer.train(run_dir, progress=False, on_epoch=rows.append)
        memory = memory_account(trainer, device)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    timed = rows[1:]

    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in timed]))

    iteration = mean("time_collect_s") + mean("time_update_s")
    return {
        "algo": algo, "size": size, "device": device, "policy_parameters": params, "responses_per_iteration": responses,
        "generation_batch": generation_batch, "max_new_tokens": max_new_tokens, "threads": threads,
        "iterations_timed": len(timed), "mean_response_tokens": mean("response_len"),
        "generated_tokens_per_s": mean("tokens_per_s_generate"),
        # every generated token is scored, trained on and fitted by the critics in the update
        "update_tokens_per_s": round(mean("tokens") / mean("time_update_s"), 1),
        "seconds_per_iteration": round(iteration, 3),
        "seconds_generate": round(mean("time_generate_s"), 3),
        "seconds_score_and_gae": round(mean("time_collect_s") - mean("time_generate_s"), 3),
        "seconds_update": round(mean("time_update_s"), 3),
        "warmup_seconds": round(rows[0]["time_collect_s"] + rows[0]["time_update_s"], 3),
        "memory": memory, "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--default", required=True, help="a built default (python -m cmdp.envs.text.make_default --out DIR)")
    p.add_argument("--size", choices=["tiny", "gpt2-small"], default="tiny")
    p.add_argument("--algo", default="ppo_lag", help="the text solver to run (default ppo_lag; grpo_lag: critic-free)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--responses", type=int, default=64, help="responses per PPO iteration")
    p.add_argument("--generation-batch", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--iters", type=int, default=3, help="timed iterations (after one warm-up)")
    p.add_argument("--threads", type=int, default=max(1, min(8, torch.get_num_threads())))
    args = p.parse_args()
    # libraries log to stdout as they load (DeepSpeed's accelerator notice): stdout carries the JSON only
    with contextlib.redirect_stdout(sys.stderr):
        result = measure(Path(args.default), args.size, args.device, args.responses, args.max_new_tokens, args.iters,
                         args.generation_batch, args.threads, args.algo)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
