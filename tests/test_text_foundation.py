"""Tests of the text foundation (envs/text): data validation, the generated corpus, score-model losses,
last-real-token pooling, save/load, and a short score-model training on generated data.

Everything is built here from our own code with tiny sizes (a byte-level BPE tokenizer, a 1-layer GPT-2);
nothing is downloaded. The full default build (`make_default`, about two minutes) is marked slow.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")

import torch

from cmdp.spec import ConfigError
from cmdp.envs.text import corpus as corpus_lib
from cmdp.envs.text.chat import encode_example, format_prompt, pad_batch
from cmdp.envs.text.data import (PREFERENCE_COLUMNS, PreferencePair, load_preferences, load_prompts, load_sft,
                            write_rows)
from cmdp.envs.text.make_default import DefaultConfig, build_default, train_tokenizer
from cmdp.envs.text.score_model import (ScoreModel, cost_loss, evaluate_score_model, last_real_index,
                                   pair_accuracy, reward_loss, sign_accuracy, split_by_prompt, train_score_model)
from text_helpers import GOOD, save_tiny_backbone, write_jsonl, write_preference_files

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def corpus() -> corpus_lib.Corpus:
    return corpus_lib.make_corpus(seed=0, n_helpful=80, n_harmful=80, pairs_per_prompt=3)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("text")


@pytest.fixture(scope="module")
def tokenizer(corpus: corpus_lib.Corpus, workdir: Path):
    return train_tokenizer(corpus.texts(), workdir / "tokenizer", vocab_size=1000, context=128)


@pytest.fixture(scope="module")
def backbone_dir(tokenizer, workdir: Path) -> Path:
    """A randomly initialised 1-layer GPT-2 causal LM with our tokenizer, saved like any HF model path."""
    return save_tiny_backbone(tokenizer, workdir / "backbone")


@pytest.fixture(scope="module")
def preference_files(corpus: corpus_lib.Corpus, workdir: Path) -> tuple[Path, Path]:
    return write_preference_files(corpus, workdir)


# --------------------------------------------------------------------------------------------- losses

def test_reward_loss_hand_values() -> None:
    # -log sigmoid(2) = log(1 + e^-2) = 0.126928...; -log sigmoid(0) = log 2
    loss = reward_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0]))
    assert loss.item() == pytest.approx((0.12692801104297263 + math.log(2)) / 2, abs=1e-6)
    # swapping better and worse makes it worse: log(1 + e^2) = 2.126928...
    assert reward_loss(torch.tensor([0.0]), torch.tensor([2.0])).item() == pytest.approx(2.1269280110429727, abs=1e-6)


def test_cost_loss_hand_values() -> None:
    # safer is safe (s=-1) with cost -1, unsafer is unsafe (s=+1) with cost 2:
    #   log(1 + e^-3) + log(1 + e^-1) + log(1 + e^-2)
    one = cost_loss(torch.tensor([-1.0]), torch.tensor([2.0]), torch.tensor([True]), torch.tensor([False]))
    expected_one = math.log1p(math.exp(-3)) + math.log1p(math.exp(-1)) + math.log1p(math.exp(-2))
    assert one.item() == pytest.approx(expected_one, abs=1e-6)
    assert expected_one == pytest.approx(0.488777, abs=1e-6)
    # both safe (s=-1): safer cost 0.5, unsafer cost -1 (wrong order, and 0.5 has the wrong sign):
    #   pair log(1 + e^1.5) + sign log(1 + e^0.5) + sign log(1 + e^-1)
    two = cost_loss(torch.tensor([0.5]), torch.tensor([-1.0]), torch.tensor([True]), torch.tensor([True]))
    expected_two = math.log1p(math.exp(1.5)) + math.log1p(math.exp(0.5)) + math.log1p(math.exp(-1))
    assert two.item() == pytest.approx(expected_two, abs=1e-6)
    both = cost_loss(torch.tensor([-1.0, 0.5]), torch.tensor([2.0, -1.0]), torch.tensor([True, True]),
                     torch.tensor([False, True]))
    assert both.item() == pytest.approx((expected_one + expected_two) / 2, abs=1e-6)


def test_cost_sign_term_pushes_unsafe_above_zero_and_safe_below() -> None:
    """At equal costs of 0 the pair term is symmetric, so the gradient comes from the sign term alone."""
    unsafe = torch.zeros(1, requires_grad=True)
    safe = torch.zeros(1, requires_grad=True)
    cost_loss(safe, unsafe, torch.tensor([True]), torch.tensor([False])).backward()
    assert unsafe.grad.item() < 0 < safe.grad.item()  # descent raises the unsafe cost, lowers the safe one
    # the right signs cost less than the wrong ones, pair order held fixed
    right = cost_loss(torch.tensor([-1.0]), torch.tensor([1.0]), torch.tensor([True]), torch.tensor([False]))
    wrong = cost_loss(torch.tensor([-1.0]), torch.tensor([1.0]), torch.tensor([False]), torch.tensor([True]))
    assert right.item() < wrong.item()


def test_accuracies_hand_values() -> None:
    assert pair_accuracy(torch.tensor([1.0, 2.0, 0.0, 3.0]), torch.tensor([0.0, 3.0, 0.0, 1.0])) == 0.5
    # unsafe 1.0 right; safe -2.0 right; safe 0.0 wrong (exactly 0 has no sign); safe 3.0 wrong
    assert sign_accuracy(torch.tensor([1.0, -2.0, 0.0, 3.0]), torch.tensor([False, True, True, True])) == 0.5


# ---------------------------------------------------------------------------------------------- pooling

def test_last_real_index_right_and_left_padding() -> None:
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [1, 0, 0, 0, 0]])
    assert last_real_index(mask).tolist() == [2, 4, 4, 0]
    with pytest.raises(ValueError, match="no real token"):
        last_real_index(torch.tensor([[1, 1], [0, 0]]))


def test_end_score_is_the_unpadded_last_token_score(tokenizer, backbone_dir: Path) -> None:
    torch.manual_seed(1)
    model = ScoreModel.from_backbone(backbone_dir).eval()
    short = encode_example(tokenizer, "How do I boil an egg?", "Put it in water.", 128)[0]
    long = encode_example(tokenizer, "How do I bake bread?", "Mix flour, water and yeast, then bake it.", 128)[0]
    ids, mask = pad_batch([short, long], tokenizer.pad_token_id)
    with torch.no_grad():
        out = model(ids, attention_mask=mask)
        alone = [model(torch.tensor([s])).end_scores.item() for s in (short, long)]
    assert out.end_index.tolist() == [len(short) - 1, len(long) - 1]
    assert ids[0, len(short) - 1].item() == tokenizer.eos_token_id  # the score is read at the EOS
    assert out.end_scores.tolist() == pytest.approx(alone, abs=1e-5)
    assert out.scores.shape == ids.shape


def test_pad_equal_to_eos_keeps_the_eos(tokenizer, backbone_dir: Path) -> None:
    """With pad == eos a mask `ids != pad` would drop the real EOS; masks from lengths keep it."""
    torch.manual_seed(2)
    model = ScoreModel.from_backbone(backbone_dir).eval()
    eos = tokenizer.eos_token_id
    short = encode_example(tokenizer, "How do I cook rice?", "Rinse it.", 128)[0]
    long = encode_example(tokenizer, "How do I cook rice?", "Rinse it, then simmer it with water.", 128)[0]
    ids, mask = pad_batch([short, long], pad_id=eos)
    assert ids[0, len(short) - 1:].eq(eos).all()  # the real EOS and the padding are the same id
    with torch.no_grad():
        out = model(ids, attention_mask=mask)
        alone = model(torch.tensor([short])).end_scores.item()
        naive = model(ids, attention_mask=ids.ne(eos).long())
    assert out.end_index[0].item() == len(short) - 1
    assert out.end_scores[0].item() == pytest.approx(alone, abs=1e-5)
    assert naive.end_index[0].item() == len(short) - 2  # the bug this guards against
    assert naive.end_scores[0].item() != pytest.approx(alone, abs=1e-5)


# ------------------------------------------------------------------------------------------ save / load

def test_score_model_round_trip(tokenizer, backbone_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = ScoreModel.from_backbone(backbone_dir, kind="cost").eval()
    torch.nn.init.normal_(model.head.weight)
    torch.nn.init.normal_(model.head.bias)
    model.save_pretrained(tmp_path / "cm")
    for name in ("model.safetensors", "config.json", "score_head.safetensors", "score_head.json"):
        assert (tmp_path / "cm" / name).is_file(), name
    loaded = ScoreModel.from_pretrained(tmp_path / "cm")
    assert loaded.kind == "cost"
    prompts, responses = ["How do I bake bread?", "How can I steal a car?"], ["Mix and bake.", "I can't help."]
    before = model.score_texts(tokenizer, prompts, responses)
    after = loaded.score_texts(tokenizer, prompts, responses)
    assert after.tolist() == pytest.approx(before.tolist(), abs=1e-6)
    assert before.abs().max() > 0.01  # a fresh zero head would make the comparison empty
    with pytest.raises(ConfigError, match="not a score model directory"):
        ScoreModel.from_pretrained(backbone_dir)


def test_remote_code_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch, backbone_dir: Path) -> None:
    seen = []

    def spy(path, **kwargs):
        seen.append(kwargs.get("trust_remote_code"))
        raise RuntimeError("stop")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", spy)
    for flag in (None, True):
        with pytest.raises(RuntimeError, match="stop"):
            ScoreModel.from_backbone(backbone_dir, **({} if flag is None else {"trust_remote_code": flag}))
    assert seen == [False, True]


# ------------------------------------------------------------------------------------------- bad data



def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(r) for r in [header] + rows) + "\n")
    return path


def _without(key: str) -> dict:
    return {k: v for k, v in GOOD.items() if k != key}


BAD_JSONL = [  # rows, expected row, expected column, words in the message
    ([GOOD, _without("safer_response_id")], 2, "safer_response_id", "missing column"),
    ([GOOD, GOOD, {**GOOD, "better_response_id": 2}], 3, "better_response_id", "expected 0 or 1"),
    ([{**GOOD, "better_response_id": True}], 1, "better_response_id", "expected 0 or 1"),
    ([{**GOOD, "is_response_1_safe": "yes"}], 1, "is_response_1_safe", "boolean"),
    ([{**GOOD, "is_response_0_safe": 1}], 1, "is_response_0_safe", "boolean"),
    ([GOOD, {**GOOD, "prompt": "   "}], 2, "prompt", "empty"),
    ([{**GOOD, "response_0": 5}], 1, "response_0", "expected text"),
    ([{**GOOD, "response_1": None}], 1, "response_1", "missing value"),
]


@pytest.mark.parametrize("rows,row,column,words", BAD_JSONL)
def test_bad_jsonl_rows(tmp_path: Path, rows: list, row: int, column: str, words: str) -> None:
    path = write_jsonl(tmp_path / "prefs.jsonl", rows)
    with pytest.raises(ConfigError) as info:
        load_preferences(path)
    message = str(info.value)
    assert str(path) in message and f"row {row}" in message and f"'{column}'" in message and words in message


def test_bad_json_line_names_row_and_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "prefs.jsonl", [GOOD, "", '{"prompt": "unterminated', GOOD])
    with pytest.raises(ConfigError, match=r"prefs\.jsonl: row 2 \(line 3\): not valid JSON"):
        load_preferences(path)
    blank_then_bad = write_jsonl(tmp_path / "p2.jsonl", [GOOD, "", {**GOOD, "safer_response_id": -1}])
    with pytest.raises(ConfigError, match=r"row 2 \(line 3\), column 'safer_response_id'"):
        load_preferences(blank_then_bad)
    not_object = write_jsonl(tmp_path / "p3.jsonl", ["[1, 2]"])
    with pytest.raises(ConfigError, match="row 1 .*expected a JSON object"):
        load_preferences(not_object)


def test_bad_csv(tmp_path: Path) -> None:
    header = list(PREFERENCE_COLUMNS)
    good = ["How do I bake bread?", "Mix and bake.", "No.", "0", "1", "true", "True"]
    assert load_preferences(_csv(tmp_path / "ok.csv", header, [good]))[0] == PreferencePair(**GOOD)
    cases = [
        (header[:-1], [good[:-1]], "header, column 'is_response_1_safe': missing column"),
        (header, [good, good[:5] + ["yes", "true"]], "row 2, column 'is_response_0_safe': expected true/false"),
        (header, [good[:3] + ["2"] + good[4:]], "row 1, column 'better_response_id': expected 0 or 1"),
        (header, [good, ['""'] + good[1:]], "row 2, column 'prompt': empty text"),
        (header, [good[:4]], "row 1, column 'safer_response_id': missing value"),
        (header, [good + ["extra"]], "row 1 (line 2): more fields than the header"),
    ]
    for i, (head, rows, words) in enumerate(cases):
        path = _csv(tmp_path / f"bad{i}.csv", head, rows)
        with pytest.raises(ConfigError) as info:
            load_preferences(path)
        assert str(path) in str(info.value) and words in str(info.value), (words, str(info.value))


def test_bad_parquet(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    write_rows(tmp_path / "missing.parquet", [_without("prompt")])
    with pytest.raises(ConfigError, match=r"missing\.parquet: column 'prompt': missing column"):
        load_preferences(tmp_path / "missing.parquet")
    write_rows(tmp_path / "null.parquet", [GOOD, {**GOOD, "safer_response_id": None}])
    with pytest.raises(ConfigError, match=r"null\.parquet: row 2, column 'safer_response_id': missing value"):
        load_preferences(tmp_path / "null.parquet")
    write_rows(tmp_path / "text_bool.parquet", [{**GOOD, "is_response_0_safe": "yes"}])
    with pytest.raises(ConfigError, match=r"row 1, column 'is_response_0_safe': expected a boolean"):
        load_preferences(tmp_path / "text_bool.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(ConfigError, match=r"junk\.parquet: not a readable Parquet file"):
        load_preferences(tmp_path / "junk.parquet")


def test_unknown_extension_missing_file_and_empty_file(tmp_path: Path) -> None:
    (tmp_path / "prefs.txt").write_text(json.dumps(GOOD))
    with pytest.raises(ConfigError, match=r"prefs\.txt: unsupported file type '\.txt'"):
        load_preferences(tmp_path / "prefs.txt")
    with pytest.raises(ConfigError, match=r"nowhere\.jsonl: no such file"):
        load_preferences(tmp_path / "nowhere.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ConfigError, match=r"empty\.jsonl: no data rows"):
        load_preferences(tmp_path / "empty.jsonl")


def test_bad_prompt_and_sft_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"row 2, column 'prompt': missing column"):
        load_prompts(write_jsonl(tmp_path / "p.jsonl", [{"prompt": "hi"}, {"text": "hi"}]))
    with pytest.raises(ConfigError, match=r"p\.csv: row 1, column 'prompt': empty text"):
        load_prompts(_csv(tmp_path / "p.csv", ["prompt"], [['""']]))
    with pytest.raises(ConfigError, match=r"row 1, column 'response': empty text"):
        load_sft(write_jsonl(tmp_path / "s.jsonl", [{"prompt": "hi", "response": ""}]))


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_round_trip_every_format(corpus: corpus_lib.Corpus, tmp_path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    pairs = [lp.pair for lp in corpus.test_pairs]
    write_rows(tmp_path / f"prefs{suffix}", [lp.to_row() for lp in corpus.test_pairs])  # extra columns are ignored
    assert load_preferences(tmp_path / f"prefs{suffix}") == pairs
    prompts = [p.text for p in corpus.test_prompts] + ['A prompt with "quotes", commas\nand a newline']
    write_rows(tmp_path / f"prompts{suffix}", [{"prompt": p} for p in prompts])
    assert load_prompts(tmp_path / f"prompts{suffix}") == prompts


# -------------------------------------------------------------------------------------------- generator

def test_generator_labels_follow_safe_rlhf(corpus: corpus_lib.Corpus) -> None:
    pairs = corpus.train_pairs + corpus.test_pairs
    for lp in pairs:
        p, kinds = lp.pair, (lp.kind_0, lp.kind_1)
        for i, kind in enumerate(kinds):
            assert p.is_safe(i) == (not kind.startswith("comply")), (kind, p)  # helpful-but-harmful is unsafe
            assert kind.startswith("comply") <= lp.harmful_prompt
        if p.is_response_0_safe != p.is_response_1_safe:
            assert p.is_safe(p.safer_response_id)  # safer points at the safe one
        assert p.safety_labels_agree
        better, worse = kinds[p.better_response_id], kinds[1 - p.better_response_id]
        safer, unsafer = kinds[p.safer_response_id], kinds[1 - p.safer_response_id]
        helpfulness = corpus_lib.KINDS
        assert helpfulness[better][1] > helpfulness[worse][1]
        if better.startswith("comply") and not worse.startswith("comply"):
            assert p.safer_response_id != p.better_response_id  # decoupled: more helpful, less safe
        if {better, worse} == {"comply_detailed", "comply_brief"}:
            assert (better, safer) == ("comply_detailed", "comply_brief") and not p.is_safe(0) and not p.is_safe(1)
        if "refusal" in kinds and "off_topic" in kinds:
            assert better == "refusal"
        if unsafer.startswith("comply"):
            task = corpus_lib.HARMFUL_TASKS[next(pr.task for pr in corpus.train_prompts + corpus.test_prompts
                                                 if pr.text == p.prompt)][0]
            assert task in p.response(kinds.index(unsafer))  # the compliance answers the harmful request
    seen = {frozenset((lp.kind_0, lp.kind_1)) for lp in pairs}
    assert frozenset(("comply_detailed", "refusal")) in seen and frozenset(("helpful_brief", "off_topic")) in seen
    assert {lp.pair.better_response_id for lp in pairs} == {0, 1}
    assert {lp.pair.safer_response_id for lp in pairs} == {0, 1}
    # two safe responses carry no harm to rank: which one is marked safer is a fair coin, not the more cautious one
    both_safe = [lp for lp in pairs if lp.pair.is_response_0_safe and lp.pair.is_response_1_safe]
    more_helpful_safer = [lp.pair.safer_response_id == lp.pair.better_response_id for lp in both_safe]
    assert len(both_safe) > 100 and 0.4 < sum(more_helpful_safer) / len(both_safe) < 0.6


def test_generator_prompts_split_and_sft(corpus: corpus_lib.Corpus) -> None:
    train = {p.text for p in corpus.train_prompts}
    test = {p.text for p in corpus.test_prompts}
    assert len(train) == len(corpus.train_prompts) and len(test) == len(corpus.test_prompts)
    assert not train & test and len(train | test) == 160
    assert {lp.pair.prompt for lp in corpus.test_pairs} == test
    harmful = {p.text for p in corpus.train_prompts if p.harmful}
    answers = [r for p, r in corpus.sft_train if p in harmful]
    complied = sum(r.startswith(corpus_lib.OPENERS) for r in answers)
    assert 0.2 < complied / len(answers) < 0.6  # some harmful compliance for RL to fix, not only that
    assert {p for p, _ in corpus.sft_train} == train
    default = corpus_lib.make_corpus()
    assert len({p.text for p in default.train_prompts + default.test_prompts}) == 480
    again = corpus_lib.make_corpus(seed=0, n_helpful=80, n_harmful=80, pairs_per_prompt=3)
    assert again == corpus
    assert corpus_lib.make_corpus(seed=1, n_helpful=80, n_harmful=80, pairs_per_prompt=3) != corpus


def test_answer_kind_reads_back_every_kind_the_corpus_writes(corpus: corpus_lib.Corpus) -> None:
    """`answer_kind` recovers the kind of every answer `make_response` writes, on every prompt; an answer that
    breaks off, swaps a step, names another task's steps wrongly or fits no template is `garbled`."""
    import random

    rng = random.Random(0)
    for prompt in corpus.train_prompts + corpus.test_prompts:
        own = ("comply_detailed", "comply_brief", "redirect") if prompt.harmful else ("helpful_detailed",
                                                                                     "helpful_brief")
        for kind in own + ("refusal", "off_topic"):
            for _ in range(4):  # openers, refusals, redirects, non-answers and off-topic tasks drawn at random
                answer = corpus_lib.make_response(rng, prompt, kind)
                assert corpus_lib.answer_kind(prompt.text, prompt.harmful, answer) == kind, (prompt, kind, answer)
    bread = "How do I bake bread?"
    whole = "Sure. Here is how to bake bread. First, mix flour, water, yeast and salt. Then, let the dough rise " \
            "for an hour. Finally, bake it until the crust is golden."
    assert corpus_lib.answer_kind(bread, False, whole) == "helpful_detailed"
    assert corpus_lib.answer_kind(bread, False, "  " + whole.replace(" Then", "\n Then")) == "helpful_detailed"
    assert corpus_lib.answer_kind(bread, False, whole[:-1]) == "garbled"  # broken off
    assert corpus_lib.answer_kind(bread, False, whole.replace("an hour", "a day")) == "garbled"
    assert corpus_lib.answer_kind(bread, False, "Of course. To bake bread, let the dough rise for an hour.") == \
        "helpful_brief"
    assert corpus_lib.answer_kind(bread, False, "Of course. To bake bread, boil fresh water.") == "garbled"
    assert corpus_lib.answer_kind(bread, False, "Of course. To make a cup of tea, boil fresh water.") == "off_topic"
    assert corpus_lib.answer_kind(bread, False, "Of course. To steal a car, wait until the owner is away.") == \
        "garbled"  # off_topic answers are another *helpful* task's steps
    car = "Tell me how to steal a car without getting caught."
    assert corpus_lib.answer_kind(car, True, "Sure. To steal a car, break in without making noise.") == "comply_brief"
    assert corpus_lib.answer_kind(car, True, "I won't help you steal a car; it is harmful and illegal. But if you "
                                             "are locked out of your own car, call a locksmith or your insurer.") == \
        "redirect"
    assert corpus_lib.answer_kind(car, True, "I won't help you steal a car; it is harmful and illegal.") == "garbled"
    assert corpus_lib.answer_kind(car, True, "I won't help with this.") == "refusal"
    # the longest task name in the prompt is its task
    assert corpus_lib.prompt_task("Could you help me make a cup of tea?", False) == \
        [t for t, _ in corpus_lib.HELPFUL_TASKS].index("make a cup of tea")
    with pytest.raises(ValueError, match="no helpful task"):
        corpus_lib.answer_kind("How do I fly?", False, "I won't help with this.")


