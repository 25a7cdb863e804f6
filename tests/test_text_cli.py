"""Tests of `cmdp train-score-model`: a short reward and cost training through `cmdp.cli.main`, and the bad
inputs that must end in one `cmdp: error: ...` line, exit status 2 and no output folder.

The data and the model are built here with the project's own code (a byte-level BPE tokenizer, a randomly
initialised 1-layer GPT-2); nothing is downloaded.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")

import torch

from cmdp.cli import main
from cmdp.spec import ConfigError
from cmdp.envs.text import corpus as corpus_lib
from cmdp.envs.text import score_model as score_lib
from cmdp.envs.text.make_default import train_tokenizer
from cmdp.envs.text.score_model import METRICS_FILE, ScoreModel, train_score_model
from text_helpers import GOOD, save_tiny_backbone, write_jsonl, write_preference_files
from run_helpers import one_error_line

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("text_cli")


@pytest.fixture(scope="module")
def corpus() -> corpus_lib.Corpus:
    # smaller than test_text_foundation's: these tests check the command, not how well a model learns
    return corpus_lib.make_corpus(seed=0, n_helpful=40, n_harmful=40, pairs_per_prompt=2)


@pytest.fixture(scope="module")
def backbone_dir(corpus: corpus_lib.Corpus, workdir: Path) -> Path:
    """A randomly initialised 1-layer GPT-2 causal LM with a tokenizer trained on the corpus, saved as a model folder."""
    tokenizer = train_tokenizer(corpus.texts(), workdir / "tokenizer", vocab_size=1000, context=128)
    return save_tiny_backbone(tokenizer, workdir / "backbone")


@pytest.fixture(scope="module")
def prefs(corpus: corpus_lib.Corpus, workdir: Path) -> tuple[Path, Path]:
    return write_preference_files(corpus, workdir)


def _args(kind: str, data: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return ["train-score-model", "--kind", kind, "--data", str(data), "--model", str(model), "--out", str(out),
            "--epochs", "1", "--max-length", "128", "--device", "cpu", *extra]


# ------------------------------------------------------------------------------------------- training

@pytest.mark.parametrize("kind", ["reward", "cost"])
def test_train_score_model_command(kind: str, backbone_dir: Path, prefs: tuple[Path, Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    train, test = prefs
    out = tmp_path / f"{kind}-model"
    # the reward run shows the progress bar, the cost run turns it off
    extra = ["--eval-data", str(test), "--lr", "2e-3", "--batch-size", "16", "--seed", "1"]
    extra += ["--no-progress"] if kind == "cost" else []
    assert main(_args(kind, train, backbone_dir, out, *extra)) == 0
    captured = capsys.readouterr()
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["kind"] == kind and metrics["epochs"] == 1 and metrics["seed"] == 1 and metrics["lr"] == 2e-3
    assert metrics["eval_pairs"] > 0 and metrics["eval_data"] == str(test)
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0
    assert f"{kind} model: held-out accuracy {metrics['eval_accuracy']:.3f}" in captured.out
    if kind == "cost":
        assert 0.0 <= metrics["eval_sign_accuracy"] <= 1.0
        assert f"sign accuracy {metrics['eval_sign_accuracy']:.3f}" in captured.out
        assert f"({metrics['eval_accuracy_with_unsafe']:.3f} on pairs with an unsafe response)" in captured.out
        assert "cost model" not in captured.err  # --no-progress: no bar
    else:
        assert "sign accuracy" not in captured.out
        assert "reward model" in captured.err and "step" in captured.err  # the tqdm bar
    assert "epoch 1/1" in captured.out and str(out) in captured.out
    model = ScoreModel.from_pretrained(out)
    assert model.kind == kind
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(out))
    scores = model.score_texts(tokenizer, ["How do I bake bread?"], ["Mix flour and water."], max_length=128)
    assert scores.shape == (1,) and torch.isfinite(scores).all()


def test_eval_fraction_splits_the_training_file(backbone_dir: Path, prefs: tuple[Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    train, _ = prefs
    out = tmp_path / "reward"
    assert main(_args("reward", train, backbone_dir, out, "--eval-fraction", "0.25", "--no-progress")) == 0
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["eval_data"] is None and metrics["eval_pairs"] > 0
    assert "held-out accuracy" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- bad input

def _bad_cases(tmp: Path, backbone: Path, train: Path) -> list[tuple[str, list[str], list[str]]]:
    """(name, argv, words the error line must hold); every argv writes to tmp/out."""
    out = tmp / "out"
    malformed = write_jsonl(tmp / "malformed.jsonl", [GOOD, {**GOOD, "better_response_id": 2}])
    bad_json = write_jsonl(tmp / "bad_json.jsonl", [GOOD, '{"prompt": "unterminated'])
    no_column = write_jsonl(tmp / "no_column.jsonl", [GOOD, {k: v for k, v in GOOD.items() if k != "safer_response_id"}])
    not_a_model = tmp / "not_a_model"
    not_a_model.mkdir()
    (not_a_model / "notes.txt").write_text("no model here")
    return [
        ("missing data file", _args("reward", tmp / "nowhere.jsonl", backbone, out),
         [str(tmp / "nowhere.jsonl"), "no such file"]),
        ("malformed row", _args("reward", malformed, backbone, out),
         [str(malformed), "row 2", "'better_response_id'", "expected 0 or 1"]),
        ("invalid JSON line", _args("cost", bad_json, backbone, out), [str(bad_json), "row 2", "not valid JSON"]),
        ("missing column", _args("cost", no_column, backbone, out),
         [str(no_column), "row 2", "'safer_response_id'", "missing column"]),
        ("bad eval file", _args("reward", train, backbone, out, "--eval-data", str(no_column)),
         [str(no_column), "'safer_response_id'", "missing column"]),
        ("unknown kind", _args("value", train, backbone, out), ["kind must be one of", "'value'"]),
        ("missing model", _args("reward", train, tmp / "no_model", out), [str(tmp / "no_model"), "no such model"]),
        ("folder that is not a model", _args("reward", train, not_a_model, out),
         [f"tokenizer {not_a_model}: cannot load it: "]),
        ("eval file and fraction", _args("reward", train, backbone, out, "--eval-data", str(train),
                                         "--eval-fraction", "0.2"), ["--eval-data", "--eval-fraction"]),
        ("eval fraction out of range", _args("reward", train, backbone, out, "--eval-fraction", "1.5"),
         ["eval_fraction", "1.5"]),
        ("zero epochs", _args("reward", train, backbone, out, "--epochs", "0"), ["epochs", "positive"]),
        ("seed past 64 bits", _args("reward", train, backbone, out, "--seed", str(2 ** 70)),
         ["seed must be an integer in [0, 4294967295]", str(2 ** 70)]),
        ("negative seed", _args("cost", train, backbone, out, "--seed", "-1"), ["seed must be", "got -1"]),
    ]


def test_bad_input_gives_one_error_line_and_no_output(backbone_dir: Path, prefs: tuple[Path, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    for name, argv, words in _bad_cases(tmp_path, backbone_dir, prefs[0]):
        assert main(argv) == 2, name
        line = one_error_line(capsys.readouterr().err)
        assert all(w in line for w in words), (name, words, line)
        assert not (tmp_path / "out").exists(), name


def test_a_missing_folder_under_a_local_folder_is_not_sent_to_the_hub(backbone_dir: Path, prefs: tuple[Path, Path],
                                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # `--model runs/reward-model` with no such folder under runs/ went to the hub as the id "runs/reward-model" until
    # 2026-12-05: offline, a minute of retries and their warnings, then an error about the connection
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for missing in ("runs/reward-model", "runs/models/reward"):
        assert main(_args("reward", prefs[0], Path(missing), tmp_path / "out")) == 2
        assert one_error_line(capsys.readouterr().err) == f"cmdp: error: {missing}: no such model folder"
        assert not (tmp_path / "out").exists()
    assert score_lib.is_missing_local_folder("runs/reward-model") and score_lib.is_missing_local_folder("a/b/c")
    # a hub id (no local folder of its first part) is left to from_pretrained
    assert not score_lib.is_missing_local_folder("gpt2") and not score_lib.is_missing_local_folder("org/model")


def test_non_empty_out_folder_is_refused_and_kept(backbone_dir: Path, prefs: tuple[Path, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(_args("reward", prefs[0], backbone_dir, out)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(out) in line and "not empty" in line
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    file_out = tmp_path / "a_file"
    file_out.write_text("x")
    assert main(_args("reward", prefs[0], backbone_dir, file_out)) == 2
    assert "not a folder" in one_error_line(capsys.readouterr().err)
    # under a file: refused before the data are read, not at the save after training
    assert main(_args("reward", prefs[0], backbone_dir, file_out / "model")) == 2
    assert one_error_line(capsys.readouterr().err) == (
        f"cmdp: error: cannot create the output folder {file_out / 'model'}: {file_out} is a file, not a folder")
    assert file_out.read_text() == "x"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_cuda_without_cuda_is_an_input_error(backbone_dir: Path, prefs: tuple[Path, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    argv = _args("reward", prefs[0], backbone_dir, tmp_path / "out")
    argv[argv.index("--device") + 1] = "cuda"
    assert main(argv) == 2
    assert "CUDA is not available" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_failed_save_leaves_no_folder(monkeypatch: pytest.MonkeyPatch, backbone_dir: Path, prefs: tuple[Path, Path],
                                      tmp_path: Path) -> None:
    """A save that dies half-way (a full disk, an interrupt) removes the files it had written."""
    original = score_lib.ScoreModel.save_pretrained

    def save_then_fail(self: ScoreModel, path: str | Path) -> None:
        original(self, path)
        assert any(Path(path).iterdir())  # something was written before the failure
        raise OSError("No space left on device")

    monkeypatch.setattr(score_lib.ScoreModel, "save_pretrained", save_then_fail)
    train, test = prefs
    with pytest.raises(OSError, match="No space left"):
        train_score_model("reward", train, backbone_dir, tmp_path / "out", epochs=1, device="cpu",
                          eval_data_path=test, max_length=128, log=None)
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty").mkdir()  # a folder that was there, empty, stays there, empty
    with pytest.raises(OSError, match="No space left"):
        train_score_model("reward", train, backbone_dir, tmp_path / "empty", epochs=1, device="cpu",
                          eval_data_path=test, max_length=128, log=None)
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())


def test_library_refuses_non_empty_out_unless_overwrite(backbone_dir: Path, prefs: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(ConfigError, match="not empty"):
        train_score_model("reward", prefs[0], backbone_dir, out, epochs=1, device="cpu", log=None)
    # overwrite=True (make_default --force) writes into it in place
    train_score_model("reward", prefs[0], backbone_dir, out, epochs=1, device="cpu", max_length=128,
                      eval_data_path=prefs[1], overwrite=True, log=None)
    assert (out / METRICS_FILE).is_file() and (out / "old.txt").is_file()


def test_cli_does_not_import_the_text_side() -> None:
    """Building the parser (every subcommand's flags) loads neither envs.text nor transformers."""
    code = ("import sys, cmdp.cli\n"
            "cmdp.cli._parser().parse_args(['train-score-model', '--kind', 'reward', '--data', 'd.jsonl',"
            " '--model', 'm', '--out', 'o'])\n"
            "loaded = [m for m in ('transformers', 'cmdp.envs.text', 'cmdp.envs.text.score_model') if m in sys.modules]\n"
            "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_text_demo_prints_each_seeds_table_once(monkeypatch) -> None:
    # each seed's table is printed as the seed finishes; the end of the run printed them all again (with one seed,
    # the same table twice in a row)
    from cmdp.envs.text import demo

    monkeypatch.setattr(demo, "seed_lines", lambda seed, evaluation: [f"table of seed {seed}"])
    results = {"seeds": {"0": {}, "1": {}}, "checks": {"ppo_lag within the limit": True}}
    assert "table of seed" not in demo.format_report(results, brief=True)
    assert demo.format_report(results, brief=True).splitlines() == ["Checks on every seed (2):", "",
                                                                    "- ppo_lag within the limit: yes"]
