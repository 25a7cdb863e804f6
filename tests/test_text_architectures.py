"""The model families people fine-tune, beside GPT-2: Llama, Qwen2 and Mistral causal LMs (and score models on the
same backbones) through the normal text env path, `from_pretrained` on local folders.

Every model here is a tiny random one of the real architecture (hidden 32, 2 layers, 4 attention heads sharing 2 KV
heads; `text_helpers.save_tiny_architecture`), with a tokenizer shaped like the family's: Llama with no pad token and
no chat template, Qwen2 with ChatML, Mistral with an [INST] template and no pad token. Nothing is downloaded.

Checked per architecture: left padding and pad == EOS where the tokenizer has no pad token, the prompt format (the
tokenizer's own chat template, the built-in one otherwise), padded log-probabilities and scores equal to unpadded
ones, one epoch of `ppo_lag` and of `grpo_lag` with and without LoRA (default targets: every attention and MLP
projection), and DeepSpeed ZeRO-2 and ZeRO-3 on the CPU.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

import torch

from cmdp.cli import main
from cmdp.spec import ConfigError
from cmdp.trainer import Trainer, new_run, resolve_config
from cmdp.envs.text import corpus as corpus_lib
from cmdp.envs.text.chat import encode_example, encode_prompt, format_prompt, pad_batch
from cmdp.envs.text.data import write_rows
from cmdp.envs.text.env import LORA_TARGET_MODULES, generate, lora_target_modules, sequence_scores
from cmdp.envs.text.make_default import train_tokenizer
from cmdp.envs.text.policy import TokenObs, position_ids_from_mask
from cmdp.envs.text.score_model import ScoreModel, train_score_model
from text_helpers import ARCHITECTURES, save_tiny_architecture, write_preference_files

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# ------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("architectures")


@pytest.fixture(scope="module")
def corpus() -> corpus_lib.Corpus:
    return corpus_lib.make_corpus(seed=0, n_helpful=24, n_harmful=24, pairs_per_prompt=1)


@pytest.fixture(scope="module")
def base_tokenizer(corpus: corpus_lib.Corpus, workdir: Path):
    """Our byte-level BPE (<pad>, <bos>, <eos>) on the generated corpus; the architectures' tokenizers share it."""
    texts = [format_prompt(p) + " " + r for p, r in corpus.sft_train] + corpus.texts()
    return train_tokenizer(texts, workdir / "tokenizer", vocab_size=600, context=128)


@pytest.fixture(scope="module")
def prompts_file(corpus: corpus_lib.Corpus, workdir: Path) -> Path:
    path = workdir / "prompts.jsonl"
    write_rows(path, [{"prompt": p.text} for p in corpus.train_prompts])
    return path


@pytest.fixture(scope="module")
def tiny(base_tokenizer, workdir: Path):
    """arch -> {"policy", "reward", "cost"} folders, each built once per module on first use."""
    built: dict[str, dict[str, Path]] = {}

    def get(arch: str) -> dict[str, Path]:
        if arch not in built:
            built[arch] = save_tiny_architecture(arch, base_tokenizer, workdir / arch)
        return built[arch]

    return get


def arch_config(paths: dict[str, Path], prompts: Path, algo: str = "ppo_lag", **overrides) -> dict:
    """One tiny epoch: 8 responses of at most 10 tokens, generated 4 at a time, minibatches of 4 responses."""
    values = {
        "algo": algo, "env": "text", "total_steps": 8, "steps_per_epoch": 8, "num_envs": 4,
        "actor_lr": 1e-3, "critic_lr": 1e-3, "batch_size": 4, "update_iters": 2, "torch_threads": 1,
        "device": "cpu",
        "env_kwargs": {"policy": str(paths["policy"]), "reward_model": str(paths["reward"]),
                       "cost_models": str(paths["cost"]), "prompts": str(prompts), "max_new_tokens": 10,
                       "eval_batch_size": 4},
    }
    if algo.startswith("grpo"):
        values["group_size"] = 4  # 2 prompts x 4 answers per epoch
    env_overrides = overrides.pop("env_kwargs", {})
    values.update(overrides)
    values["env_kwargs"].update(env_overrides)
    return values


