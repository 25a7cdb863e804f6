"""Where a suite's cells run: in this process, in local worker processes, or as Ray tasks.

This module's one job is to execute a list of planned cells with `cmdp.benchmarks.cells.train_cell` and
feed their events and results to the status board; it decides nothing about which cells to run.

`run_inline` trains the cells one after another in the driver (`--workers 0`: for debugging). `run_local`
uses N worker processes (spawn), each training one cell at a time; a worker that dies is replaced and its
cell recorded as failed, and a worker whose driver dies exits rather than train on unseen. `run_ray` makes
each cell a Ray task (`ray.init()` starts a local Ray; `--ray ADDRESS` joins a cluster), each declaring its
CPUs (max(torch_threads, the processes its family's `cpus(cfg)` counts), planned in `cmdp.benchmarks.cells`) and
GPUs (1 when its device is cuda). On a multi-node cluster every
node needs cmdp-lab installed and DIR on storage that every node mounts.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from cmdp.benchmarks.board import Board
from cmdp.benchmarks.cells import Cell, train_cell
from cmdp.spec import ConfigError


# --- in this process -------------------------------------------------------------------------------------
def run_inline(cells: list[Cell], out: Path, board: Board) -> None:
    """Train the cells one after another in this process (`--workers 0`: for debugging)."""
    for cell in cells:
        board.dispatched(cell.key)
        result = train_cell(cell.payload(out), lambda kind, steps, k=cell.key: _on_event(board, kind, k, steps))
        board.result(cell.key, result)


def _on_event(board: Board, kind: str, key: str, steps: int) -> None:
    if kind == "start":
        board.started(key, steps)
    elif kind == "epoch":
        board.epoch(key, steps)
        board.tick()


# --- local worker processes ------------------------------------------------------------------------------
def run_local(cells: list[Cell], out: Path, board: Board, workers: int) -> None:
    """Train the cells in `workers` spawned processes, each one cell at a time; a dead worker is replaced."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    ctx = mp.get_context("spawn")
    pending = deque(cells)
    slots: list[dict[str, Any]] = []

    def spawn(i: int) -> dict[str, Any]:
        conn, child_conn = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_local_worker, args=(child_conn,), name=f"cmdp-benchmark-{i}")
        proc.start()
        child_conn.close()  # the worker holds the only other end: its death reads as end-of-file here
        return {"proc": proc, "conn": conn, "key": None}

    def feed(slot: dict[str, Any]) -> None:
        if pending:
            cell = pending.popleft()
            slot["key"] = cell.key
            slot["conn"].send(cell.payload(out))
            board.dispatched(cell.key)

    def replace_dead(i: int) -> None:
        slot = slots[i]
        slot["proc"].join(timeout=10)
        board.failed(slot["key"], f"worker process died (exit code {slot['proc'].exitcode}; killed or out of "
                                  f"memory?); rerun the suite to resume it")
        slot["conn"].close()
        slots[i] = spawn(i)
        feed(slots[i])

    interrupted = False
    try:
        for i in range(min(workers, len(cells))):
            slots.append(spawn(i))
            feed(slots[-1])
        while any(s["key"] for s in slots):
            busy = {s["conn"]: i for i, s in enumerate(slots) if s["key"]}
            for conn in wait(list(busy), timeout=0.5):
                i = busy[conn]
                try:
                    kind, key, data = conn.recv()
                except (EOFError, OSError):  # the worker died mid-cell (killed, out of memory)
                    replace_dead(i)
                    continue
                if kind == "result":
                    slots[i]["key"] = None
                    feed(slots[i])  # the next cell first, so the status line counts it as running
                    board.result(key, data)
                else:
                    _on_event(board, kind, key, data)
            for i, slot in enumerate(slots):  # a worker that is gone although its pipe did not say so
                if slot["key"] and not slot["proc"].is_alive() and not slot["conn"].poll():
                    replace_dead(i)
            board.tick()
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        for slot in slots:
            if slot["proc"].is_alive() and not interrupted:
                try:
                    slot["conn"].send(None)
                except OSError:
                    pass
        deadline = time.time() + (5 if interrupted else 30)
        for slot in slots:
            slot["proc"].join(timeout=max(0.1, deadline - time.time()))
            if slot["proc"].is_alive():
                slot["proc"].terminate()
                slot["proc"].join()
            slot["conn"].close()


def _local_worker(conn: Any) -> None:
    """A local worker process: train the cells it is sent over `conn`, one at a time, until it gets None.

    Each worker talks to the driver over a pipe of its own. A shared multiprocessing.Queue is unsafe here:
    a worker that dies while its queue's feeder thread holds the queue's write lock (killed, out of memory,
    os._exit in user code) leaves that lock taken forever, and every other worker's events then block.
    """
    _exit_with_driver()
    try:
        while True:
            payload = conn.recv()
            if payload is None:
                return
            key = payload["key"]
            result = train_cell(payload, lambda kind, steps: conn.send((kind, key, steps)))
            conn.send(("result", key, result))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):  # Ctrl-C reaches the whole group; the driver reports it
        return