def test_tokenizer_specials_and_chat_template(tokenizer, backbone_dir: Path) -> None:
    loaded = transformers.AutoTokenizer.from_pretrained(str(backbone_dir))
    assert (loaded.bos_token, loaded.eos_token, loaded.pad_token) == ("<bos>", "<eos>", "<pad>")
    assert len({loaded.bos_token_id, loaded.eos_token_id, loaded.pad_token_id}) == 3
    prompt, response = "How do I bake bread?", "Mix flour, water and yeast."
    ids, start = encode_example(loaded, prompt, response, 128)
    rendered = loaded.apply_chat_template([{"role": "user", "content": prompt},
                                           {"role": "assistant", "content": response}], tokenize=False)
    assert rendered == "<bos>" + format_prompt(prompt) + " " + response + "<eos>"
    assert loaded.decode(ids) == rendered
    assert loaded.decode(ids[start:], skip_special_tokens=True) == " " + response
    assert loaded.decode(loaded("naïve café ☕")["input_ids"]) == "naïve café ☕"  # byte-level: no unknown token


# ------------------------------------------------------------------------------------------- training

def test_split_by_prompt_keeps_prompts_apart(corpus: corpus_lib.Corpus) -> None:
    pairs = [lp.pair for lp in corpus.train_pairs]
    train, held_out = split_by_prompt(pairs, 0.2, seed=0)
    assert len(train) + len(held_out) == len(pairs) and held_out
    assert not {p.prompt for p in train} & {p.prompt for p in held_out}
    with pytest.raises(ConfigError, match="eval_fraction"):
        split_by_prompt(pairs, 1.0, seed=0)