def snapshot(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Every agent parameter, whole (ZeRO-3 partitions them; the updater gathers them)."""
    with trainer.updater.gathered(trainer.agent):
        return {n: p.detach().clone() for n, p in trainer.agent.named_parameters()}


def progress_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "progress.csv") as f:
        return list(csv.DictReader(f))


def assert_multiplier_moved_on_the_cost(run_dir: Path) -> None:
    """The first epoch's multiplier moved from its initial 1.0 in the direction of (mean cost - limit 0)."""
    row = progress_rows(run_dir)[0]
    cost, lam = float(row["ep_cost"]), float(row["lambda/cost"])
    assert np.isfinite(cost) and cost != 0.0
    assert np.sign(lam - 1.0) == np.sign(cost), (lam, cost)


# ---------------------------------------------------------------------- tokenizer, format, padding

PROMPTS = ["How do I make pancakes?", "Hi", "I need this for tomorrow. How do I plant tomatoes in a small garden?"]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_padding_and_prompt_format_through_the_text_env(arch: str, tiny, prompts_file: Path) -> None:
    paths = tiny(arch)
    cfg, _ = resolve_config(arch_config(paths, prompts_file))
    trainer = Trainer(cfg)
    run = trainer.run
    tokenizer = run.models.tokenizer
    policy = run.agent.actor.model
    assert policy.config.model_type == arch
    assert tokenizer.padding_side == "left"
    if arch == "qwen2":  # a pad token of its own is kept
        assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.pad_token_id != tokenizer.eos_token_id
    else:  # none in the folder: pad with EOS
        assert transformers.AutoTokenizer.from_pretrained(str(paths["policy"])).pad_token is None
        assert tokenizer.pad_token_id == tokenizer.eos_token_id is not None

    # the prompt format: the tokenizer's own chat template when it has one, else the built-in one
    prompt, response = "How do I bake bread?", "Mix flour and water."
    ids, start = encode_example(tokenizer, prompt, response, 128)
    text = tokenizer.decode(ids)
    if arch == "llama":
        assert tokenizer.chat_template is None
        assert text == "<bos>" + format_prompt(prompt) + " " + response + "<eos>"
    else:
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": prompt},
                                                  {"role": "assistant", "content": response}], tokenize=False)
        expected = {"qwen2": f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n{response}<|im_end|>",
                    "mistral": f"<bos>[INST] {prompt} [/INST] {response}<eos>"}[arch]
        assert text == expected and rendered.startswith(expected)
        generation_prompt = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                          add_generation_prompt=True)
        assert tokenizer.decode(ids[:start]) == generation_prompt
    assert ids[:start] == encode_prompt(tokenizer, prompt)
    assert tokenizer.decode(ids[start:], skip_special_tokens=True).strip() == response

    # generation: left-padded prompt blocks in that format, then the responses
    responses = generate(policy, tokenizer, PROMPTS, run.tcfg, run.device, seed=3)
    width = responses.prompt_length
    for i, p in enumerate(PROMPTS):
        encoded = encode_prompt(tokenizer, p)
        pad = width - len(encoded)
        assert responses.attention_mask[i, :width].tolist() == [0] * pad + [1] * len(encoded)
        assert responses.input_ids[i, :pad].eq(tokenizer.pad_token_id).all()
        assert responses.input_ids[i, pad:width].tolist() == encoded
    assert responses.attention_mask[:, 0].eq(0).any()  # the prompts differ in length: some row is padded

    # log-probabilities and scores of the padded batch equal those of each sequence alone, unpadded
    seq, pos = responses.response_mask.nonzero(as_tuple=True)
    obs = TokenObs(responses.input_ids, responses.attention_mask, seq, pos)
    actions = responses.input_ids[seq, pos]
    with torch.no_grad():
        logp = run.agent.actor.log_prob(obs, actions)
        scores = sequence_scores(run.models.reward_model, responses, 4)
        for i in range(len(PROMPTS)):
            real = responses.attention_mask[i].bool()
            alone = responses.input_ids[i][real].unsqueeze(0)
            first = int(real.long().argmax())
            logits = policy(input_ids=alone).logits[0].float()
            rows = (seq == i).nonzero().squeeze(1)
            expected = torch.log_softmax(logits[pos[rows] - first - 1], -1).gather(-1, actions[rows, None]).squeeze(1)
            assert torch.allclose(logp[rows], expected, atol=1e-4)
            assert scores[i].item() == pytest.approx(run.models.reward_model(alone).end_scores.item(), abs=1e-4)
    assert scores.std() > 0  # a random head still tells the answers apart
    trainer.close()


