"""Benchmark suites and reports: `cmdp benchmark` (local workers, Ray, resume, failures, bad suites) and `cmdp report`."""
import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cmdp.benchmarks.report import OMNISAFE_ALGOS, OMNISAFE_ENVS, load_reference
from cmdp.benchmarks.board import STATUS_FILE, read_status
from cmdp.benchmarks.cells import cell_dir, plan_cells
from cmdp.benchmarks.runner import run_suite
from cmdp.benchmarks.suite import load_suite
from cmdp.cli import main
from cmdp.config import dump_yaml
from cmdp.logger import TIMING_COLUMNS, read_progress
from cmdp.registry import algorithms
from cmdp.trainer import CHECKPOINT, new_run, resolve_config
from run_helpers import one_error_line

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "benchmarks" / "suites" / "smoke.yaml"
CORE = ROOT / "benchmarks" / "suites" / "safety-gym-core.yaml"
CHAIN = "ExactChain-v0"
HOPPER = "SafetyHopperVelocity-v1"


def rows_without_timing(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in read_progress(run_dir / "progress.csv")]


def write_suite(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump(fields, sort_keys=False))
    return path


def cell_config(algo: str, env: str, seed: int, total_steps: int, **extra):
    """The config the runner resolves for a cell of a suite with `config: extra`."""
    cfg, _ = resolve_config({"torch_threads": 1, "total_steps": total_steps, **extra, "algo": algo, "env": env,
                             "seed": seed})
    return cfg


# --- the smoke suite end to end ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_local(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "local"
    code = main(["benchmark", str(SMOKE), "--out", str(out), "--workers", "2"])
    return code, out


def test_smoke_suite_with_two_local_workers(smoke_local, tmp_path):
    code, out = smoke_local
    assert code == 0
    suite = load_suite(SMOKE)
    assert len(suite.environments) * len(suite.algorithms) * len(suite.seeds) == 8
    status = read_status(out)
    assert status["state"] == "complete" and status["mode"] == "2 local workers"
    assert status["counts"] == {"finished": 8, "running": 0, "failed": 0, "pending": 0}
    for env in suite.environments:
        for algo in suite.algorithms:
            for seed in suite.seeds:
                run = out / env / algo / f"seed{seed}"
                summary = json.loads((run / "summary.json").read_text())
                assert (summary["algo"], summary["env"], summary["seed"]) == (algo, env, seed)
                assert summary["finished"] and summary["env_steps"] == 4000 and summary["epochs"] == 4
                config = yaml.safe_load((run / "config.yaml").read_text())
                assert config["steps_per_epoch"] == 1000 and config["torch_threads"] == 1
                assert (run / CHECKPOINT).is_file() and list((run / "tb").glob("events.out.tfevents.*"))
                assert status["cells"][f"{env}/{algo}/seed{seed}"]["status"] == "finished"
    assert yaml.safe_load((out / "suite.yaml").read_text())["name"] == "smoke"

    # a cell is exactly what `cmdp train` writes for the same settings
    direct = tmp_path / "direct"
    assert main(["train", "--algo", "ppo_lag", "--env", HOPPER, "--seed", "1", "--total-steps", "4000",
                 "--set", "steps_per_epoch=1000", "--out", str(direct), "--no-progress"]) == 0
    cell = out / HOPPER / "ppo_lag" / "seed1"
    assert (cell / "config.yaml").read_text() == (direct / "config.yaml").read_text()
    assert rows_without_timing(cell) == rows_without_timing(direct)


