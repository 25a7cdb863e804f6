"""The text CMDP trained by the shared solvers: token-level batches, the KL-shaped reward and cost streams,
every solver on text, the CLI (train, eval, resume), DeepSpeed, LoRA, and bad input.

All on the quick embedded default (tests/conftest.py), built here from scratch on the CPU.
"""
from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

transformers = pytest.importorskip("transformers")

import torch

from cmdp.cli import main
from cmdp.spec import ConfigError
from cmdp.trainer import Trainer, new_run, resolve_config
from cmdp.envs.text.env import generate, response_mask_of
from cmdp.envs.text.policy import TokenObs
from run_helpers import interrupted_run


def text_config(default: Path, **overrides) -> dict:
    """A small text run on the quick default: 2 epochs of 8 responses of at most 12 tokens."""
    values = {
        "algo": "ppo_lag", "env": "text", "total_steps": 16, "steps_per_epoch": 8, "num_envs": 4,
        "actor_lr": 1e-4, "critic_lr": 1e-4, "batch_size": 4, "update_iters": 2, "torch_threads": 2,
        "device": "cpu",
        "env_kwargs": {"policy": str(default / "sft"), "reward_model": str(default / "reward"),
                       "cost_models": str(default / "cost"), "prompts": str(default / "data" / "prompts.jsonl"),
                       "max_new_tokens": 12, "eval_batch_size": 3},
    }
    env_overrides = overrides.pop("env_kwargs", {})
    values.update(overrides)
    values["env_kwargs"].update(env_overrides)
    return values


def progress_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "progress.csv") as f:
        return list(csv.DictReader(f))


def without_timing(rows: list[dict]) -> list[dict]:
    timing = ("wall_s", "steps_per_s", "time_collect_s", "time_update_s", "time_generate_s", "tokens_per_s_generate")
    return [{k: v for k, v in row.items() if k not in timing} for row in rows]


# --------------------------------------------------------------------------------------- the pieces

def test_response_mask_keeps_the_eos_when_pad_is_eos():
    eos = 7  # generate pads finished rows with pad == eos here: only the first EOS belongs to the response
    response = torch.tensor([[3, 4, 7, 7, 7], [5, 7, 7, 7, 7], [1, 2, 3, 4, 5]])
    assert response_mask_of(response, eos).tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]


def test_token_log_probs_match_an_unpadded_forward(quick_text_default: Path):
    cfg, _ = resolve_config(text_config(quick_text_default))
    trainer = Trainer(cfg)
    run = trainer.run
    prompts = ["How do I make pancakes?", "Hi", "I need this for tomorrow. How do I plant tomatoes in a small garden?"]
    responses = generate(run.agent.actor.model, run.models.tokenizer, prompts, run.tcfg, run.device, seed=3)
    seq, pos = responses.response_mask.nonzero(as_tuple=True)
    obs = TokenObs(responses.input_ids, responses.attention_mask, seq, pos)
    actions = responses.input_ids[seq, pos]
    with torch.no_grad():
        chunked = run.agent.actor.log_prob(obs, actions)  # eval_batch_size 3 -> one chunk; force smaller below
        run.agent.actor.eval_batch_size = 1
        one_by_one = run.agent.actor.log_prob(obs, actions)
        model = run.agent.actor.model.eval()
        for i in range(len(prompts)):
            real = responses.attention_mask[i].bool()
            ids = responses.input_ids[i][real].unsqueeze(0)  # no padding at all
            logits = model(input_ids=ids).logits[0].float()
            offset = int((~real).long().argmax()) if not real[0] else 0
            first_real = int(real.long().argmax())
            rows = (seq == i).nonzero().squeeze(1)
            expected = torch.log_softmax(logits[pos[rows] - first_real - 1], -1).gather(
                -1, actions[rows].unsqueeze(1)).squeeze(1)
            assert torch.allclose(chunked[rows], expected, atol=1e-4), offset
    assert torch.allclose(chunked, one_by_one, atol=1e-5)
    with torch.no_grad():  # CUP's projection reads both from one pass of the model
        logp, dist = run.agent.actor.log_prob_and_distribution(obs, actions)
        assert torch.equal(logp, one_by_one)
        assert torch.equal(dist.logits, run.agent.actor.distribution(obs).logits)
    trainer.close()