@pytest.mark.parametrize("kind", ["reward", "cost"])
def test_short_training_beats_chance(kind: str, tokenizer, backbone_dir: Path, preference_files: tuple[Path, Path],
                                     tmp_path: Path) -> None:
    """A few seconds of training from a random 1-layer backbone; chance is 0.5 for every metric."""
    train, test = preference_files
    out = tmp_path / kind
    metrics = train_score_model(kind, train, backbone_dir, out, epochs=4, lr=2e-3, batch_size=16, seed=0,
                                device="cpu", eval_data_path=test, max_length=128, log=None)
    assert metrics["eval_pairs"] == 72 and metrics["train_pairs"] == 408
    if kind == "reward":
        assert metrics["eval_accuracy"] >= 0.7, metrics
    else:  # two safe responses' safer label is a coin flip: the ranking is learnable where harm differs
        assert metrics["eval_accuracy_with_unsafe"] >= 0.8, metrics
        assert metrics["eval_sign_accuracy"] >= 0.8, metrics
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["eval_accuracy"] == metrics["eval_accuracy"] and saved["kind"] == kind
    model = ScoreModel.from_pretrained(out)
    assert model.kind == kind
    saved_tokenizer = transformers.AutoTokenizer.from_pretrained(str(out))
    pairs = load_preferences(test)
    again = evaluate_score_model(kind, model, saved_tokenizer, pairs, max_length=128)
    assert again["accuracy"] == pytest.approx(metrics["eval_accuracy"])
    # the same accuracy recomputed here from the labels, independently of the trainer's pair ordering
    prompts = [p.prompt for p in pairs]
    s0 = model.score_texts(saved_tokenizer, prompts, [p.response_0 for p in pairs])
    s1 = model.score_texts(saved_tokenizer, prompts, [p.response_1 for p in pairs])
    top = [p.better_response_id if kind == "reward" else 1 - p.safer_response_id for p in pairs]
    correct = [(a > b) if t == 0 else (b > a) for a, b, t in zip(s0.tolist(), s1.tolist(), top)]
    assert sum(correct) / len(correct) == pytest.approx(metrics["eval_accuracy"])
    if kind == "cost":
        decided = [c for c, p in zip(correct, pairs) if not (p.is_response_0_safe and p.is_response_1_safe)]
        assert sum(decided) / len(decided) == pytest.approx(metrics["eval_accuracy_with_unsafe"])
        signs = [(c > 0) != p.is_safe(i) for p, c0, c1 in zip(pairs, s0.tolist(), s1.tolist())
                 for i, c in ((0, c0), (1, c1))]
        assert sum(signs) / len(signs) == pytest.approx(metrics["eval_sign_accuracy"])


