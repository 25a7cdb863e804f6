"""`cmdp report`'s figures and what it writes beside them: every algorithm visible in the learning curves, the
tradeoff legend worded by what it shows, stale figures of an earlier report removed, small limits shown."""
import json
import shutil
from pathlib import Path

from cmdp.benchmarks.report import RunData, curves_figure

HOPPER = "SafetyHopperVelocity-v1"


def run_with_curve(algo: str, seed: int, returns: list[float], costs: list[float], limit: float = 25.0) -> RunData:
    """A finished run with one progress row per epoch of 1000 steps, its summary's finals from the last epoch."""
    rows = [{"env_steps": str(1000 * (i + 1)), "ep_return": str(r), "ep_cost/cost": str(c), "episodes": "3"}
            for i, (r, c) in enumerate(zip(returns, costs))]
    return RunData(path=Path(algo) / f"seed{seed}", algo=algo, env=HOPPER, seed=seed, rows=rows,
                   summary={"final_return": returns[-1], "final_costs": {"cost": costs[-1]}, "finished": True,
                            "cost_limits": {"cost": limit}})


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_the_learning_curves_name_algorithms_whose_lines_coincide_together():
    """ppo and ppo_lag train alike while the multiplier stays at 0: ppo_lag's line was drawn over ppo's, so the
    figure showed one line for the two algorithms its legend listed. A line they share is drawn once, in black, and
    named "ppo = ppo_lag"; an algorithm whose line differs in a panel keeps its own, in its colour, there."""
    alike = {algo: [run_with_curve(algo, s, [1.0 + s, 2.0, 3.0], [30.0, 20.0 + s, 10.0]) for s in range(2)]
             for algo in ("ppo", "ppo_lag")}
    # cpo: the same return as the two, another cost
    cpo = [run_with_curve("cpo", s, [1.0 + s, 2.0, 3.0], [5.0, 5.0, 5.0]) for s in range(2)]
    returns, costs = curves_figure(HOPPER, {**alike, "cpo": cpo}).axes
    assert legend_texts(returns) == ["cpo = ppo = ppo_lag (2 seeds each)"]
    assert [line.get_color() for line in returns.lines] == ["black"]
    assert legend_texts(costs) == ["cpo (2 seeds)", "ppo = ppo_lag (2 seeds each)", "cost limit"]
    assert [line.get_color() for line in costs.lines] == ["C0", "black", "black"]  # the last: the limit

    apart = {"ppo": alike["ppo"], "ppo_lag": [run_with_curve("ppo_lag", 0, [1.0, 2.5, 3.0], [30.0, 20.0, 10.0])]}
    for ax in curves_figure(HOPPER, apart).axes:
        assert legend_texts(ax)[:2] == ["ppo (2 seeds)", "ppo_lag (1 seed)"]
        assert [line.get_color() for line in ax.lines][:2] == ["C0", "C1"]
        # nearly coinciding lines (the returns here differ at one epoch only): ppo_lag's had hidden ppo's where they
        # agree; dashed over solid, both show
        solid, dashed = [line.get_linestyle() for line in ax.lines][:2]
        assert solid == "-" and dashed == "--"


def test_the_tradeoff_legend_says_mean_and_std_only_over_several_seeds():
    """The legend's title said "marker: mean ± std" of markers that were each one seed's final value (a std over
    one seed, 0, says nothing, and was drawn as empty error bars); it now words what the markers are."""
    from cmdp.benchmarks.report import tradeoff_figure

    def title(by_algo) -> str:
        (ax,) = tradeoff_figure(HOPPER, by_algo).axes
        return ax.get_legend().get_title().get_text()

    one = {"ppo": [run_with_curve("ppo", 0, [1.0], [30.0])], "cpo": [run_with_curve("cpo", 0, [2.0], [10.0])]}
    assert title(one) == "marker: final value (one seed each)"
    (ax,) = tradeoff_figure(HOPPER, one).axes
    assert all(not container.has_xerr and not container.has_yerr for container in ax.containers)
    two = {"ppo": [run_with_curve("ppo", s, [1.0 + s], [30.0]) for s in range(2)]}
    assert title(two) == "dots: seeds; marker: mean ± std"
    assert title({**two, "cpo": one["cpo"]}) == "dots: seeds; marker: mean ± std (one seed: its value)"