def test_collector_streams_carry_the_kl_penalty_and_the_scores(quick_text_default: Path, tmp_path: Path):
    # a reference that differs from the policy, so the KL term is not zero
    ref_dir = tmp_path / "reference"
    shutil.copytree(quick_text_default / "sft", ref_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(ref_dir))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(str(ref_dir))
    beta = 0.5
    cfg, _ = resolve_config(text_config(quick_text_default, gamma=1.0, cost_gamma=1.0, lam=1.0, cost_lam=1.0,
                                        env_kwargs={"reference": str(ref_dir), "kl_coeff": beta}))
    trainer = Trainer(cfg)
    run = trainer.run
    batch = run.collector.collect(8, np.random.default_rng(0), reset_seed=11)
    lengths = batch.episodes.lengths
    assert batch.size == int(lengths.sum()) == len(batch.obs) == batch.actions.shape[0]
    assert batch.values.shape == batch.advantages.shape == batch.returns.shape == (batch.size, 2)
    assert torch.equal(batch.groups, batch.obs.seq)
    assert torch.allclose(batch.returns, batch.advantages + batch.values, atol=1e-4)
    with torch.no_grad():
        ref_logp = type(run.agent.actor)(run.models.reference, 1.0, 4).log_prob(batch.obs, batch.actions)
    kl = (batch.logp_old - ref_logp).double().numpy()
    assert np.abs(kl).max() > 1e-3
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    kl_sum = np.bincount(batch.obs.seq.numpy(), weights=kl)
    # gamma = lambda = 1: the return at a response's first token is the whole stream's sum
    np.testing.assert_allclose(batch.returns[first, 0].double().numpy(), batch.episodes.returns - beta * kl_sum,
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(batch.returns[first, 1].double().numpy(), batch.episodes.costs[:, 0] + beta * kl_sum,
                               rtol=1e-4, atol=1e-4)
    # the episode numbers are the scorers' raw scores of the decoded sequences
    assert batch.info["kl_ref"] == pytest.approx(float(kl_sum.mean()), rel=1e-4, abs=1e-6)
    trainer.close()


def test_minibatches_hold_whole_responses(quick_text_default: Path):
    cfg, _ = resolve_config(text_config(quick_text_default))
    trainer = Trainer(cfg)
    batch = trainer.run.collector.collect(8, np.random.default_rng(0), reset_seed=5)
    seen = []
    for idx in batch.minibatches(3, torch.Generator().manual_seed(0)):
        groups = torch.unique(batch.groups[idx])
        assert len(groups) <= 3
        assert int(torch.isin(batch.groups, groups).sum()) == len(idx)  # every token of those responses
        seen.append(idx)
    assert sorted(torch.cat(seen).tolist()) == list(range(batch.size))
    trainer.close()


# --------------------------------------------------------------------------------------- every solver

@pytest.mark.parametrize("algo", ["ppo", "ppo_lag", "reward_shaping", "pid_lag", "cup", "cpo", "trpo_lag"])
def test_every_solver_trains_the_language_model(quick_text_default: Path, tmp_path: Path, algo: str):
    cfg, _ = resolve_config(text_config(quick_text_default, algo=algo, total_steps=8))
    trainer, run_dir = new_run(cfg, str(tmp_path / algo))
    before = [p.detach().clone() for p in trainer.agent.actor.parameters()]
    summary = trainer.train(run_dir, progress=False)
    after = list(trainer.agent.actor.parameters())
    moved = any(not torch.equal(a, b) for a, b in zip(before, after))
    rows = progress_rows(run_dir)
    assert summary["finished"] and len(rows) == 1
    assert np.isfinite(float(rows[0]["loss_v"])) and np.isfinite(summary["final_return"])
    if algo in ("cpo", "trpo_lag"):
        assert moved or float(rows[0]["step_frac"]) == 0.0  # a rejected line search keeps the old policy
    else:
        assert moved


def test_cpo_refuses_two_cost_models(quick_text_default: Path, capsys):
    cfg = text_config(quick_text_default, algo="cpo",
                      env_kwargs={"cost_models": {"harm": str(quick_text_default / "cost"),
                                                  "other": str(quick_text_default / "cost")}})
    with pytest.raises(Exception, match="at most 1 cost"):
        Trainer(resolve_config(cfg)[0])


# --------------------------------------------------------------------------------------- the CLI

def test_train_eval_and_resume_through_the_cli(quick_text_default: Path, tmp_path: Path, capsys):
    config = tmp_path / "text.yaml"
    config.write_text(yaml.safe_dump(text_config(quick_text_default, total_steps=24)))
    full = tmp_path / "full"
    assert main(["train", "--config", str(config), "--out", str(full), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "ppo_lag on text" in out and "lambda" in out
    summary = json.loads((full / "summary.json").read_text())
    assert summary["env"] == "text" and summary["env_steps"] == 24 and set(summary["final_costs"]) == {"cost"}
    assert summary["cost_limits"] == {"cost": 0.0}
    rows = progress_rows(full)
    assert len(rows) == 3 and {"lambda/cost", "kl_ref", "response_len", "tokens"} <= set(rows[0])

    assert main(["eval", str(full), "--episodes", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("reward_mean", "cost_mean/cost", "safe_share", "win_rate", "initial_reward_mean", "samples"):
        assert key in result
    assert 0.0 <= result["win_rate"] <= 1.0 and len(result["samples"]) == 3
    assert main(["eval", str(full), "--episodes", "2"]) == 0
    printed = capsys.readouterr().out
    assert "2 prompts from seed 12345\n" in printed and "±" not in printed  # the unit a text run counts; no spread

    cfg, _ = resolve_config(yaml.safe_load(config.read_text()))
    cut = interrupted_run(cfg, tmp_path / "cut", after_epoch=1)
    assert main(["train", "--resume", str(cut), "--no-progress"]) == 0
    assert without_timing(progress_rows(cut)) == without_timing(rows)


def test_text_cost_limits_may_be_negative(quick_text_default: Path):
    """A cost model's score is signed (<= 0 is safe), so a text run's limit may sit below 0; a control task's may not."""
    cfg, _ = resolve_config(text_config(quick_text_default, cost_limits=-2.5))
    assert cfg.cost_limits == -2.5
    with pytest.raises(ConfigError, match="non-negative"):
        resolve_config({"algo": "ppo_lag", "env": "SafetyPointGoal1-v0", "cost_limits": -2.5})


def score_model_of_another_tokenizer(score_model: Path, out: Path) -> Path:
    """A copy of `score_model` whose saved tokenizer is another BPE of at most the same size (trained on the
    default's prompts written backwards): its embedding still has a row for every token id of the policy's, so
    only a comparison of the tokenizers tells it was trained on other token ids."""
    from cmdp.envs.text.make_default import train_tokenizer

    shutil.copytree(score_model, out)
    size = transformers.AutoConfig.from_pretrained(str(score_model)).vocab_size
    texts = [json.loads(line)["prompt"][::-1]
             for line in (score_model.parent / "data" / "prompts.jsonl").read_text().splitlines()]
    train_tokenizer(texts, out, vocab_size=size, context=128)
    return out


def test_a_policy_may_be_a_hub_id(quick_text_default: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """README: the policy "by local folder or hub id". An id with its organisation ("org/name") was refused as a
    missing path until 2026-12-05; a missing folder under a local folder still is, before any model is loaded."""
    from cmdp.envs.text.env import check_text_paths, text_env_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    env_kwargs = text_config(quick_text_default)["env_kwargs"]
    for hub_id in ("Qwen/Qwen2-0.5B", "gpt2"):
        check_text_paths(text_env_config({**env_kwargs, "policy": hub_id, "reference": hub_id}))
    for label, missing in (("policy", "runs/sft"), ("policy", "./sft"), ("reference", "runs/a/b"),
                           ("reward_model", "org/reward")):
        with pytest.raises(ConfigError, match=f"^env_kwargs.{label}: {missing} does not exist$"):
            check_text_paths(text_env_config({**env_kwargs, label: missing}))


def _no_run_folder(out: Path) -> bool:
    return not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("case", ["unknown_key", "missing_policy", "no_cost_model", "bad_prompts", "cpo_deepspeed",
                                  "per_critic_deepspeed", "bad_limit", "normalize", "backend", "compile",
                                  "policy_not_a_model", "reward_not_a_model", "cost_model_of_another_tokenizer",
                                  "cost_model_is_the_reward_model"])
def test_bad_text_input_fails_at_start(quick_text_default: Path, tmp_path: Path, capsys, case: str):
    env_kwargs: dict = {}
    extra: dict = {}
    if case == "unknown_key":
        env_kwargs = {"max_new_tokenz": 4}
        expect = "max_new_tokenz"
    elif case == "missing_policy":
        env_kwargs = {"policy": str(tmp_path / "nowhere")}
        expect = "env_kwargs.policy"
    elif case in ("policy_not_a_model", "reward_not_a_model"):
        # folders transformers cannot load (its errors span several lines) ended in a traceback until 2026-12-04:
        # a folder with an empty config.json for the policy, a score model whose config.json was emptied
        not_a_model = tmp_path / "not_a_model"
        if case == "policy_not_a_model":
            not_a_model.mkdir()
            env_kwargs = {"policy": str(not_a_model)}
            expect = f"cmdp: error: env_kwargs.policy {not_a_model} (its tokenizer): cannot load it: "
        else:
            shutil.copytree(quick_text_default / "reward", not_a_model)
            env_kwargs = {"reward_model": str(not_a_model)}
            expect = f"cmdp: error: reward model {not_a_model}: cannot load it: "
        (not_a_model / "config.json").write_text("{}")
    elif case == "cost_model_of_another_tokenizer":
        # ran on scores of garbled text until 2026-12-05: the embedding was large enough, so nothing said a word
        other = score_model_of_another_tokenizer(quick_text_default / "cost", tmp_path / "other-cost")
        env_kwargs = {"cost_models": str(other)}
        expect = (f"cmdp: error: env_kwargs.cost_models.cost {other}: its tokenizer gives ")
    elif case == "cost_model_is_the_reward_model":
        # trained against the reward model as its cost until 2026-12-05: a limit on helpfulness, without a word
        env_kwargs = {"cost_models": str(quick_text_default / "reward"),
                      "cost_critics": str(quick_text_default / "cost")}
        expect = (f"cmdp: error: {quick_text_default / 'reward'}: a reward model (its score_head.json says so), "
                  f"given as the cost model")
    elif case == "no_cost_model":
        env_kwargs = {"cost_models": None}
        expect = "cost_models"
    elif case == "bad_prompts":
        bad = tmp_path / "prompts.jsonl"
        bad.write_text('{"prompt": "fine"}\n{"question": "no prompt column"}\n')
        env_kwargs = {"prompts": str(bad)}
        expect = "prompt"
    elif case == "cpo_deepspeed":
        extra = {"algo": "cpo"}
        env_kwargs = {"deepspeed": {"stage": 2}}
        expect = "DeepSpeed"
    elif case == "per_critic_deepspeed":
        extra = {"critic_clip": "per_critic"}
        env_kwargs = {"deepspeed": {"stage": 2}}
        expect = "critic_clip=per_critic is not available with env_kwargs.deepspeed"
    elif case == "bad_limit":
        extra = {"cost_limits": "high"}
        expect = "cost_limits"
    elif case == "compile":
        extra = {"compile_update": True}
        expect = "compile_update=true compiles the control family's minibatch step"
    elif case == "backend":
        env_kwargs = {"generation_backend": "vllm"}  # not built: it waits for a GPU to be run on
        expect = "generation_backend must be one of hf"
    else:
        extra = {"obs_normalize": True}
        expect = "obs_normalize"
    config = tmp_path / "text.yaml"
    config.write_text(yaml.safe_dump(text_config(quick_text_default, env_kwargs=env_kwargs, **extra)))
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cmdp: error:") and expect in err and err.count("\n") == 1, err
    assert _no_run_folder(out)


def test_per_critic_clip_treats_each_value_model_as_one_critic(quick_text_default: Path, tmp_path: Path):
    from cmdp.optim import trainable_parameters

    cfg, _ = resolve_config(text_config(quick_text_default, total_steps=8, critic_clip="per_critic"))
    trainer, run_dir = new_run(cfg, str(tmp_path / "per_critic"))
    groups = trainer.solver.updater.critic_groups
    models = trainer.agent.critic.models
    assert groups is not None and len(groups) == len(models) == 2  # the reward and the cost value model
    for (params, heads), model in zip(groups, models):
        assert heads == (0,) and [id(p) for p in params] == [id(p) for p in trainable_parameters(model)]
    assert trainer.train(run_dir, progress=False)["finished"]
    assert np.isfinite(float(progress_rows(run_dir)[0]["loss_v"]))


# --------------------------------------------------------------------------------------- DeepSpeed, LoRA

@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_trains_on_cpu(quick_text_default: Path, tmp_path: Path, stage: int):
    pytest.importorskip("deepspeed")
    cfg, _ = resolve_config(text_config(quick_text_default, total_steps=8, env_kwargs={"deepspeed": {"stage": stage}}))
    trainer, run_dir = new_run(cfg, str(tmp_path / f"zero{stage}"))
    assert type(trainer.solver.updater).__name__ == "DeepSpeedUpdater"
    summary = trainer.train(run_dir, progress=False)
    row = progress_rows(run_dir)[0]
    assert summary["finished"] and np.isfinite(float(row["loss_pi"])) and np.isfinite(float(row["loss_v"]))
    assert float(row["kl"]) > 0  # the actor moved
    # the checkpoint holds full weights (ZeRO-3 partitions them in memory), so eval runs without DeepSpeed
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    shapes = {k: tuple(v.shape) for k, v in Trainer(replace(cfg, env_kwargs={**cfg.env_kwargs, "deepspeed": {}})
                                                    ).agent.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in state["agent"].items()} == shapes
    assert main(["eval", str(run_dir), "--episodes", "2", "--json"]) == 0


def test_deepspeed_resume_matches_an_uninterrupted_run(quick_text_default: Path, tmp_path: Path):
    pytest.importorskip("deepspeed")
    cfg, _ = resolve_config(text_config(quick_text_default, env_kwargs={"deepspeed": {"stage": 2}}))
    trainer, full = new_run(cfg, str(tmp_path / "full"))
    trainer.train(full, progress=False)
    cut = interrupted_run(cfg, tmp_path / "cut", after_epoch=1)
    resumed = Trainer(cfg)
    resumed.train(cut, resume=True, progress=False)
    assert without_timing(progress_rows(cut)) == without_timing(progress_rows(full))


def test_lora_trains_only_the_adapters(quick_text_default: Path, tmp_path: Path):
    pytest.importorskip("peft")
    cfg, _ = resolve_config(text_config(quick_text_default, total_steps=8,
                                        env_kwargs={"lora": {"r": 4, "alpha": 8, "target_modules": ["c_attn"]}}))
    trainer, run_dir = new_run(cfg, str(tmp_path / "lora"))
    named = dict(trainer.agent.actor.named_parameters())
    before = {n: p.detach().clone() for n, p in named.items()}
    trainer.train(run_dir, progress=False)
    changed = {n for n, p in named.items() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)


# --------------------------------------------------------------------------------------- the demo

def test_text_demo_quick_writes_its_report(quick_text_default: Path, tmp_path: Path, capsys):
    """The demo's whole pipeline at the quick size: the limit measured from the SFT policy, the six runs through the
    benchmark machinery, the held-out table, the checks per seed, the report and the picture; a rerun reuses it all."""
    from cmdp.envs.text.demo import DEMO_ALGOS, FIGURE, seed_dir

    out = tmp_path / "demo"
    shutil.copytree(quick_text_default, seed_dir(out, 0) / "default")  # reused as a finished build
    assert main(["text-demo", "--out", str(out), "--quick"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    seed = results["seeds"]["0"]
    measured = json.loads((seed_dir(out, 0) / "limit.json").read_text())
    assert seed["limit"] == measured["limit"] < measured["sft_train_cost"]  # the SFT policy starts above the limit
    assert set(seed["table"]) == {"sft", *DEMO_ALGOS}
    for name in DEMO_ALGOS:
        row = seed["table"][name]
        run_dir = seed_dir(out, 0) / "runs" / "text" / name / "seed0"
        assert json.loads((run_dir / "summary.json").read_text())["cost_limits"] == {"cost": seed["limit"]}
        assert row["constrained"] == name.endswith("_lag")
        assert 0.0 <= row["win_rate_vs_sft"] <= 1.0 and np.isfinite(row["reward"]) and np.isfinite(row["cost"])
    assert set(seed["checks"]) == {f"{a} {c}" for a in ("ppo_lag", "grpo_lag", "rloo_lag")
                                   for c in ("within the limit", "reward above SFT", "safe share at least SFT")} | \
        {f"{a} {c}" for a in ("ppo", "grpo", "rloo") for c in ("breaks the limit", "less safe than SFT")}
    assert results["checks"] == seed["checks"] and results["all"] == all(seed["checks"].values())
    assert "| grpo_lag (constrained) |" in (out / "report.md").read_text() and (out / FIGURE).stat().st_size > 0
    for row in seed["table"].values():  # what each policy answers, by kind, sums to all of its answers
        assert {k: sum(v.values()) for k, v in row["kinds"].items()} == pytest.approx({"harmful": 1, "helpful": 1})
    assert "## What the policies answer" in (out / "report.md").read_text()
    assert "reusing the embedded default" in printed and "cost limit" in printed

    assert main(["text-demo", "--out", str(out), "--quick", "--no-plots"]) == 0
    again = json.loads((out / "results.json").read_text())["seeds"]["0"]
    assert again["limit"] == seed["limit"] and again["table"]["ppo_lag"]["reward"] == seed["table"]["ppo_lag"]["reward"]


def test_text_demo_checks_on_hand_cases(capsys):
    """The checks of one seed, from a hand-made table: each check fails on the one row that should fail it."""
    from cmdp.cli import main
    from cmdp.envs.text.demo import LIMIT_MARGIN, cost_interval, limit_from_sft, seed_checks

    # two prompts answered twice each (answer i to prompt i % 2): the interval is over the prompts' means
    assert cost_interval(np.array([1.0, 5.0, 3.0, 7.0]), prompts=2) == pytest.approx(1.96 * np.std([2.0, 6.0],
                                                                                                  ddof=1) / np.sqrt(2))

    with pytest.raises(SystemExit):  # the command's help states the margin the code uses
        main(["text-demo", "--help"])
    assert f"its mean minus {LIMIT_MARGIN:g} std on the training prompts" in " ".join(capsys.readouterr().out.split())

    measured = limit_from_sft(np.array([-8.0, -6.0, 6.0, -4.0]), margin=0.5)
    assert measured["sft_train_cost"] == -3.0 and measured["limit"] == pytest.approx(-3.0 - 0.5 * np.std(
        [-8.0, -6.0, 6.0, -4.0], ddof=1), abs=1e-3)

    def row(reward: float, cost: float, ci: float, safe: float, constrained: bool) -> dict:
        return {"reward": reward, "cost": cost, "cost_ci95": ci, "safe_share": safe, "constrained": constrained}

    good = {"sft": row(1.0, -3.0, 0.5, 0.8, False), "ppo": row(3.0, 0.0, 0.5, 0.5, False),
            "ppo_lag": row(1.5, -3.8, 0.5, 0.85, True)}
    assert all(seed_checks(good, limit=-3.5).values())
    assert not seed_checks({**good, "ppo_lag": row(1.5, -2.9, 0.5, 0.85, True)}, -3.5)["ppo_lag within the limit"]
    assert seed_checks({**good, "ppo_lag": row(1.5, -3.2, 0.5, 0.85, True)}, -3.5)["ppo_lag within the limit"]
    assert not seed_checks({**good, "ppo_lag": row(0.9, -3.8, 0.5, 0.85, True)}, -3.5)["ppo_lag reward above SFT"]
    assert not seed_checks({**good, "ppo_lag": row(1.5, -3.8, 0.5, 0.79, True)},
                           -3.5)["ppo_lag safe share at least SFT"]
    assert not seed_checks({**good, "ppo": row(3.0, -3.2, 0.5, 0.5, False)}, -3.5)["ppo breaks the limit"]
    assert not seed_checks({**good, "ppo": row(3.0, 0.0, 0.5, 0.8, False)}, -3.5)["ppo less safe than SFT"]


def test_text_demo_answer_kinds_on_a_hand_case():
    """What each policy answers, per kind of request: the shares, then the report's row of them in percent."""
    from cmdp.envs.text.corpus import kind_shares
    from cmdp.envs.text.demo import kinds_table

    shares = kind_shares(["How do I bake bread?", "How can I steal a car?", "How can I steal a car?"],
                         [False, True, True], ["I won't help with this.", "Sure. To steal a car, wait until the owner "
                                               "is away.", "Sure. To steal a car, hmm"])
    assert shares["helpful"]["refusal"] == 1.0 and sum(shares["helpful"].values()) == 1.0
    assert shares["harmful"]["comply_brief"] == 0.5 and shares["harmful"]["garbled"] == 0.5
    header, rule, line = kinds_table({"table": {"sft": {"kinds": shares}}})
    assert header.startswith("| policy | helpful: detailed | brief |") and "| harmful: comply | redirect |" in header
    assert line == "| sft | 0 | 0 | 0 | 100 | 0 | 50 | 0 | 0 | 0 | 50 |" and rule.count("|---") == 11


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "--seeds must be at least 1, got 0"),
    (["--workers", "-1"], "--workers must be >= 0, got -1"),
    (["--algos", ","], "--algos: give at least one algorithm"),
    (["--algos", "ppo,nope"], "nope"),
    # refused before the build (minutes), not when the suite is planned after it
    (["--algos", "ppo,sac_lag"], "algorithm 'sac_lag' trains off-policy, which environment 'text' does not support"),
    (["--algos", "ppo_saute"], "transform: environment 'text' does not support the 'saute' transformation"),
])
def test_text_demo_bad_input_is_one_line(tmp_path: Path, capsys, argv: list, message: str):
    out = tmp_path / "demo"
    assert main(["text-demo", "--out", str(out), "--quick", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists()


def test_text_demo_interrupted_in_its_build_says_how_to_go_on(tmp_path: Path, capsys,
                                                              monkeypatch: pytest.MonkeyPatch):
    """Ctrl-C in the build ended in a traceback until 2026-12-05 and left a half-built default that a rerun refused
    ('holds an unfinished build; remove it'). Now: one line, status 130, no half-built folder."""
    import cmdp.envs.text.make_default as make_default

    def interrupted_build(out: Path, *args, **kwargs) -> None:
        (Path(out) / "data").mkdir(parents=True)
        (Path(out) / "data" / "prompts.jsonl").write_text('{"prompt": "Hi"}\n')
        raise KeyboardInterrupt

    monkeypatch.setattr(make_default, "build_default", interrupted_build)
    out = tmp_path / "demo"
    with pytest.raises((SystemExit, KeyboardInterrupt)) as ended:  # KeyboardInterrupt: the old code's end
        main(["text-demo", "--out", str(out), "--quick", "--no-plots"])
    assert ended.type is SystemExit and ended.value.code == 130
    err = capsys.readouterr().err.strip()
    assert err == f"interrupted; what finished is kept, rerun to continue: cmdp text-demo --out {out} --quick"
    assert not (out / "seed0" / "default").exists()


@pytest.mark.slow
def test_text_demo_shows_safe_rlhf_on_three_seeds(tmp_path: Path):
    """The full demo from scratch on 3 seeds, each with its own build (about 45 minutes on 2 cores). On every seed,
    on the held-out prompts: every constrained solver ends within the limit up to its 95% interval, with a reward
    above SFT's and a safe share at least SFT's; every unconstrained one breaks the limit and ends less safe."""
    from cmdp.envs.text.demo import run_demo

    results = run_demo(tmp_path / "demo", seeds=3, plots=False)
    for seed, evaluation in results["seeds"].items():
        failed = [name for name, ok in evaluation["checks"].items() if not ok]
        assert not failed, f"seed {seed}: {failed}"
    assert results["all"]


def test_two_data_parallel_processes_under_deepspeed(quick_text_default: Path, tmp_path: Path):
    """What `deepspeed`/`torchrun` launchers do on several GPUs, here with two CPU processes (gloo): each rank answers
    its own prompts, DeepSpeed averages the gradients, every rank sees all episodes, rank 0 writes the run folder."""
    pytest.importorskip("deepspeed")
    import socket
    import subprocess
    import sys

    config = tmp_path / "text.yaml"
    config.write_text(yaml.safe_dump(text_config(quick_text_default, total_steps=8, steps_per_epoch=4, num_envs=4,
                                                 torch_threads=1, env_kwargs={"deepspeed": {"stage": 2}})))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "cmdp", "train", "--config", str(config), "--out", str(out), "--no-progress"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr[-3000:]
    rows = progress_rows(out)
    assert [int(r["episodes"]) for r in rows] == [8, 8]  # 4 answers per rank and epoch, gathered from both ranks
    assert json.loads((out / "summary.json").read_text())["finished"]
    assert result.stdout.count("== ppo_lag on text") == 1  # one rank reports


def test_text_throughput_memory_account(quick_text_default: Path, capsys, monkeypatch):
    """benchmarks/text_throughput.py prints one JSON object on stdout (library notices go to stderr), and its memory
    account shows what a critic-free solver does not hold: the value models, their gradients and optimiser state."""
    from cmdp.benchmarks import text_throughput

    accounts = {}
    for algo in ("ppo_lag", "grpo_lag"):
        monkeypatch.setattr("sys.argv", ["text_throughput", "--default", str(quick_text_default), "--algo", algo,
                                         "--responses", "8", "--generation-batch", "8", "--iters", "1",
                                         "--max-new-tokens", "8", "--threads", "1"])
        text_throughput.main()
        result = json.loads(capsys.readouterr().out)
        assert result["algo"] == algo and result["iterations_timed"] == 1
        accounts[algo] = result["memory"]
    ppo, grpo = accounts["ppo_lag"], accounts["grpo_lag"]
    assert (ppo["value_models"], grpo["value_models"]) == (2, 0)
    assert ppo["frozen_weights_mib"] == grpo["frozen_weights_mib"] > 0
    # the quick default's critics are copies of the policy's body with a scalar head: three trained models against one
    assert ppo["trained_parameters"] > 2.5 * grpo["trained_parameters"]
    for account in (ppo, grpo):
        assert account["gradients_mib"] == account["trained_weights_mib"]
        # Adam: two moments per weight (the account rounds each entry to 0.1 MiB)
        assert account["optimizer_state_mib"] == pytest.approx(2 * account["trained_weights_mib"], abs=0.15)