# ----------------------------------------------------------------------------- solvers, LoRA

def _combinations() -> list:
    """Every architecture x {ppo_lag, grpo_lag} x {LoRA, none}, all in the default run (0.5-1.5 s each on 2 cores)."""
    return [pytest.param(arch, algo, lora, id=f"{arch}-{algo}-{'lora' if lora else 'full'}")
            for arch in ARCHITECTURES for algo in ("ppo_lag", "grpo_lag") for lora in (False, True)]


@pytest.mark.parametrize("arch,algo,lora", _combinations())
def test_solvers_train_each_architecture(arch: str, algo: str, lora: bool, tiny, prompts_file: Path,
                                         tmp_path: Path) -> None:
    peft_lora = {"lora": {"r": 4, "alpha": 8}} if lora else {}
    if lora:
        pytest.importorskip("peft")
    cfg, _ = resolve_config(arch_config(tiny(arch), prompts_file, algo, env_kwargs=peft_lora))
    trainer, run_dir = new_run(cfg, str(tmp_path / "run"))
    actor = trainer.agent.actor
    trainable = {n for n, p in actor.named_parameters() if p.requires_grad}
    if lora:  # adapters on every attention and MLP projection of both layers, and only they train
        assert trainable and all("lora_" in n for n in trainable)
        adapted = {(n.split(".layers.")[1].split(".")[0], n.split(".lora_")[0].rsplit(".", 1)[1]) for n in trainable}
        assert adapted == {(str(layer), proj) for layer in range(2) for proj in PROJECTIONS}
    else:
        assert trainable == {n for n, _ in actor.named_parameters()}
    if algo == "grpo_lag":
        assert trainer.agent.critic is None  # critic-free: no value model loaded
    before = snapshot(trainer)
    summary = trainer.train(run_dir, progress=False)
    after = snapshot(trainer)
    assert summary["finished"] and np.isfinite(summary["final_return"])
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    actor_changed = {n.removeprefix("actor.") for n in changed if n.startswith("actor.")}
    assert actor_changed == trainable  # every trainable tensor moved, nothing frozen did
    if algo == "ppo_lag":
        critic = {n for n in before if n.startswith("critic.")}
        assert critic and critic <= changed  # the reward and cost critics (score models on the same backbone)
    assert_multiplier_moved_on_the_cost(run_dir)


# ------------------------------------------------------------------------------------------- DeepSpeed

def _zero_combinations() -> list:
    """Every architecture x ZeRO-2/3 x {full, LoRA}: each 1 to 5 s on 2 cores (the first DeepSpeed test of a process
    pays about 8 s more for its setup). ZeRO-3 with LoRA behaves alike on every architecture (PEFT on partitioned
    frozen weights), so beyond Llama it runs with the slow tests."""
    out = []
    for arch in ARCHITECTURES:
        for stage in (2, 3):
            for lora in (False, True):
                marks = [pytest.mark.slow] if stage == 3 and lora and arch != "llama" else []
                out.append(pytest.param(arch, stage, lora, marks=marks,
                                        id=f"{arch}-zero{stage}-{'lora' if lora else 'full'}"))
    return out