def test_report_of_the_smoke_suite(smoke_local, tmp_path):
    code, out = smoke_local
    assert code == 0
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    rows = list(csv.DictReader((tmp_path / "rep" / "results.csv").open()))
    assert [(r["env"], r["algo"]) for r in rows] == [(CHAIN, "ppo"), (CHAIN, "ppo_lag"), (HOPPER, "ppo"),
                                                     (HOPPER, "ppo_lag")]
    assert all(r["seeds"] == "2" and r["env_steps"] == "4000" for r in rows)
    hopper_lag = rows[3]
    assert float(hopper_lag["ref_return_mean"]) == 961.92 and hopper_lag["ref_algo"] == "PPOLag"
    assert rows[0]["ref_algo"] == ""  # OmniSafe has no ExactChain
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "Budget differs from OmniSafe's" in md and "961.92 ± 752.87†" in md
    for env in (CHAIN, HOPPER):
        assert f"![{env}](curves_{env}.png)" in md
        assert (tmp_path / "rep" / f"curves_{env}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_smoke_suite_on_a_local_ray(smoke_local, tmp_path):
    ray = pytest.importorskip("ray")
    code_local, out_local = smoke_local
    assert code_local == 0
    # two of the smoke suite's eight cells (one per environment family), the same cells as the local run's: the
    # test is about Ray's plumbing, and each cell costs a Ray worker process
    smoke = yaml.safe_load(SMOKE.read_text())
    suite = write_suite(tmp_path / "smoke-ray.yaml", **{**smoke, "algorithms": ["ppo_lag"], "seeds": [1]})
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        code = run_suite(suite, out=tmp_path / "ray", use_ray=True)
        assert ray.is_initialized()  # a Ray session the caller started is left running
    finally:
        ray.shutdown()
    assert code == 0
    status = read_status(tmp_path / "ray")
    assert status["mode"] == "ray" and status["counts"]["finished"] == 2
    for key in status["cells"]:  # same numbers as the local workers, cell by cell
        assert rows_without_timing(tmp_path / "ray" / key) == rows_without_timing(out_local / key), key


def test_a_ray_address_ray_refuses_is_one_line_and_writes_nothing(tmp_path, capsys):
    # ray.init's ValueError (a malformed address) or ConnectionError (no cluster answers, after up to two minutes)
    # ended in a traceback, with the output folder and its status.json already written
    pytest.importorskip("ray")
    suite = write_suite(tmp_path / "s.yaml", name="r", algorithms=["ppo"], environments=[CHAIN], seeds=[0],
                        total_steps=400, config={"steps_per_epoch": 200})
    out = tmp_path / "out"
    assert main(["benchmark", str(suite), "--out", str(out), "--ray", "nonsense"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-2:] == ["joining the Ray cluster at nonsense",
                        "cmdp: error: --ray: cannot start or join the Ray cluster at nonsense: Invalid address format: "
                        "nonsense"]
    assert not out.exists()


def test_a_ray_address_where_nothing_answers_is_one_line_at_once(tmp_path, capsys):
    # Ray retried such an address for minutes, with a warning line every few seconds, before any error
    ray = pytest.importorskip("ray")
    suite = write_suite(tmp_path / "s.yaml", name="r", algorithms=["ppo"], environments=[CHAIN], seeds=[0],
                        total_steps=400, config={"steps_per_epoch": 200})
    with socket.socket() as probe:  # a port nothing listens on: bound, then let go
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "out"
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        assert main(["benchmark", str(suite), "--out", str(out), "--ray", address]) == 2
        # the error line alone: before, the plan's line and "joining the Ray cluster at ..." stood above it
        assert capsys.readouterr().err.splitlines() == [
            f"cmdp: error: --ray: nothing answers at {address} (Connection refused); start the cluster there (ray "
            f"start --head --port {port}) or give its address"]
        assert not out.exists() and not ray.is_initialized()


@pytest.mark.parametrize("address, why", [
    # Ray took the scheme's letters for a host name: "nothing answers at ... (Name or service not known); start the
    # cluster there (ray start --head --port 8265)", or its own parse error on an address it had rewritten
    ("http://127.0.0.1:8265", " (an http address is the Ray dashboard's, which takes jobs, not a driver)"),
    ("ray:/localhost:10001", " (host:port with a port number)"),
    ("127.0.0.1:637x", " (host:port with a port number)"),
])
def test_a_misspelt_ray_address_is_one_line_saying_what_ray_takes(address, why, tmp_path, capsys):
    pytest.importorskip("ray")
    suite = write_suite(tmp_path / "s.yaml", name="r", algorithms=["ppo"], environments=[CHAIN], seeds=[0],
                        total_steps=400, config={"steps_per_epoch": 200})
    out = tmp_path / "out"
    assert main(["benchmark", str(suite), "--out", str(out), "--ray", address]) == 2
    assert capsys.readouterr().err.splitlines() == [(
        f"cmdp: error: --ray: {address} is not a Ray cluster address{why}; give the cluster's address: host:port (its "
        f"head node, port 6379 by default), ray://host:port (Ray Client, 10001 by default) or auto")]
    assert not out.exists()


def test_the_command_an_interrupted_ray_suite_suggests_runs_on_ray_again(tmp_path, capsys, monkeypatch):
    # it said `cmdp benchmark SUITE --out OUT`, which trains the rest of a cluster's grid on this machine's workers
    import cmdp.benchmarks.runner as runner

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "start_ray", lambda address: False)  # Ray's session is not what is tested
    monkeypatch.setattr(runner, "run_ray", interrupted)
    suite = write_suite(tmp_path / "s.yaml", name="r", algorithms=["ppo"], environments=[CHAIN], seeds=[0],
                        total_steps=400, config={"steps_per_epoch": 200})
    out = tmp_path / "out"
    for flags, again in ((["--ray"], "--ray"), (["--ray", "auto"], "--ray auto")):
        assert main(["benchmark", str(suite), "--out", str(out), *flags]) == 130
        assert capsys.readouterr().err.splitlines()[-1] == \
            f"interrupted; rerun to resume: cmdp benchmark {suite} --out {out} {again}"


# --- resume, failures --------------------------------------------------------------------------------
def test_rerun_skips_finished_resumes_interrupted_and_starts_new_cells(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.yaml", name="resume", algorithms=["ppo_lag"], environments=[CHAIN],
                        seeds=[0, 1, 2], total_steps=4000, config={"steps_per_epoch": 1000})
    out = tmp_path / "out"
    done, cut, fresh = (cell_dir(out, CHAIN, "ppo_lag", s) for s in (0, 1, 2))

    trainer, _ = new_run(cell_config("ppo_lag", CHAIN, 0, 4000, steps_per_epoch=1000), str(done))
    trainer.train(done, progress=False)

    def interrupt(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    trainer, _ = new_run(cell_config("ppo_lag", CHAIN, 1, 4000, steps_per_epoch=1000), str(cut))
    with pytest.raises(KeyboardInterrupt):
        trainer.train(cut, progress=False, on_epoch=interrupt)
    assert (cut / CHECKPOINT).is_file() and not (cut / "summary.json").exists()
    cut_rows = read_progress(cut / "progress.csv")
    assert len(cut_rows) == 2

    reference = tmp_path / "uninterrupted"
    trainer, _ = new_run(cell_config("ppo_lag", CHAIN, 1, 4000, steps_per_epoch=1000), str(reference))
    trainer.train(reference, progress=False)

    before = {name: (done / name).stat().st_mtime_ns for name in ("summary.json", "progress.csv", CHECKPOINT)}
    assert main(["benchmark", str(suite), "--out", str(out), "--workers", "1"]) == 0

    # finished cell: untouched
    assert {name: (done / name).stat().st_mtime_ns for name in before} == before
    # interrupted cell: resumed from its checkpoint (its first two rows kept as written, timing included),
    # ending exactly where an uninterrupted run ends
    resumed_rows = read_progress(cut / "progress.csv")
    assert resumed_rows[:2] == cut_rows
    assert rows_without_timing(cut) == rows_without_timing(reference)
    assert json.loads((cut / "summary.json").read_text())["finished"]
    # never-started cell: trained
    assert json.loads((fresh / "summary.json").read_text())["env_steps"] == 4000
    status = read_status(out)
    assert [status["cells"][f"{CHAIN}/ppo_lag/seed{s}"]["start"] for s in (0, 1, 2)] == ["skip", "resume", "new"]
    assert all(c["status"] == "finished" for c in status["cells"].values())
    err = capsys.readouterr().err
    assert "resume   ExactChain-v0/ppo_lag/seed1 at 2,000 steps" in err

    # nothing left to do: a third run trains nothing and changes nothing
    stamp = (fresh / "summary.json").stat().st_mtime_ns
    assert main(["benchmark", str(suite), "--out", str(out), "--workers", "1"]) == 0
    assert (fresh / "summary.json").stat().st_mtime_ns == stamp


DIE_PLUGIN = '''
import os
from cmdp.control import VectorFamily
from cmdp.registry import register_env


def _die(num_envs=1, **kwargs):
    os._exit(7)  # a worker that dies without a word (as when it is killed or runs out of memory)


def _fail(num_envs=1, **kwargs):
    raise RuntimeError("bogus_option: this environment cannot be built")  # a config that passes the checks


register_env("DieOnBuild-v0", VectorFamily(_die), group="test")
register_env("FailOnBuild-v0", VectorFamily(_fail), group="test")
'''


def test_failing_cells_do_not_stop_the_others(tmp_path, capsys):
    plugin = tmp_path / "die_plugin.py"
    plugin.write_text(DIE_PLUGIN)
    suite = write_suite(tmp_path / "s.yaml", name="failing", algorithms=["ppo"],
                        environments=["FailOnBuild-v0", "DieOnBuild-v0", CHAIN], seeds=[0], total_steps=2000,
                        config={"steps_per_epoch": 1000, "plugins": [str(plugin)]})
    out = tmp_path / "out"
    assert main(["benchmark", str(suite), "--out", str(out), "--workers", "1"]) == 1
    captured = capsys.readouterr()
    status = read_status(out)
    assert status["state"] == "failed"
    assert status["counts"] == {"finished": 1, "running": 0, "failed": 2, "pending": 0}

    bad = status["cells"]["FailOnBuild-v0/ppo/seed0"]
    assert bad["status"] == "failed" and "bogus_option" in bad["error"]
    error_txt = (out / "FailOnBuild-v0" / "ppo" / "seed0" / "error.txt").read_text()
    assert "Traceback" in error_txt and "bogus_option" in error_txt
    died = status["cells"]["DieOnBuild-v0/ppo/seed0"]
    assert died["status"] == "failed" and "worker process died (exit code 7" in died["error"]
    assert json.loads((out / CHAIN / "ppo" / "seed0" / "summary.json").read_text())["finished"]
    assert "FAILED FailOnBuild-v0/ppo/seed0" in captured.out and "FAILED DieOnBuild-v0/ppo/seed0" in captured.out
    # the command that retries them runs them as this one did (it dropped --workers, and --ray)
    assert (f"rerun to retry the failed cells (finished ones are skipped): cmdp benchmark {suite} --out {out} "
            f"--workers 1") in captured.out.splitlines()

    # a rerun (in this process) retries only the failed cells: the good one is skipped, the bad one fails again
    write_suite(suite, name="failing", algorithms=["ppo"], environments=["FailOnBuild-v0", CHAIN], seeds=[0],
                total_steps=2000, config={"steps_per_epoch": 1000, "plugins": [str(plugin)]})
    assert main(["benchmark", str(suite), "--out", str(out), "--workers", "0"]) == 1
    status = read_status(out)
    assert status["cells"][f"{CHAIN}/ppo/seed0"]["start"] == "skip"
    assert status["cells"]["FailOnBuild-v0/ppo/seed0"]["status"] == "failed"


def _worker_pids(driver_pid: int) -> list[int]:
    """The live local worker processes (spawned by multiprocessing) whose parent is `driver_pid`, from /proc."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[1]) == driver_pid and b"spawn_main" in cmdline:
            pids.append(int(stat.parent.name))
    return pids


def _alive(pid: int) -> bool:
    """A process that exists and has not exited (a zombie waiting for its parent counts as gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2:].split()[0] not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the driver's workers in /proc (Linux)")
def test_a_killed_driver_reads_as_interrupted_and_a_rerun_finishes(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.yaml", name="killed", algorithms=["ppo_lag"], environments=[CHAIN],
                        # 12 epochs: long enough on a fast machine for status.json (written at most once a second
                        # between events) to show a cell under way with an epoch behind it
                        seeds=[0, 1], total_steps=12_000, config={"steps_per_epoch": 1000})
    out = tmp_path / "out"
    driver = subprocess.Popen([sys.executable, "-m", "cmdp", "benchmark", str(suite), "--out", str(out),
                               "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while True:  # until a cell is under way with an epoch (and so a checkpoint) behind it
            status = read_status(out)
            if status and status["state"] == "running" and any(
                    c["status"] == "running" and c["env_steps"] >= 1000 for c in status["cells"].values()):
                break
            assert driver.poll() is None, "the driver ended before it could be killed"
            assert time.time() < deadline, "no cell got under way"
            time.sleep(0.1)
        assert status["driver"]["pid"] == driver.pid and status["driver"]["host"] == socket.gethostname()
        assert status["driver"]["started"] <= status["driver"]["heartbeat"]
        workers = _worker_pids(driver.pid)
        assert len(workers) == 1
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()

    # the file still says what the driver last wrote; read_status knows its driver is gone
    assert json.loads((out / STATUS_FILE).read_text())["state"] == "running"
    status = read_status(out)
    assert status["state"] == "interrupted", status
    assert f"pid {driver.pid} on {socket.gethostname()}" in status["interrupted_because"]
    assert status["counts"]["running"] == 0 and status["counts"]["pending"] >= 1
    # the orphaned worker stops rather than train on unseen (and race the rerun below)
    deadline = time.time() + 60
    while any(_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), "the killed driver's worker is still running"
    # ...at once: it did not train on to its next report, fail to send it and leave an error.txt
    assert not list(out.glob("*/*/seed*/error.txt"))

    capsys.readouterr()
    assert main(["benchmark", str(suite), "--out", str(out), "--workers", "0"]) == 0
    err = capsys.readouterr().err
    assert f"the previous run in {out} was interrupted: its driver (pid {driver.pid}" in err
    status = read_status(out)
    assert status["state"] == "complete" and status["counts"]["finished"] == 2
    assert status["driver"]["pid"] == os.getpid()
    assert "resume" in [c["start"] for c in status["cells"].values()]
    for seed in (0, 1):
        summary = json.loads((cell_dir(out, CHAIN, "ppo_lag", seed) / "summary.json").read_text())
        assert summary["finished"] and summary["env_steps"] == 12_000


def test_read_status_judges_a_running_suite_by_its_driver(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that was alive and is not any more

    def state(**driver):
        doc = {"state": "running", "counts": {"finished": 0, "running": 1, "failed": 0, "pending": 0},
               "cells": {"a": {"status": "running"}},
               "driver": {"pid": os.getpid(), "host": socket.gethostname(), "started": "2024-01-01T00:00:00",
                          "heartbeat": "2024-01-01T00:00:10", **driver}}
        (tmp_path / STATUS_FILE).write_text(json.dumps(doc))
        return read_status(tmp_path)

    assert read_status(tmp_path / "nowhere") is None
    assert state()["state"] == "running"  # this process: alive
    assert state(pid=gone.pid, host="another-host")["state"] == "running"  # another host's pid: cannot tell
    dead = state(pid=gone.pid)
    assert dead["state"] == "interrupted" and dead["cells"]["a"]["status"] == "pending"
    assert dead["counts"] == {"finished": 0, "running": 0, "failed": 0, "pending": 1}
    assert "last heartbeat 2024-01-01T00:00:10" in dead["interrupted_because"]
    if Path("/proc/self/stat").is_file():  # a pid now held by another process than the driver that wrote it
        assert state(process_start=-1)["state"] == "interrupted"


# --- bad suites ---------------------------------------------------------------------------------------
GOOD = {"name": "t", "algorithms": ["ppo", "ppo_lag"], "environments": [CHAIN], "seeds": [0], "total_steps": 2000}


@pytest.mark.parametrize("text, message", [
    ("algorithms: [ppo\n", "is not valid YAML"),
    ("- a\n- list\n", "must hold a mapping"),
    (yaml.safe_dump({**GOOD, "algorithm": ["ppo"]}), "unknown key 'algorithm' (did you mean 'algorithms'?)"),
    (yaml.safe_dump({k: v for k, v in GOOD.items() if k != "total_steps"}), "missing key 'total_steps'"),
    (yaml.safe_dump({**GOOD, "algorithms": ["ppo_lagg"]}), "algorithms: unknown algorithm 'ppo_lagg'"),
    (yaml.safe_dump({**GOOD, "environments": ["SafetyPointGoal9-v0"]}), "unknown environment 'SafetyPointGoal9-v0'"),
    (yaml.safe_dump({**GOOD, "config": {"learning_rate": 0.1}}), "config: unknown key 'learning_rate'"),
    (yaml.safe_dump({**GOOD, "config": {"lagrangian_lr": 0.1}}), "goes under algo_config: {ppo_lag: ...}"),
    # another algorithm's key named the algorithm after the hint, suggested a key of the same spelling and wrote two
    # algorithms as one YAML key: "unknown key 'multiplier_delay' (did you mean 'policy_delay'?); a key that only some
    # algorithms have goes under algo_config: {sac_lag, td3_pid: ...} for algorithm 'ddpg'"
    (yaml.safe_dump({**GOOD, "algorithms": ["sac_lag", "td3_pid", "ddpg"], "environments": ["QuadraticBandit-v0"],
                     "total_steps": 40_000, "config": {"multiplier_delay": 1}}),
     "config: unknown key 'multiplier_delay' for algorithm 'ddpg'; a key that only some algorithms have goes under "
     "algo_config: {sac_lag: ..., td3_pid: ...}"),
    (yaml.safe_dump({**GOOD, "config": {"gamma": 1.5}}), "cell ExactChain-v0/ppo/seed0: gamma must be in [0, 1]"),
    (yaml.safe_dump({**GOOD, "algo_config": {"cpo": {"clip": 0.1}}}), "'cpo' is not one of the suite's algorithms"),
    (yaml.safe_dump({**GOOD, "env_config": {CHAIN: {"seed": 3}}}), "'seed' is set by the grid"),
    (yaml.safe_dump({**GOOD, "seeds": [0, 0]}), "seed 0 is listed twice"),
    # a count is listed as range(N) only once it is known to fit: 10**11 ended in a MemoryError traceback
    (yaml.safe_dump({**GOOD, "seeds": 10**11}), "seeds: a count of seeds must be at most 4294967296 (2**32: seeds "
                                                "are in [0, 2**32 - 1]), got 100000000000"),
    (yaml.safe_dump({**GOOD, "total_steps": -5}), "total_steps must be an integer >= 1"),
    (yaml.safe_dump({**GOOD, "name": "a/b"}), "name must be letters"),
    (yaml.safe_dump({**GOOD, "preset": "omnisafe-0.5"}), "preset: unknown preset 'omnisafe-0.5'; presets: omnisafe"),
    (yaml.safe_dump({**GOOD, "algorithms": ["ppo", "pdo"], "preset": "omnisafe"}),
     "preset: preset 'omnisafe' covers ppo, ppo_lag, pid_lag, cup, cpo, trpo_lag; it has no keys for 'pdo'"),
    (yaml.safe_dump({**GOOD, "preset": ["omnisafe"]}), "preset must be a preset's name"),
])
def test_bad_suite_fails_cleanly_before_anything_runs(tmp_path, capsys, text, message):
    suite = tmp_path / "bad.yaml"
    suite.write_text(text)
    out = tmp_path / "out"
    assert main(["benchmark", str(suite), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cmdp: error:") and message in err, err
    assert str(suite) in err or "is not valid YAML" in err or "must hold a mapping" in err
    assert not out.exists()


@pytest.mark.parametrize("limits, message", [({"nosuchcost": 3}, "nosuchcost"), (-1, "-1")])
def test_invalid_cost_limits_are_refused_by_a_dry_run(tmp_path, capsys, limits, message):
    # the cost names and limits of an environment are checked when each cell's config is resolved
    suite = write_suite(tmp_path / "s.yaml", **{**GOOD, "env_config": {CHAIN: {"cost_limits": limits}}})
    out = tmp_path / "out"
    assert main(["benchmark", str(suite), "--out", str(out), "--dry-run"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cmdp: error:"), captured.err
    assert str(suite) in lines[0] and "cost_limits" in lines[0] and message in lines[0], lines[0]
    assert captured.out == "" and not out.exists()


def test_bad_suite_exit_status_from_the_command_line(tmp_path):
    missing = subprocess.run([sys.executable, "-m", "cmdp", "benchmark", str(tmp_path / "nope.yaml")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "suite file not found" in missing.stderr


@pytest.mark.parametrize("suite", sorted((ROOT / "benchmarks" / "suites").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_suite_plans_its_cells(suite, tmp_path, capsys, monkeypatch):
    """Each suite file we ship resolves every cell's config (`--dry-run`), from the repository root as its comments
    say to run it; the text suite's model folders are the reader's to build first."""
    monkeypatch.chdir(ROOT)
    code = main(["benchmark", str(suite), "--out", str(tmp_path / "out"), "--dry-run"])
    err = capsys.readouterr().err
    if suite.name == "text-safe-rlhf.yaml":
        assert code == 2 and "env_kwargs.policy: runs/text-default/sft does not exist" in err, err  # make_default
        return
    assert code == 0, err
    assert not (tmp_path / "out").exists()


def test_dry_run_lists_the_cells_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    # `--ray SUITE` (the suite right after the flag) is read as the suite, not as a Ray address
    assert main(["benchmark", "--ray", str(SMOKE), "--out", str(out), "--dry-run"]) == 0
    captured = capsys.readouterr()
    listed = captured.out.splitlines()
    assert len(listed) == 8 and listed[0].split()[:2] == ["new", f"{CHAIN}/ppo/seed0"]
    assert "8 cells" in captured.err and "; ray" in captured.err
    assert not out.exists()
    assert main(["benchmark", str(SMOKE), "--ray", "--workers", "2", "--dry-run"]) == 2
    assert "--workers is for local runs" in capsys.readouterr().err


def test_a_suite_of_one_counts_it_in_the_singular(tmp_path, capsys):
    """One environment, algorithm, seed and cell: the plan line and the end-of-suite line say so in the singular
    (they had said '1 environments x ... x 1 seeds = 1 cells' and '1 cells')."""
    suite = write_suite(tmp_path / "s.yaml", **{**GOOD, "algorithms": ["ppo"], "total_steps": 200,
                                               "config": {"steps_per_epoch": 100}})
    assert main(["benchmark", str(suite), "--out", str(tmp_path / "out"), "--workers", "0"]) == 0
    captured = capsys.readouterr()
    assert f"suite t: 1 environment x 1 algorithm x 1 seed = 1 cell -> {tmp_path / 'out'} (" in captured.err
    assert captured.out.startswith("suite t: 1 cell, 1 finished, 0 failed")


def test_a_dry_run_counts_a_cells_cpus_in_the_plural(tmp_path, capsys):
    # a cell of two Hopper copies had been listed as "(4,000 steps, 2 cpu)"
    suite = write_suite(tmp_path / "s.yaml", **{**GOOD, "algorithms": ["ppo"], "environments": [CHAIN, HOPPER],
                                               "total_steps": 4000, "env_config": {HOPPER: {"num_envs": 2}}})
    assert main(["benchmark", str(suite), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"new    {CHAIN}/ppo/seed0  (4,000 steps, 1 cpu)",
                                                    f"new    {HOPPER}/ppo/seed0  (4,000 steps, 2 cpus)"]


def test_a_rerun_keeps_the_final_numbers_of_the_cells_it_skips_in_status_json(tmp_path, capsys):
    """status.json keeps each finished cell's final numbers; a rerun (to retry a failed cell, or of a finished
    suite) had written the cells it skipped without them."""
    suite = write_suite(tmp_path / "s.yaml", **{**GOOD, "algorithms": ["ppo"], "total_steps": 200,
                                               "config": {"steps_per_epoch": 100}})
    out = tmp_path / "out"
    assert main(["benchmark", str(suite), "--out", str(out), "--workers", "0"]) == 0
    first = read_status(out)["cells"][f"{CHAIN}/ppo/seed0"]
    assert main(["benchmark", str(suite), "--out", str(out), "--workers", "0"]) == 0
    capsys.readouterr()
    again = read_status(out)["cells"][f"{CHAIN}/ppo/seed0"]
    assert again["start"] == "skip" and again["status"] == "finished"
    for key in ("env_steps", "wall_seconds", "final_return", "final_costs", "cost_limits"):
        assert again[key] == first[key], key


def test_a_suite_preset_reaches_every_cell_below_the_suites_own_keys(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.yaml", **{**GOOD, "algorithms": ["ppo_lag", "cpo"], "preset": "omnisafe",
                                               "algo_config": {"cpo": {"batch_size": 256}}})
    cells, _ = plan_cells(load_suite(suite), tmp_path / "out")
    configs = {cell.key.split("/")[1]: cell.config for cell in cells}
    # ppo_lag differs from OmniSafe's PPOLag in no keyed row, so the preset adds nothing to its cell
    assert "kl_reduction" not in configs["ppo_lag"] and configs["ppo_lag"]["batch_size"] == 64
    assert configs["cpo"]["kl_reduction"] == "mean" and configs["cpo"]["cpo_constraint_units"] == "episode"
    assert configs["cpo"]["batch_size"] == 256  # algo_config wins over the preset
    # the run records the preset in the suite's copy, and the report says so
    assert main(["benchmark", str(suite), "--out", str(tmp_path / "out"), "--workers", "0"]) == 0
    assert yaml.safe_load((tmp_path / "out" / "suite.yaml").read_text())["preset"] == "omnisafe"
    assert main(["report", str(tmp_path / "out"), "--no-plots"]) == 0
    assert "trained with the preset `omnisafe`" in (tmp_path / "out" / "report" / "report.md").read_text()


def test_a_folder_holding_another_config_is_refused(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.yaml", **{**GOOD, "algorithms": ["ppo"]})
    out = tmp_path / "out"
    other = cell_dir(out, CHAIN, "ppo", 0)
    other.mkdir(parents=True)
    (other / "config.yaml").write_text(dump_yaml(cell_config("ppo", CHAIN, 0, 3000)))
    assert main(["benchmark", str(suite), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a run with a different config" in err and "total_steps: 3000 there, 2000 in the suite" in err
    assert not (out / STATUS_FILE).exists()


@pytest.mark.parametrize("name", ["status.json", "suite.yaml"])
def test_a_folder_where_the_suite_keeps_a_file_is_refused_before_anything_runs(name, tmp_path, capsys):
    # status.json as a folder: the grid's plan was printed, then os.replace's IsADirectoryError traceback
    suite = write_suite(tmp_path / "s.yaml", **{**GOOD, "algorithms": ["ppo"]})
    out = tmp_path / "out"
    (out / name).mkdir(parents=True)
    assert main(["benchmark", str(suite), "--out", str(out)]) == 2
    assert one_error_line(capsys.readouterr().err) == \
        f"cmdp: error: {out / name} is a folder where a suite run keeps a file; remove it or choose another --out"
    assert [p.name for p in out.iterdir()] == [name]


def test_safety_gym_core_suite_is_valid(tmp_path):
    wanted = yaml.safe_load(CORE.read_text())["algorithms"]
    missing = [a for a in wanted if a not in algorithms()]
    if missing:
        pytest.skip(f"algorithms of safety-gym-core not registered yet: {missing}")
    suite = load_suite(CORE)
    cells, notes = plan_cells(suite, tmp_path / "core")
    assert notes == []  # 1e7 is a whole number of 20,000-step epochs
    assert len(cells) == 6 * len(wanted) * 3 and len(wanted) == 22
    assert set(suite.environments) == set(OMNISAFE_ENVS)
    for cell in cells:
        assert cell.start == "new" and cell.config["total_steps"] == 10_000_000
        assert cell.config["steps_per_epoch"] == 20_000 and cell.config["cost_limits"] == 25
    assert not (tmp_path / "core").exists()


# --- reports from hand-written run folders -------------------------------------------------------------
def make_run(folder: Path, algo: str, env: str, seed: int, costs: list, limits: dict, final_return: float,
             final_costs: dict, wall: float, finished: bool = True, steps_per_epoch: int = 1000,
             total_steps: int | None = None) -> None:
    """A run folder written by hand: config.yaml, progress.csv (one row per entry of `costs`), summary.json."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"algo": algo, "env": env, "seed": seed,
                                                        "total_steps": total_steps or steps_per_epoch * len(costs)}))
    names = list(limits)
    with (folder / "progress.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "env_steps", "ep_return", "ep_cost", "episodes", *[f"ep_cost/{n}" for n in names],
                    "wall_s"])
        for i, c in enumerate(costs, 1):
            c = c if isinstance(c, dict) else {names[0]: c}
            nan = any(v is None for v in c.values())
            w.writerow([i, i * steps_per_epoch, "" if nan else float(i), "" if nan else sum(c.values()),
                        0 if nan else 3, *["" if c[n] is None else c[n] for n in names], wall * i / len(costs)])
    if finished:
        steps = steps_per_epoch * len(costs)
        (folder / "summary.json").write_text(json.dumps({
            "algo": algo, "env": env, "seed": seed, "env_steps": steps, "epochs": len(costs), "wall_seconds": wall,
            "steps_per_s": steps / wall, "final_return": final_return, "final_costs": final_costs,
            "cost_limits": limits, "finished": True}))


def test_report_numbers_from_synthetic_runs(tmp_path):
    root = tmp_path / "runs"
    lim = {"cost": 25.0}
    # 20 epochs each: the last 10% is 2 epochs per seed; 20 and 25 (= the limit) are within, 24 too, 30 is not
    make_run(root / HOPPER / "ppo_lag" / "seed0", "ppo_lag", HOPPER, 0, [50.0] * 18 + [20.0, 25.0], lim,
             10.0, {"cost": 20.0}, wall=10.0)
    make_run(root / HOPPER / "ppo_lag" / "seed1", "ppo_lag", HOPPER, 1, [50.0] * 18 + [24.0, 30.0], lim,
             14.0, {"cost": 30.0}, wall=20.0)
    # unfinished: left out of the table unless --partial
    make_run(root / HOPPER / "ppo_lag" / "seed2", "ppo_lag", HOPPER, 2, [1.0] * 5, lim, 0.0, {}, wall=5.0,
             finished=False, total_steps=20_000)
    # two costs, 12 epochs: the last ceil(1.2) = 2 epochs count; the last finished no episode (left out), the one
    # before is within both limits; earlier epochs break cost_b (they must not count)
    two = {"cost_a": 1.5, "cost_b": 1.0}
    make_run(root / "ExactTwoCost-v0" / "ppo" / "seed0", "ppo", "ExactTwoCost-v0", 0,
             [{"cost_a": 0.0, "cost_b": 2.0}] * 10 + [{"cost_a": 1.5, "cost_b": 0.5}, {"cost_a": None, "cost_b": None}],
             two, 4.5, {"cost_a": 1.5, "cost_b": 0.5}, wall=6.0)
    # a cell that failed before it wrote anything but its error
    (root / CHAIN / "cpo" / "seed0").mkdir(parents=True)
    (root / CHAIN / "cpo" / "seed0" / "error.txt").write_text("Traceback...\nRuntimeError: boom\n")

    assert main(["report", str(root), "--out", str(tmp_path / "rep")]) == 0
    rows = {(r["env"], r["algo"]): r for r in csv.DictReader((tmp_path / "rep" / "results.csv").open())}
    assert set(rows) == {(HOPPER, "ppo_lag"), ("ExactTwoCost-v0", "ppo")}
    hop = rows[(HOPPER, "ppo_lag")]
    assert (hop["seeds"], hop["seed_list"], hop["env_steps"]) == ("2", "0 1", "20000")
    assert float(hop["return_mean"]) == 12.0 and float(hop["return_std"]) == 2.0
    assert float(hop["cost_mean/cost"]) == 25.0 and float(hop["cost_std/cost"]) == 5.0
    assert float(hop["cost_limit/cost"]) == 25.0
    assert float(hop["within_limit"]) == 0.75 and (hop["within_limit_epochs"], hop["measured_epochs"]) == ("3", "4")
    assert float(hop["wall_s_mean"]) == 15.0 and float(hop["steps_per_s_mean"]) == 1500.0
    ref = load_reference()[(OMNISAFE_ALGOS["ppo_lag"], OMNISAFE_ENVS[HOPPER])]
    assert float(hop["ref_return_mean"]) == ref["return_mean"] == 961.92
    assert float(hop["ref_cost_std"]) == ref["cost_std"] == 19.33 and hop["ref_total_steps"] == "10000000"
    two_row = rows[("ExactTwoCost-v0", "ppo")]
    assert float(two_row["cost_mean/cost_b"]) == 0.5 and float(two_row["cost_std/cost_b"]) == 0.0
    assert float(two_row["cost_limit/cost_a"]) == 1.5 and float(two_row["cost_limit/cost_b"]) == 1.0
    assert float(two_row["within_limit"]) == 1.0 and two_row["measured_epochs"] == "1"
    assert two_row["ref_algo"] == "" and two_row["cost_mean/cost"] == ""

    md = (tmp_path / "rep" / "report.md").read_text()
    assert "12.00 ± 2.00" in md and "25.00 ± 5.00" in md and "75% (3/4)" in md and "100% (1/1)" in md
    assert "961.92 ± 752.87†" in md and "trained for 20,000 steps" in md and "not comparable" in md
    assert "unfinished: `SafetyHopperVelocity-v1/ppo_lag/seed2` at 5,000 of 20,000 steps" in md
    assert "failed: `ExactChain-v0/cpo/seed0`: RuntimeError: boom" in md
    for env in (HOPPER, "ExactTwoCost-v0"):
        png = tmp_path / "rep" / f"curves_{env}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert f"![{env}](curves_{env}.png)" in md
        png = tmp_path / "rep" / f"tradeoff_{env}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert f"![{env}: return against cost](tradeoff_{env}.png)" in md
    assert "## Return against cost" in md

    # --partial counts the unfinished seed at its last epoch (return 5.0, cost 1.0)
    assert main(["report", str(root), "--out", str(tmp_path / "partial"), "--partial", "--no-plots"]) == 0
    rows = {(r["env"], r["algo"]): r for r in csv.DictReader((tmp_path / "partial" / "results.csv").open())}
    hop = rows[(HOPPER, "ppo_lag")]
    assert hop["seeds"] == "3" and hop["finished"] == "2"
    assert math.isclose(float(hop["return_mean"]), (10.0 + 14.0 + 5.0) / 3)
    # the table says which of a row's seeds are unfinished (it had read "3" as if all three had finished)
    md = (tmp_path / "partial" / "results.md").read_text()
    assert f"| {HOPPER} | ppo_lag | 3 (1 unfinished) | 5000-20000 |" in md
    assert "| ExactTwoCost-v0 | ppo | 1 | 12,000 |" in md
    assert not list((tmp_path / "partial").glob("*.png"))


def test_a_mean_over_fewer_seeds_than_the_row_counts_says_so(tmp_path):
    # a seed whose epochs finished no episode has no final return or cost (NaN in summary.json): the mean is over
    # the other seeds, and the table said "2" seeds beside "0.66 ± 0.00", a mean of one seed read as one of two
    root = tmp_path / "runs"
    lim = {"cost": 25.0}
    make_run(root / HOPPER / "ppo_lag" / "seed0", "ppo_lag", HOPPER, 0, [30.0, 20.0], lim, 10.0, {"cost": 20.0},
             wall=4.0)
    make_run(root / HOPPER / "ppo_lag" / "seed1", "ppo_lag", HOPPER, 1, [None, None], lim, math.nan,
             {"cost": math.nan}, wall=4.0)
    two = {"cost_a": 1.5, "cost_b": 1.0}
    make_run(root / "ExactTwoCost-v0" / "ppo" / "seed0", "ppo", "ExactTwoCost-v0", 0,
             [{"cost_a": 1.0, "cost_b": 0.5}], two, 4.0, {"cost_a": 1.0, "cost_b": 0.5}, wall=1.0)
    make_run(root / "ExactTwoCost-v0" / "ppo" / "seed1", "ppo", "ExactTwoCost-v0", 1,
             [{"cost_a": 2.0, "cost_b": 0.7}], two, 5.0, {"cost_a": 2.0, "cost_b": 0.7}, wall=1.0)
    assert main(["report", str(root), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    hop = next(line for line in md.splitlines() if line.startswith(f"| {HOPPER} |"))
    assert "| 2 | 2,000 | 10.00 (1 of 2 seeds) | — | — | 20.00 (25) (1 of 2 seeds) |" in hop
    two_row = next(line for line in md.splitlines() if line.startswith("| ExactTwoCost-v0 |"))
    assert "seeds)" not in two_row and "| 4.50 ± 0.50 | 1.50 ± 0.50 (1.5) | 0.60 ± 0.10 (1) | — |" in two_row
    # one cost name in the whole table: the cost column and the limit column apart
    assert main(["report", str(root / HOPPER), "--out", str(tmp_path / "one"), "--no-plots"]) == 0
    assert "| 10.00 (1 of 2 seeds) | 20.00 (1 of 2 seeds) | 25 |" in (tmp_path / "one" / "report.md").read_text()
    assert '"(n of N seeds)" where only n seeds finished an episode' in md


def test_a_mean_over_one_seed_is_shown_without_a_std(tmp_path):
    # a configuration of one seed read "10.00 ± 0.00": a std over one value is 0 whatever the algorithm does, so the
    # table claimed a spread of zero; the mean alone now, with the same cells per row (results.csv keeps std 0)
    root = tmp_path / "runs"
    lim = {"cost": 25.0}
    make_run(root / HOPPER / "ppo_lag" / "seed0", "ppo_lag", HOPPER, 0, [30.0, 20.0], lim, 10.0, {"cost": 20.0},
             wall=4.0)
    two = {"cost_a": 1.5, "cost_b": 1.0}
    make_run(root / "ExactTwoCost-v0" / "ppo" / "seed0", "ppo", "ExactTwoCost-v0", 0,
             [{"cost_a": 1.0, "cost_b": 0.5}], two, 4.0, {"cost_a": 1.0, "cost_b": 0.5}, wall=1.0)
    assert main(["report", str(root), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert "± 0.00" not in "\n".join(table)
    hop = next(line for line in table if line.startswith(f"| {HOPPER} |"))
    assert "| 1 | 2,000 | 10.00 | — | — | 20.00 (25) | 100% (1/1) |" in hop and "961.92 ± 752.87†" in hop
    two_row = next(line for line in table if line.startswith("| ExactTwoCost-v0 |"))
    assert "| 1 | 1,000 | 4.00 | 1.00 (1.5) | 0.50 (1) | — | 100% (1/1) |" in two_row
    assert len({line.count(" | ") for line in table}) == 1  # every row has the header's cells
    assert "the mean alone where it is over one seed" in md
    rows = {r["algo"]: r for r in csv.DictReader((tmp_path / "rep" / "results.csv").open())}
    assert (rows["ppo_lag"]["return_mean"], rows["ppo_lag"]["return_std"]) == ("10.0", "0.0")
    # one cost name in the whole table: the cost column and the limit column apart
    assert main(["report", str(root / HOPPER), "--out", str(tmp_path / "one"), "--no-plots"]) == 0
    assert "| 1 | 2,000 | 10.00 | 20.00 | 25 |" in (tmp_path / "one" / "report.md").read_text()


def test_a_report_of_one_run_counts_it_in_the_singular(tmp_path):
    # its first line had said "1 run folders"
    root = tmp_path / "runs"
    make_run(root / HOPPER / "ppo_lag" / "seed0", "ppo_lag", HOPPER, 0, [30.0, 20.0], {"cost": 25.0}, 10.0,
             {"cost": 20.0}, wall=4.0)
    assert main(["report", str(root), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    assert f"Runs under `{root}`: 1 run folder, 1 finished, 0 unfinished, 0 failed." in \
        (tmp_path / "rep" / "report.md").read_text()


def test_summary_json_is_strict_json_with_null_for_what_was_not_measured(tmp_path):
    # a run whose epochs finished no episode (8 steps per copy, 10-step episodes) has no final return or cost:
    # summary.json held the bare token NaN, which is not JSON (jq and JavaScript's JSON.parse refuse it)
    run = tmp_path / "runs" / "QuadraticBandit-v0" / "ppo_lag" / "seed0"
    assert main(["train", "--algo", "ppo_lag", "--env", "QuadraticBandit-v0", "--total-steps", "32", "--num-envs",
                 "2", "--set", "steps_per_epoch=16", "--no-progress", "--out", str(run)]) == 0

    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")

    text = (run / "summary.json").read_text()
    summary = json.loads(text, parse_constant=refuse)
    assert "NaN" not in text and "Infinity" not in text
    assert summary["final_return"] is None and summary["final_ep_len"] is None
    assert summary["final_epoch_with_episodes"] is None and summary["finished"] is True
    assert summary["final_costs"] and all(v is None for v in summary["final_costs"].values())
    assert all(isinstance(v, float) for v in summary["cost_limits"].values())
    # the report reads null as not measured: no mean, and the row says so rather than failing
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    rows = list(csv.DictReader((tmp_path / "rep" / "results.csv").open()))
    assert [(r["algo"], r["finished"], r["return_mean"]) for r in rows] == [("ppo_lag", "1", "")]
    assert all(rows[0][f"cost_mean/{n}"] == "" for n in summary["final_costs"])
    assert all(float(rows[0][f"cost_limit/{n}"]) == v for n, v in summary["cost_limits"].items())
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| ppo_lag | 1 | 32 | n/a |" in md and "1 finished" in md
    # a limit written null (not finite) is an unknown limit to the report, not a TypeError
    (run / "summary.json").write_text(json.dumps({**summary, "cost_limits": dict.fromkeys(summary["cost_limits"])}))
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep2"), "--no-plots"]) == 0
    rows = list(csv.DictReader((tmp_path / "rep2" / "results.csv").open()))
    assert all(rows[0][f"cost_limit/{n}"] == "" for n in summary["cost_limits"])


def test_pareto_front_of_cost_and_return_points():
    """The trade-off figure's frontier: (cost, return) points no other beats on both, by cost ascending."""
    from cmdp.benchmarks.report import pareto_front

    points = [(1.0, 5.0), (2.0, 4.0), (0.0, 1.0), (3.0, 6.0), (1.0, 5.0), (0.5, 1.0), (math.nan, 9.0)]
    # (2, 4) is beaten by (1, 5); (0.5, 1) by (0, 1); the tie (1, 5) twice beats neither copy; NaN is never on it
    assert pareto_front(points) == [2, 0, 4, 3]
    assert pareto_front([]) == [] and pareto_front([(math.nan, math.nan)]) == []


def test_the_tradeoff_figure_keeps_every_name_inside_its_axes():
    """A name was written to the right of and above its mean, so the algorithm at the largest cost (or return) had
    its name cut by the axes' right edge (or run over the top); each name now sits on the side towards the
    middle of the axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from cmdp.benchmarks.report import RunData, tradeoff_figure

    def run(algo, seed, ret, costs):
        return RunData(path=Path(algo) / f"seed{seed}", algo=algo, env=HOPPER, seed=seed,
                       summary={"final_return": ret, "final_costs": costs, "finished": True,
                                "cost_limits": {"cost_a": 25.0, "cost_b": 1.0}})

    by_algo = {"ppo": [run("ppo", 0, 10.0, {"cost_a": 5.0, "cost_b": 0.1})],
               "ppo_early_terminated": [run("ppo_early_terminated", s, 30.0 + s, {"cost_a": 60.0 + s, "cost_b": 3.0})
                                        for s in range(3)],
               "ppo_lag": [run("ppo_lag", 0, 20.0, {"cost_a": 24.0, "cost_b": 0.5})]}
    fig = tradeoff_figure(HOPPER, by_algo)
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    names = [(ax, text) for ax in fig.axes for text in ax.texts]
    assert sorted(t.get_text() for _, t in names) == sorted(list(by_algo) * 2)  # one panel per cost name
    for ax, text in names:
        box = text.get_window_extent()
        for outer in (ax.bbox, fig.bbox):
            assert outer.x0 <= box.x0 and box.x1 <= outer.x1 and outer.y0 <= box.y0 and box.y1 <= outer.y1, \
                (text.get_text(), box, outer)
    assert tradeoff_figure(HOPPER, {"ppo": [RunData(path=Path("p"), algo="ppo", env=HOPPER, seed=0)]}) is None


def test_the_tradeoff_figure_names_algorithms_whose_means_coincide_once():
    """ppo and ppo_lag train alike while the multiplier stays at 0 (the smoke suite's Hopper cells): their names had
    been drawn over each other at one point (ppo's marker hidden under ppo_lag's), and the legend had listed a
    frontier of the means that no line showed."""
    from cmdp.benchmarks.report import RunData, tradeoff_figure

    def run(algo, seed, ret, cost):
        return RunData(path=Path(algo) / f"seed{seed}", algo=algo, env=HOPPER, seed=seed,
                       summary={"final_return": ret, "final_costs": {"cost": cost}, "finished": True,
                                "cost_limits": {"cost": 25.0}})

    alike = {algo: [run(algo, 0, 56.7, 12.4), run(algo, 1, 80.3, 15.4)] for algo in ("ppo", "ppo_lag")}
    (ax,) = tradeoff_figure(HOPPER, alike).axes
    assert [t.get_text() for t in ax.texts] == ["ppo = ppo_lag"]
    assert "frontier of the means" not in [t.get_text() for t in ax.get_legend().get_texts()]
    (ax,) = tradeoff_figure(HOPPER, {**alike, "cpo": [run("cpo", 0, 60.0, 5.0)]}).axes
    assert sorted(t.get_text() for t in ax.texts) == ["cpo", "ppo = ppo_lag"]
    assert "frontier of the means" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_report_lists_files_it_could_not_read_and_reports_the_rest(tmp_path, capsys):
    # a damaged progress.csv ended the whole report in a UnicodeDecodeError traceback; a damaged summary.json was
    # dropped without a word (the run then counted as unfinished)
    root = tmp_path / "runs"
    lim = {"cost": 25.0}
    for seed in range(4):
        make_run(root / HOPPER / "ppo_lag" / f"seed{seed}", "ppo_lag", HOPPER, seed, [20.0] * 10, lim, 10.0 + seed,
                 {"cost": 20.0}, wall=10.0)
    config = root / HOPPER / "ppo_lag" / "seed3" / "config.yaml"
    config.write_text("algo: [ppo_lag\n")  # the run is still reported, under the algorithm its folder names
    (root / HOPPER / "ppo_lag" / "seed0" / "error.txt").write_bytes(b"RuntimeError: \xff\xfe")  # not UTF-8
    (root / "suite.yaml").write_bytes(b"name: \xff")  # only titles the report
    log = root / HOPPER / "ppo_lag" / "seed1" / "progress.csv"
    log.write_bytes(log.read_bytes()[:60] + b"\xff\xfe")  # cut, with bytes that are not UTF-8
    summary = root / HOPPER / "ppo_lag" / "seed2" / "summary.json"
    summary.write_text('{"finished": tru')
    assert main(["report", str(root), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "4 run folders, 3 finished, 1 unfinished, 0 failed, 3 files that could not be read (listed below)" in text
    assert f"- progress log {log} is not UTF-8 text (byte 60: invalid start byte); restore it from a copy, or train " \
           "the run again" in text
    assert f"- run summary {summary} is not valid JSON (Expecting value: line 1 column 14 (char 13))" in text
    assert f"- run config {config} is not valid YAML: line 2, column 1: expected ',' or ']', but got '<stream end>' " \
           "(while parsing a flow sequence that began at line 1, column 7)" in text
    results = list(csv.DictReader((tmp_path / "rep" / "results.csv").open()))
    assert [(r["seeds"], r["return_mean"]) for r in results] == [("3", "11.333333333333334")]  # seeds 0, 1 and 3


def test_report_lists_an_emptied_run_file_and_a_summary_that_is_not_an_object(tmp_path):
    # a summary.json holding a JSON list ended the report in an AttributeError traceback; an empty progress.csv was
    # read as no epochs without a word; an emptied config.yaml made its run no run at all ("no run folders")
    root = tmp_path / "runs"
    lim = {"cost": 25.0}
    for seed in range(3):
        make_run(root / HOPPER / "ppo_lag" / f"seed{seed}", "ppo_lag", HOPPER, seed, [20.0] * 10, lim, 10.0 + seed,
                 {"cost": 20.0}, wall=10.0)
    folder = root / HOPPER / "ppo_lag"
    (folder / "seed0" / "summary.json").write_text("[1, 2]\n")
    (folder / "seed1" / "progress.csv").write_text("")
    (folder / "seed2" / "config.yaml").write_text("")
    assert main(["report", str(root), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "3 run folders, 2 finished, 1 unfinished, 0 failed, 3 files that could not be read (listed below)" in text
    fix = "restore it from a copy, or train the run again"
    assert f"- run summary {folder / 'seed0' / 'summary.json'} holds a JSON list, not an object; {fix}" in text
    assert f"- progress log {folder / 'seed1' / 'progress.csv'} is empty; {fix}" in text
    assert f"- run config {folder / 'seed2' / 'config.yaml'} names no algorithm; {fix}" in text
    results = list(csv.DictReader((tmp_path / "rep" / "results.csv").open()))
    # seeds 1 and 2, the latter under the algorithm and environment its folders name
    assert [(r["env"], r["algo"], r["seeds"]) for r in results] == [(HOPPER, "ppo_lag", "2")]


def test_a_report_without_a_table_defines_no_columns(tmp_path):
    # with no finished run (and no --partial), the page had defined the columns of a table it did not show and
    # pointed at results.csv for "the same numbers with full precision", a header alone
    root = tmp_path / "runs"
    make_run(root / HOPPER / "ppo_lag" / "seed0", "ppo_lag", HOPPER, 0, [30.0, 20.0], {"cost": 25.0}, 10.0,
             {"cost": 20.0}, wall=4.0, finished=False)
    assert main(["report", str(root), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "_No finished runs yet (use --partial to include unfinished ones)._" in md
    assert "**within limit**" not in md and "full precision" not in md
    assert main(["report", str(root), "--out", str(tmp_path / "rep"), "--no-plots", "--partial"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "**within limit**" in md and "full precision" in md


def test_a_report_without_matplotlib_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    # the check came with the first figure, after results.csv and results.md had been written (and no report.md)
    root = tmp_path / "runs"
    make_run(root / HOPPER / "ppo_lag" / "seed0", "ppo_lag", HOPPER, 0, [30.0, 20.0], {"cost": 25.0}, 10.0,
             {"cost": 20.0}, wall=4.0)
    for module in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, module, None)  # `import matplotlib` raises ImportError
    assert main(["report", str(root), "--out", str(tmp_path / "rep")]) == 2
    assert one_error_line(capsys.readouterr().err) == ("cmdp: error: cmdp report needs matplotlib for its figures: "
                                                       "pip install 'cmdp-lab[report]' (or use --no-plots)")
    assert not (tmp_path / "rep").exists()
    assert main(["report", str(root), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["report.md", "results.csv", "results.md"]


def test_report_of_a_folder_without_runs(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no run folders" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["root", "run"])
def test_a_report_folder_holding_a_run_is_refused_in_one_line(where, tmp_path, capsys):
    # --out at the runs' own folder had said "no run folders (config.yaml) under DIR"; --out at one run folder had
    # written the report among that run's files and left the run out of the table, without a word
    root = tmp_path / "runs"
    run = root / HOPPER / "ppo_lag" / "seed0"
    for seed in (0, 1):
        make_run(root / HOPPER / "ppo_lag" / f"seed{seed}", "ppo_lag", HOPPER, seed, [30.0, 20.0], {"cost": 25.0},
                 10.0, {"cost": 20.0}, wall=4.0)
    out = root if where == "root" else run
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert main(["report", str(root), "--out", str(out)]) == 2
    holds = f"holds the run folder {run}" if where == "root" else "is a run folder"
    assert one_error_line(capsys.readouterr().err) == \
        f"cmdp: error: report: the report folder {out} {holds}; choose an --out outside the runs"
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_a_cell_asks_for_one_cpu_per_subprocess_its_environment_runs(tmp_path):
    """Safety-Gymnasium steps each copy in a subprocess; the exact CMDPs and the quadratic bandit step theirs as numpy
    rows in the calling process, so their cells ask the runner and Ray for one CPU whatever num_envs."""
    suite = write_suite(tmp_path / "s.yaml", **{**GOOD, "algorithms": ["ppo"],
                                               "environments": [CHAIN, "QuadraticBandit-v0", HOPPER],
                                               "config": {"num_envs": 4, "steps_per_epoch": 1000}})
    cells, _ = plan_cells(load_suite(suite), tmp_path / "out")
    assert {cell.key.split("/")[0]: cell.num_cpus for cell in cells} == {CHAIN: 1, "QuadraticBandit-v0": 1, HOPPER: 4}


def test_a_folder_holding_another_suites_runs_is_refused(tmp_path, capsys):
    # suite.yaml was written over and the report showed both suites' cells under the second one's name
    out = tmp_path / "out"
    assert main(["benchmark", str(write_suite(tmp_path / "a.yaml", **{**GOOD, "algorithms": ["ppo"]})),
                 "--out", str(out), "--workers", "0"]) == 0
    capsys.readouterr()
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    other = write_suite(tmp_path / "b.yaml", **{**GOOD, "name": "other", "algorithms": ["ppo_lag"]})
    assert main(["benchmark", str(other), "--out", str(out), "--workers", "0"]) == 2
    assert one_error_line(capsys.readouterr().err) == (
        f"cmdp: error: {out} holds the runs of suite 't' ({out / 'suite.yaml'}); running suite 'other' there would "
        f"mix both in one report: choose another --out")
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    # the same suite, grown by an algorithm, goes on in its folder
    grown = write_suite(tmp_path / "a.yaml", **GOOD)
    assert main(["benchmark", str(grown), "--out", str(out), "--dry-run"]) == 0


def test_a_run_folder_as_the_suites_folder_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(dump_yaml(cell_config("ppo", CHAIN, 0, 2000)))
    suite = write_suite(tmp_path / "s.yaml", **{**GOOD, "algorithms": ["ppo"]})
    assert main(["benchmark", str(suite), "--out", str(run)]) == 2
    assert one_error_line(capsys.readouterr().err) == \
        f"cmdp: error: {run} is a run folder (it holds config.yaml); choose another --out for the suite"
    assert [p.name for p in run.iterdir()] == ["config.yaml"]


def test_the_time_left_follows_the_recent_rate_not_a_fast_start(tmp_path):
    # an off-policy cell's first 10,000 steps are a random warm-up, ten times faster than the steps with updates:
    # from the session's mean rate the board had said "left ~1:16:09" of a run that took four hours
    import io

    from cmdp.benchmarks.board import Board

    suite = load_suite(write_suite(tmp_path / "s.yaml", **{**GOOD, "algorithms": ["ppo"], "total_steps": 1_000_000}))
    cells, _ = plan_cells(suite, tmp_path / "out")
    (tmp_path / "out").mkdir()
    now = [0.0]
    board = Board(suite, tmp_path / "out", cells, "in-process", io.StringIO(), clock=lambda: now[0])
    key = cells[0].key
    board.started(key, 0)
    steps = 0
    for epoch in range(1, 41):
        now[0] += 1.0 if epoch <= 5 else 30.0  # 5 warm-up epochs of 2,000 steps, then 2,000 steps per 30 s
        steps += 2000
        board.epoch(key, steps)
    assert board.eta() == pytest.approx((1_000_000 - steps) / (2000 / 30))
    assert len(board.progress) < 40  # the samples older than the half it measures are dropped