def _exit_with_driver() -> None:
    """Exit this worker process as soon as its driver is gone.

    A driver killed without warning (SIGKILL) cannot stop its workers; one would otherwise train its cell
    on until it next reports, unseen, and race a rerun of the suite over the same run folder. The cell
    keeps its last checkpoint (written atomically), from which the rerun resumes it.
    """
    import multiprocessing as mp
    from multiprocessing.connection import wait

    parent = mp.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        wait([parent.sentinel])  # readable once the driver process has exited
        os._exit(1)

    threading.Thread(target=watch, name="cmdp-driver-watch", daemon=True).start()


# --- Ray ---------------------------------------------------------------------------------------------------
def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'cmdp-lab[ray]' (or pip install ray)") from None
    return ray


#: how long `check_ray_address` waits for a cluster's address to accept a connection
RAY_CONNECT_TIMEOUT_S = 5.0


#: what `--ray` takes, as its one-line refusals say
RAY_ADDRESSES = ("give the cluster's address: host:port (its head node, port 6379 by default), ray://host:port (Ray "
                 "Client, 10001 by default) or auto")


def check_ray_address(address: str | None) -> None:
    """ConfigError in one line when a `host:port` (or `ray://host:port`) address is malformed, or nothing accepts a
    connection there. Ray itself, given such an address, retries for minutes, printing a warning line every few
    seconds, or reports a misspelt scheme (`ray:/`, `http://`) as a host it cannot resolve. "auto", a local start
    and an address without a port are left to Ray, which answers those at once."""
    if not address or ":" not in address:
        return
    scheme, separator, rest = address.partition("://")
    if separator and scheme != "ray":
        dashboard = " (an http address is the Ray dashboard's, which takes jobs, not a driver)" \
            if scheme in ("http", "https") else ""
        raise ConfigError(f"--ray: {address} is not a Ray cluster address{dashboard}; {RAY_ADDRESSES}")
    host, _, port = (rest if separator else address).rpartition(":")
    if not host or "/" in host or not port.isdigit():
        raise ConfigError(f"--ray: {address} is not a Ray cluster address (host:port with a port number); "
                          f"{RAY_ADDRESSES}")
    try:
        socket.create_connection((host.removeprefix("[").removesuffix("]"), int(port)),  # [::1]: an IPv6 host
                                 timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConfigError(f"--ray: nothing answers at {address} ({reason}); start the cluster there (ray start "
                          f"--head --port {port}) or give its address") from None


def start_ray(address: str | None) -> bool:
    """Start a local Ray, or join the cluster at `address`, unless a Ray session is already initialised (by a script
    or a test: it is used as it is). True when this call started one, which `run_ray` then shuts down at its end.
    The caller checks `address` first (`check_ray_address`, which `run_suite` runs before it prints its plan), since
    Ray waits minutes for an address that does not answer; ConfigError in one line when Ray still refuses it."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address or None, log_to_driver=True)
    except (ValueError, ConnectionError, RuntimeError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise ConfigError(f"--ray: cannot start or join {where}: {' '.join(str(exc).split())}") from None
    return True


def run_ray(cells: list[Cell], out: Path, board: Board, own: bool) -> None:
    """Train the cells as Ray tasks in the session `start_ray` made (shut down at the end when `own`)."""
    ray = _import_ray()
    from ray.util.queue import Queue

    refs: dict[Any, str] = {}
    try:
        events = Queue(actor_options={"num_cpus": 0})
        task = ray.remote(_ray_cell)
        for cell in cells:
            ref = task.options(num_cpus=cell.num_cpus, num_gpus=cell.num_gpus, max_retries=0,
                               name=f"cmdp:{cell.key}").remote(cell.payload(out), events)
            refs[ref] = cell.key
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0.5)
            for ref in ready:
                key = refs.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the task's worker died, or Ray itself failed
                    result = {"status": "failed", "error": f"Ray task failed: {type(exc).__name__}: {exc}"}
                board.result(key, result)
            n = events.qsize()
            for kind, _, key, steps in (events.get_nowait_batch(n) if n else []):
                if board.cells[key]["status"] in ("pending", "running"):  # not a late event of a finished cell
                    _on_event(board, kind, key, steps)
            board.tick()
    except KeyboardInterrupt:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    finally:
        if own:
            ray.shutdown()


def _ray_cell(payload: dict[str, Any], events: Any) -> dict[str, Any]:
    """A Ray task: train one cell, reporting progress to the driver's queue actor."""
    key = payload["key"]

    def report(kind: str, steps: int) -> None:
        try:
            events.put((kind, None, key, steps))
        except Exception:  # progress is best effort; the result is what counts
            pass

    return train_cell(payload, report)


__all__ = ["run_inline", "run_local", "run_ray"]