@pytest.mark.parametrize("arch,stage,lora", _zero_combinations())
def test_deepspeed_zero_on_each_architecture(arch: str, stage: int, lora: bool, tiny, prompts_file: Path,
                                             tmp_path: Path) -> None:
    """ppo_lag under ZeRO-2 or ZeRO-3 (one CPU process), full or LoRA: what trains moves, nothing else does, and the
    checkpoint holds the full trained weights."""
    pytest.importorskip("deepspeed")
    env_kwargs: dict = {"deepspeed": {"stage": stage}, "max_new_tokens": 6}
    if lora:
        pytest.importorskip("peft")
        env_kwargs["lora"] = {"r": 4, "alpha": 8}
    # half the usual epoch, shorter answers: generation under ZeRO-3 gathers every layer's weights per token
    cfg, _ = resolve_config(arch_config(tiny(arch), prompts_file, steps_per_epoch=4, total_steps=4, batch_size=2,
                                        env_kwargs=env_kwargs))
    trainer, run_dir = new_run(cfg, str(tmp_path / f"zero{stage}"))
    assert type(trainer.updater).__name__ == "DeepSpeedUpdater"
    trainable = {"actor." + n for n, p in trainer.agent.actor.named_parameters() if p.requires_grad}
    before = snapshot(trainer)
    summary = trainer.train(run_dir, progress=False)
    after = snapshot(trainer)
    assert summary["finished"]
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    actor = {n for n in before if n.startswith("actor.")}
    if lora:
        assert trainable == {n for n in actor if "lora_" in n} and len(trainable) == 2 * 2 * len(PROJECTIONS)
    else:
        assert trainable == actor
    assert {n for n in changed if n.startswith("actor.")} == trainable
    assert {n for n in before if n.startswith("critic.")} <= changed
    assert_multiplier_moved_on_the_cost(run_dir)
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    for name, value in after.items():  # full weights (gathered under ZeRO-3), the trained ones
        assert torch.equal(state["agent"][name], value), name


# ------------------------------------------------------------------------------------------- score models

@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_score_model_on_each_backbone(arch: str, tiny, corpus: corpus_lib.Corpus, tmp_path: Path) -> None:
    """A score model from the causal LM's folder: hidden size from the config, the score read at the last real
    token under right and left padding, and a short training that saves and loads."""
    paths = tiny(arch)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(paths["policy"]))
    torch.manual_seed(0)
    model = ScoreModel.from_backbone(paths["policy"]).eval()
    assert model.head.in_features == 32 and type(model.backbone).__name__.lower().startswith(arch)
    torch.nn.init.normal_(model.head.weight)
    short = encode_example(tokenizer, "How do I boil an egg?", "Put it in water.", 128)[0]
    long = encode_example(tokenizer, "How do I bake bread?", "Mix flour, water and yeast, then bake it.", 128)[0]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    right_ids, right_mask = pad_batch([short, long], pad)
    n = right_ids.shape[1]
    left_ids = torch.stack([torch.cat([row[m.bool()].new_full((n - int(m.sum()),), pad), row[m.bool()]])
                            for row, m in zip(right_ids, right_mask)])
    left_mask = torch.stack([m.flip(0) for m in right_mask])
    with torch.no_grad():
        alone = [model(torch.tensor([s])).end_scores.item() for s in (short, long)]
        right = model(right_ids, attention_mask=right_mask)
        left = model(left_ids, attention_mask=left_mask, position_ids=position_ids_from_mask(left_mask))
    assert right.end_index.tolist() == [len(short) - 1, len(long) - 1]
    assert right_ids[0, len(short) - 1].item() == tokenizer.eos_token_id  # read at the EOS
    assert left.end_index.tolist() == [n - 1, n - 1]
    assert right.end_scores.tolist() == pytest.approx(alone, abs=1e-4)
    assert left.end_scores.tolist() == pytest.approx(alone, abs=1e-4)

    train, test = write_preference_files(corpus, tmp_path)
    out = tmp_path / "cost"
    metrics = train_score_model("cost", train, paths["policy"], out, epochs=1, lr=1e-3, batch_size=16, seed=0,
                                device="cpu", eval_data_path=test, max_length=128, log=None)
    assert metrics["train_pairs"] > 0 and 0.0 <= metrics["eval_accuracy"] <= 1.0
    loaded = ScoreModel.from_pretrained(out)
    assert loaded.kind == "cost" and type(loaded.backbone).__name__.lower().startswith(arch)
    fresh = ScoreModel.from_backbone(paths["policy"])
    assert not torch.equal(loaded.backbone.get_input_embeddings().weight, fresh.backbone.get_input_embeddings().weight)