def test_the_table_shows_a_small_cost_limit_and_the_costs_beside_it():
    """A limit was shown to 2 decimals, its zeros then stripped: 0.001 read "0", and the costs measured against it
    "0.00 ± 0.00". The limit is shown as set and the costs to the limit's two significant digits."""
    from cmdp.benchmarks.report import markdown_table, summarize

    small = [run_with_curve("ppo_lag", s, [1.0], [cost], limit=0.001) for s, cost in enumerate([0.0012, 0.0008])]
    usual = [run_with_curve("ppo", s, [1.0], [cost], limit=25.0) for s, cost in enumerate([20.0, 30.5])]
    usual[0].env = usual[1].env = "ExactChain-v0"
    rows = markdown_table(summarize(small + usual, reference={})).splitlines()[2:]
    assert [row.split(" | ")[5:7] for row in rows] == [["25.25 ± 5.25", "25"], ["0.0010 ± 0.0002", "0.001"]]

    def two_costs(seed: int, costs: dict) -> RunData:
        return RunData(path=Path(f"seed{seed}"), algo="ppo", env=HOPPER, seed=seed,
                       summary={"final_return": 1.0, "final_costs": costs, "finished": True,
                                "cost_limits": {"cost_a": 0.004, "cost_b": 2500.0}})

    table = summarize([two_costs(0, {"cost_a": 0.003, "cost_b": 2000.0})], reference={})
    (row,) = markdown_table(table).splitlines()[2:]
    assert row.split(" | ")[5:7] == ["0.0030 (0.004)", "2,000.00 (2,500)"]


def write_run(folder: Path, algo: str, env: str, seed: int) -> None:
    """A finished run folder of three epochs, as `cmdp train` writes the files the report reads."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"algo: {algo}\nenv: {env}\nseed: {seed}\n")
    (folder / "progress.csv").write_text("epoch,env_steps,ep_return,ep_cost/cost,episodes\n"
                                         + "".join(f"{i},{1000 * i},{i + seed},{30 - 5 * i},3\n" for i in (1, 2, 3)))
    (folder / "summary.json").write_text(json.dumps({
        "algo": algo, "env": env, "seed": seed, "env_steps": 3000, "epochs": 3, "wall_seconds": 1.0,
        "final_return": 3.0 + seed, "final_costs": {"cost": 15.0}, "cost_limits": {"cost": 25.0}, "finished": True}))


def test_a_report_removes_the_figures_of_an_earlier_report_that_it_does_not_draw(tmp_path):
    """A rerun with --no-plots (or over fewer environments) left the earlier report's PNGs in the folder, figures
    that its report.md no longer showed and that no longer matched it. The figures an earlier report.md showed and
    this one does not draw are removed; the user's own files in the folder are not touched."""
    from cmdp.benchmarks.report import write_report

    root, out = tmp_path / "runs", tmp_path / "report"
    chain = "ExactChain-v0"
    for env in (HOPPER, chain):
        write_run(root / env / "ppo" / "seed0", "ppo", env, 0)
    write_report(root, out)
    figures = {f"{kind}_{env}.png" for kind in ("curves", "tradeoff") for env in (HOPPER, chain)}
    assert {p.name for p in out.glob("*.png")} == figures
    mine = ["notes.png", f"curves_{chain}-by-hand.png", "frames_mine.png"]  # a user's files, named by no report
    for name in mine:
        (out / name).write_bytes(b"mine")

    shutil.rmtree(root / chain)
    write_report(root, out)
    assert {p.name for p in out.glob("*.png")} == {f"curves_{HOPPER}.png", f"tradeoff_{HOPPER}.png", *mine}
    assert f"curves_{chain}.png" not in (out / "report.md").read_text()

    write_report(root, out, plots=False)
    assert {p.name for p in out.glob("*.png")} == set(mine)
    assert ".png" not in (out / "report.md").read_text()
