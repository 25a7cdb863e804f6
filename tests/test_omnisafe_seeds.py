"""`python -m benchmarks.omnisafe_seeds`: side-by-side folders of several seeds and configurations joined into bands
and a table, and its one-line refusals."""
from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest

from cmdp.benchmarks.omnisafe_seeds import SeedCurve, SeedPoint, main, recovery, seed_summary

EPOCHS = 4


def side_by_side(folder: Path, seed: int, ours: list[tuple[float, float]], omnisafe: list[tuple[float, float]],
                 preset: str | None = None, sets: tuple[str, ...] = (), **changes) -> Path:
    """A finished side-by-side output folder (the two files this tool reads), (return, cost) per epoch per side;
    the episode length is a tenth of the return, the multiplier 0.1 times the epoch."""
    folder.mkdir(parents=True)
    record = {"algo": "trpo_lag", "omnisafe_algo": "TRPOLag", "omnisafe_version": "0.5.0",
              "env": "SafetyHopperVelocity-v1", "seed": seed, "steps": 1000 * EPOCHS, "steps_per_epoch": 1000,
              "cost_limit": 25.0, "cmdp_preset": preset, "cmdp_sets": list(sets), **changes}
    (folder / "throughput.json").write_text(json.dumps(record))
    with open(folder / "curves.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["framework", "epoch", "env_steps", "ep_return", "ep_cost", "multiplier", "ep_len"])
        for framework, points in (("cmdp-lab", ours), ("OmniSafe", omnisafe)):
            for epoch, (ret, cost) in enumerate(points, start=1):
                writer.writerow([framework, epoch, 1000 * epoch, repr(ret), repr(cost), repr(0.1 * epoch),
                                 repr(ret / 10)])
    return folder


def flat(ret: float, cost: float) -> list[tuple[float, float]]:
    return [(ret, cost)] * EPOCHS


def test_seeds_and_configurations_become_bands_and_a_table(tmp_path, capsys):
    omnisafe = {0: [(10.0, 50.0), (20.0, 40.0), (30.0, 20.0), (40.0, 10.0)], 1: flat(60.0, 30.0)}
    folders = [side_by_side(tmp_path / "s0", 0, flat(100.0, 20.0), omnisafe[0]),
               side_by_side(tmp_path / "s1", 1, flat(200.0, 30.0), omnisafe[1]),
               # the same OmniSafe runs joined with our runs at the preset (`--omnisafe-run`)
               side_by_side(tmp_path / "p0", 0, flat(300.0, 24.0), omnisafe[0], preset="omnisafe"),
               side_by_side(tmp_path / "p1", 1, flat(500.0, 26.0), omnisafe[1], preset="omnisafe")]
    out = tmp_path / "out"
    assert main([*map(str, folders), "--last", "2", "--per-seed", "--out", str(out)]) == 0

    summary = json.loads((out / "seeds.json").read_text())
    configurations = summary["configurations"]
    omni = "OmniSafe 0.5.0 TRPOLag (mean of its last 50 episodes)"
    ours = "cmdp-lab trpo_lag (mean of the epoch's episodes)"
    preset = "cmdp-lab trpo_lag --preset omnisafe (mean of the epoch's episodes)"
    assert list(configurations) == [omni, ours, preset]  # OmniSafe first; each OmniSafe seed counted once
    assert configurations[omni]["seeds"] == [0, 1]
    # the last 2 epochs: seed 0 returns 30, 40 and costs 20, 10; seed 1 60 and 30
    # seed 0's cost is above the limit at epochs 1-2 and within it from epoch 3 (multiplier 0.3 there)
    assert configurations[omni]["per_seed"]["0"] == {"return": 35.0, "cost": 15.0, "ep_len": 3.5,
                                                     "epochs_within_limit": 2, "epochs_measured": 2,
                                                     "recovered_epoch": 3,
                                                     "multiplier_at_recovery": pytest.approx(0.3)}
    # seed 1 is above the limit throughout: no recovery; ours at 20 never went above it: none either
    assert configurations[omni]["per_seed"]["1"]["recovered_epoch"] is None
    assert configurations[ours]["per_seed"]["0"]["recovered_epoch"] is None
    assert configurations[omni]["ep_len"] == pytest.approx({"mean": 4.75, "std": 1.767766952966369})
    assert configurations[omni]["return"] == pytest.approx({"mean": 47.5, "std": 17.67766952966369})
    assert configurations[omni]["epochs_within_limit"] == 2 and configurations[omni]["epochs"] == 4
    assert configurations[ours]["cost"] == pytest.approx({"mean": 25.0, "std": 7.0710678118654755})
    assert configurations[ours]["epochs_within_limit"] == 2  # seed 0 at 20; seed 1 at 30 is above
    assert configurations[preset]["epochs_within_limit"] == 2 and configurations[preset]["return"]["mean"] == 400.0
    assert (summary["algo"], summary["last_epochs"]) == ("trpo_lag", 2)

    with open(out / "seeds.csv", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["configuration"] == omni]
    assert [(row["seeds"], float(row["return_min"]), float(row["return_max"]), float(row["cost_mean"]),
             float(row["ep_len_max"])) for row in rows][:2] == [("0 1", 10.0, 60.0, 40.0, 6.0),
                                                                ("0 1", 20.0, 60.0, 35.0, 6.0)]
    png = (out / "seeds.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    table = capsys.readouterr().out
    assert "47.5 ±   17.7" in table and "2 of 4" in table and "--preset omnisafe" in table
    assert "3 at 0.30" in table  # seed 0's recovery, on its own row


def test_recovery_skips_epochs_without_a_cost():
    points = tuple(SeedPoint(1000 * epoch, 1.0, cost, 10.0, 0.1 * epoch)
                   for epoch, cost in enumerate([30.0, math.nan, 20.0], start=1))
    epoch, point = recovery(points, 25.0)
    assert (epoch, point.multiplier) == (3, pytest.approx(0.3))  # not epoch 2, whose cost is NaN
    assert recovery(points[:2], 25.0) is None


def test_epochs_without_a_cost_are_left_out_of_the_last_epochs():
    # as benchmarks.report's last_epochs_within: neither within nor above the limit, nor in the mean cost
    points = tuple(SeedPoint(1000 * epoch, 1.0, cost, 10.0, 0.1)
                   for epoch, cost in enumerate([30.0, math.nan, 20.0, 40.0], start=1))
    row = seed_summary(SeedCurve("ours", 0, points, Path("x")), last=3, limit=25.0)
    assert (row["epochs_within_limit"], row["epochs_measured"], row["cost"]) == (1, 2, 30.0)


@pytest.mark.parametrize("problem, message", [
    ("other budget", "compares another run than .*: steps 8000 against 4000"),
    ("same seed, another curve", "seed 0: different curves in"),
    ("not a folder of the side by side", "no throughput.json and curves.csv there"),
    ("short curve", "3 epochs of cmdp-lab, not 4"),
    ("unreadable record", "unreadable"),
    ("--last too long", "--last 5 is more than the runs' 4 epochs"),
    ("curves from before the episode length",
     r"^omnisafe_seeds: error: \S+/curves.csv: no ep_len column .* --cmdp-run RUN --omnisafe-run RUN\)$"),
])
def test_refusals_are_one_line_and_write_nothing(tmp_path, capsys, problem, message):
    first = side_by_side(tmp_path / "a", 0, flat(1.0, 1.0), flat(2.0, 2.0))
    args = [str(first)]
    if problem == "other budget":
        second = side_by_side(tmp_path / "b", 1, flat(1.0, 1.0) * 2, flat(2.0, 2.0) * 2, steps=8000)
        args.append(str(second))
    elif problem == "same seed, another curve":
        args.append(str(side_by_side(tmp_path / "b", 0, flat(5.0, 1.0), flat(2.0, 2.0))))
    elif problem == "not a folder of the side by side":
        (tmp_path / "b").mkdir()
        args.append(str(tmp_path / "b"))
    elif problem == "short curve":
        args.append(str(side_by_side(tmp_path / "b", 1, flat(1.0, 1.0)[:3], flat(2.0, 2.0))))
    elif problem == "curves from before the episode length":
        curves = first / "curves.csv"
        curves.write_text("\n".join(line.rsplit(",", 1)[0] for line in curves.read_text().splitlines()) + "\n")
    elif problem == "unreadable record":
        (first / "throughput.json").write_text("{not json")
    else:
        args += ["--last", "5"]
    out = tmp_path / "out"
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("omnisafe_seeds: error: ")
    assert re.search(message, err), err
    assert not out.exists()


def test_the_table_shows_a_spread_only_over_several_seeds(capsys):
    """A configuration of one seed shows its means alone (a std over one seed says nothing), in the same columns
    as one of several seeds, whose means carry "± std"."""
    from cmdp.benchmarks.omnisafe_seeds import print_table

    def config(seeds, std):
        stat = {"mean": 10.0, "std": std}
        return {"seeds": seeds, "per_seed": {}, "return": stat, "cost": stat, "ep_len": stat,
                "epochs_within_limit": 3, "epochs": 10}

    print_table({"one": config([0], 0.0), "three": config([0, 1, 2], 1.5)}, last=10)
    header, one, three = capsys.readouterr().out.splitlines()
    assert "±" not in one and "+-" not in one and three.count("±") == 3
    assert len(one) == len(three) and one.index("3 of 10") == three.index("3 of 10")