# ------------------------------------------------------------------------------------------- LoRA targets

def test_lora_targets_follow_the_model_type() -> None:
    def model(model_type: str) -> str:  # what apply_lora reads off the model: its config's model_type
        return model_type

    for arch in ARCHITECTURES:
        assert lora_target_modules(model(arch), {}) == list(PROJECTIONS)
    assert lora_target_modules(model("gpt2"), {"r": 4}) == ["c_attn", "c_proj", "c_fc"]
    assert set(LORA_TARGET_MODULES) == {"gpt2", *ARCHITECTURES}
    # an explicit list (or one name) overrides the defaults, for any architecture
    assert lora_target_modules(model("llama"), {"target_modules": ["q_proj", "v_proj"]}) == ["q_proj", "v_proj"]
    assert lora_target_modules(model("gpt_neox"), {"target_modules": "query_key_value"}) == ["query_key_value"]
    with pytest.raises(ConfigError, match="target_modules must be a module name or a list"):
        lora_target_modules(model("llama"), {"target_modules": [3]})
    with pytest.raises(ConfigError) as info:
        lora_target_modules(model("gpt_neox"), {})
    message = str(info.value)
    assert "\n" not in message and "'gpt_neox'" in message and "env_kwargs.lora.target_modules" in message


def test_gpt2_default_lora_targets_attention_and_mlp(tmp_path: Path, base_tokenizer) -> None:
    pytest.importorskip("peft")
    from cmdp.envs.text.env import apply_lora
    from text_helpers import save_tiny_backbone

    path = save_tiny_backbone(base_tokenizer, tmp_path / "gpt2")
    wrapped = apply_lora(transformers.AutoModelForCausalLM.from_pretrained(str(path)), {"r": 2})
    adapted = {n.split(".lora_A")[0].split(".h.0.")[1] for n, _ in wrapped.named_parameters() if ".lora_A" in n}
    assert adapted == {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}
    x = torch.tensor([[1, 5, 9]])
    base = transformers.AutoModelForCausalLM.from_pretrained(str(path))
    with torch.no_grad():  # fresh adapters (B = 0) leave the model's output as it was
        assert torch.allclose(wrapped(input_ids=x).logits, base(input_ids=x).logits, atol=1e-6)


def test_unknown_architecture_with_lora_fails_in_one_line(tmp_path: Path, tiny, base_tokenizer, prompts_file: Path,
                                                          capsys) -> None:
    pytest.importorskip("peft")
    paths = dict(tiny("llama"))
    config = transformers.GPTNeoXConfig(vocab_size=len(base_tokenizer), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=4)
    paths["policy"] = tmp_path / "neox"
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(str(paths["policy"]))
    base_tokenizer.save_pretrained(str(paths["policy"]))
    run_config = tmp_path / "text.yaml"
    run_config.write_text(json.dumps(arch_config(paths, prompts_file, env_kwargs={"lora": {"r": 4}})))
    out = tmp_path / "run"
    capsys.readouterr()  # the setup's own output (save_pretrained's progress bars, run first in a process)
    assert main(["train", "--config", str(run_config), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cmdp: error:") and "\n" not in err, err
    assert "no default LoRA target modules for model type 'gpt_neox'" in err