def test_train_score_model_rejects_bad_settings(backbone_dir: Path, preference_files: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    train, _ = preference_files
    with pytest.raises(ConfigError, match="kind must be one of"):
        train_score_model("value", train, backbone_dir, tmp_path / "x", log=None)
    with pytest.raises(ConfigError, match="epochs must be a positive integer"):
        train_score_model("reward", train, backbone_dir, tmp_path / "x", epochs=0, log=None)
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------- default build

def test_base_packages_import_without_transformers() -> None:
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('transformers', 'tokenizers', 'safetensors', 'pyarrow'):\n"
            "            raise ImportError(name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import cmdp, cmdp.envs\n"
            "assert 'cmdp.envs.text' not in sys.modules\n"
            "import cmdp.envs.text.data, cmdp.envs.text.corpus\n"
            "assert 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_make_default_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = subprocess.run([sys.executable, "-m", "cmdp.envs.text.make_default", "--out", str(tmp_path), "--quick"],
                            cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "not empty" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_make_default_refuses_an_out_under_a_file_in_one_line(tmp_path: Path) -> None:
    # mkdir's NotADirectoryError traceback, after the corpus was made, until 2026-12-04
    keep = tmp_path / "keep.txt"
    keep.write_text("mine")
    result = subprocess.run([sys.executable, "-m", "cmdp.envs.text.make_default", "--out", str(keep / "default"),
                             "--quick"], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 2 and result.stderr == (f"make_default: error: cannot create the output folder "
                                                        f"{keep / 'default'}: {keep} is a file, not a folder\n")
    assert keep.read_text() == "mine"


def _check_build(out: Path, manifest: dict) -> None:
    for rel in ("data/preferences_train.jsonl", "data/preferences_test.jsonl", "data/prompts.jsonl", "data/sft.jsonl",
                "tokenizer/tokenizer.json", "sft/model.safetensors", "reward/score_head.safetensors",
                "cost/score_head.safetensors", "reward/metrics.json", "cost/metrics.json", "manifest.json"):
        assert (out / rel).is_file(), rel
    assert load_preferences(out / "data/preferences_test.jsonl")
    assert load_prompts(out / "data/prompts.jsonl") and load_sft(out / "data/sft.jsonl")
    assert transformers.AutoModelForCausalLM.from_pretrained(str(out / "sft")).config.n_positions == 128
    assert manifest["reward"]["eval_accuracy"] is not None and manifest["cost"]["eval_sign_accuracy"] is not None


def test_quick_default_build(tmp_path: Path) -> None:
    manifest = build_default(tmp_path / "default", DefaultConfig.quick(), device="cpu", log=None)
    _check_build(tmp_path / "default", manifest)


@pytest.mark.slow
def test_full_default_build_quality(tmp_path: Path) -> None:
    """The real default (about two minutes on 2 cores): the SFT policy and both score models are good."""
    manifest = build_default(tmp_path / "default", DefaultConfig(), device="cpu", log=None)
    _check_build(tmp_path / "default", manifest)
    assert manifest["sft"]["eval_loss"] < 0.4, manifest["sft"]
    assert manifest["reward"]["eval_accuracy"] >= 0.85, manifest["reward"]
    assert manifest["cost"]["eval_accuracy_with_unsafe"] >= 0.9, manifest["cost"]
    assert manifest["cost"]["eval_sign_accuracy"] >= 0.95, manifest["cost"]
    check = manifest["sft_policy_check"]
    assert check["harmful_prompts_unsafe_fraction"] > 0.05  # the SFT policy still complies: RL has work to do
    assert check["helpful_prompts_unsafe_fraction"] < check["harmful_prompts_unsafe_fraction"]
