"""The one training loop of every trainer (PPO, world models, DT, Meta-DT, dataset collection).

A trainer gives a ``chunk(state) -> (state, metrics)`` (a jitted scan of updates, or a host loop of
jitted updates where XLA would copy a donated buffer every iteration) and a ``LoopSpec`` naming its
headline metric and its losses. ``metrics`` leaves are ``[..., updates]``: the last axis is the updates
of the chunk, leading axes (PPO's seeds) are averaged for the scalar logs. The loop runs chunks
``[start, num_chunks)`` and after each one logs every metric of every update (non-finite values as they
are), checks the losses and the parameters are finite, saves a checkpoint (state + history + counters;
a Ctrl-C or SIGTERM during the save waits for it), and moves the progress bar.

Resume restores the state (RNG keys included) bit for bit, the history and the wall time so far, so a
resumed run reaches the same result as an uninterrupted one and its summary counts all the time spent.
Stops other than the end: ``stop_after`` chunks (a simulated crash: returns normally), Ctrl-C
(``Interrupted``, exit code 130), SIGTERM (``Terminated``, exit code 143: what a scheduler or ``kill`` sends,
and what reaches a job started with ``&`` from a script, which ignores SIGINT) and divergence
(``Diverged``, exit code 3): each writes ``summary.json`` saying why and keeps the last good checkpoint.
``run_main`` turns them into one line and the exit code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterable, Iterator, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from ssmrl.experiment.checkpoint import Checkpoints
from ssmrl.experiment.progress import Progress
from ssmrl.experiment.run_dir import RunDir, RunDirError

T = TypeVar("T")


class RunStopped(Exception):
    """A run that stopped before its end; ``summary.json`` says why, the last good checkpoint is kept."""

    exit_code = 1


class Interrupted(RunStopped):
    exit_code = 130  # the shell's code for SIGINT


class Terminated(RunStopped):
    exit_code = 143  # 128 + SIGTERM, as the shell reports a process SIGTERM killed


class Diverged(RunStopped):
    exit_code = 3


class _TerminateRequest(KeyboardInterrupt):
    """SIGTERM inside the loop. A ``KeyboardInterrupt`` so that no ``except Exception`` on the way (an env's
    host code, a library) swallows it, and it stops the loop on the path Ctrl-C takes."""


@dataclasses.dataclass(frozen=True)
class LoopSpec:
    """What the loop needs to know of a trainer.

    ``steps_per_update``: the x-axis unit of one update in the logs (env steps for RL, gradient steps
    for offline training); ``step_offset``: x before the first update (the world model's prefill).
    ``headline``: the metric on the progress bar and logged per seed. ``losses``: metrics that must stay
    finite (with the parameters) or the run has diverged. ``sparse``: metrics where NaN means "no value
    in this update" (an episode return when no episode ended): skipped in the logs, not a divergence.
    """

    num_chunks: int
    steps_per_update: int
    headline: str
    losses: tuple[str, ...] = ("loss",)
    sparse: tuple[str, ...] = ()
    step_offset: int = 0
    prefix: str = "train"


@dataclasses.dataclass
class LoopResult:
    state: Any
    history: dict  # metric -> [chunk][...][update] nested lists (every chunk since the run began)
    after_chunk: list  # what ``after_chunk`` returned, in order, since the run began
    updates: int  # updates done since the run began
    stopped: str  # "finished" or "stop_after"
    checkpoint: int | None  # the newest checkpoint's chunk number
    wall_time_s: float  # seconds spent in this loop summed over the run and its resumes
    train_seconds: float  # seconds of this process in chunks after its first (no compilation)
    train_updates: int  # updates in those chunks: train_updates / train_seconds is the throughput


def stack_history(history: dict, name: str) -> np.ndarray:
    """``[chunk][...][update]`` lists -> ``[..., chunk * update]`` array."""
    chunks = [np.asarray(c, np.float64) for c in history.get(name, [])]
    return np.concatenate(chunks, axis=-1) if chunks else np.zeros((0,))


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


_STOP_SIGNALS = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: _TerminateRequest}


@contextlib.contextmanager
def _handling(signums: Iterable[int], handler: Callable) -> Iterator[None]:
    """``handler`` for ``signums`` inside the block, the previous handlers restored after it. Python handles
    signals only in the main thread: elsewhere (a trainer driven from a thread) the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C or SIGTERM inside the block waits for its end: a checkpoint save is finished, never left
    half-written."""
    caught: list = []
    with _handling(_STOP_SIGNALS, lambda signum, _: caught.append(signum)):
        yield
    if caught:
        raise _STOP_SIGNALS[caught[0]]


def _terminate_request(signum, frame):
    raise _TerminateRequest


def as_restored(tree: Any) -> Any:
    """``tree`` as a checkpoint restores it: strongly typed (an env's ``time=0`` after reset is a weak int)
    and committed to the devices it is on (no copy). Either difference is a separate compile of the chunk,
    so a fresh run and a resumed one share one only in this form."""
    def leaf(x):
        if not isinstance(x, jax.Array):
            return x
        return jax.device_put(jnp.asarray(x, x.dtype) if x.weak_type else x, x.sharding)

    return jax.tree.map(leaf, tree)


def run_loop(chunk: Callable[[Any], tuple[Any, dict]], state: Any, spec: LoopSpec, checkpoints: Checkpoints,
             *, writer: Any | None = None, resume: bool = False, stop_after: int | None = None,
             progress: Progress | None = None, params: Callable[[Any], Any] | None = None,
             run: RunDir | None = None, restored: Callable[[Any, int], Any] | None = None,
             after_chunk: Callable[[Any, int], Any] | None = None) -> LoopResult:
    """Run chunks ``[start, spec.num_chunks)`` of ``chunk`` from ``state``; ``stop_after`` simulates a crash.

    ``resume`` continues from the newest checkpoint in ``checkpoints`` (``restored(state, chunk)`` then
    adjusts what a checkpoint cannot hold, e.g. emulators living in C++). ``params(state)`` is the
    pytree the divergence guard checks. ``after_chunk(state, index)`` runs after each chunk (e.g. a
    periodic evaluation; it logs on its own) and returns a JSON-able entry kept in the checkpoints, or
    None. ``run``: where ``summary.json`` says why when Ctrl-C or divergence stops the run.
    """
    record: dict = {"metrics": {}, "after_chunk": [], "updates": 0, "wall_time_s": 0.0}
    start = 0
    if resume and checkpoints.latest_step() is not None:
        start, state, record = checkpoints.restore(state)
        if restored is not None:
            state = restored(state, start)
    state = as_restored(state)
    checkpoint, saved_updates = (start if start else None), int(record["updates"])
    prior_wall, t_start = float(record["wall_time_s"]), time.perf_counter()
    train_seconds, train_updates = 0.0, 0
    if progress is not None:
        progress.start_at(spec.step_offset + record["updates"] * progress.steps_per_update)
    index = start
    try:
        # SIGTERM raises instead of killing on the spot; a second one, while the summary is written, kills
        with _handling([signal.SIGTERM], _terminate_request):
            for index in range(start, spec.num_chunks):
                if stop_after is not None and index - start >= stop_after:
                    break
                t0 = time.perf_counter()
                new_state, metrics = chunk(state)
                metrics = {k: np.asarray(v, np.float64) for k, v in jax.device_get(metrics).items()}
                elapsed = time.perf_counter() - t0
                updates = int(metrics[spec.headline].shape[-1])
                if writer is not None:
                    _log(writer, metrics, record["updates"], spec)
                _check_finite(metrics, new_state, params, spec, record["updates"], checkpoints, checkpoint, run,
                              prior_wall + time.perf_counter() - t_start)
                state = new_state
                if index > start:
                    train_seconds += elapsed
                    train_updates += updates
                for name, value in metrics.items():
                    record["metrics"].setdefault(name, []).append(value.tolist())
                record["updates"] += updates
                if writer is not None:
                    # the first chunk's rate includes compilation: logged too, it is what the user waited
                    writer.add_scalar("perf/steps_per_s", updates * spec.steps_per_update / elapsed,
                                      spec.step_offset + record["updates"] * spec.steps_per_update)
                if after_chunk is not None:
                    entry = after_chunk(state, index)
                    if entry is not None:
                        record["after_chunk"].append(entry)
                if writer is not None:
                    writer.flush()
                record["wall_time_s"] = prior_wall + time.perf_counter() - t_start
                with interrupts_deferred():  # a stop here is raised once the save and its bookkeeping are done
                    checkpoints.save(index + 1, state, record)
                    checkpoint, saved_updates = index + 1, int(record["updates"])
                if progress is not None:
                    progress.chunk_done(spec.step_offset + record["updates"] * progress.steps_per_update,
                                        metrics[spec.headline][..., -1])
            else:
                index = spec.num_chunks
    except KeyboardInterrupt as stop:
        wall = prior_wall + time.perf_counter() - t_start
        where = (f"the checkpoint of chunk {checkpoint} in {checkpoints.directory} is kept" if checkpoint
                 else "no checkpoint was written yet")
        terminated = isinstance(stop, _TerminateRequest)
        stopped, error = ("terminated", Terminated) if terminated else ("interrupted", Interrupted)
        what = "terminated by SIGTERM" if terminated else "interrupted"
        message = f"{what} in chunk {index + 1} of {spec.num_chunks}: {where}"
        _stopped_summary(run, stopped, message, saved_updates, checkpoint, checkpoints, wall)
        resume_hint = f"; continue with resume=true hydra.run.dir={run.path}" if run is not None and checkpoint else ""
        raise error(message + resume_hint) from None
    stopped = "finished" if index >= spec.num_chunks else "stop_after"
    return LoopResult(state, record["metrics"], record["after_chunk"], int(record["updates"]), stopped, checkpoint,
                      prior_wall + time.perf_counter() - t_start, train_seconds, train_updates)


def _check_finite(metrics: dict, state: Any, params: Callable[[Any], Any] | None, spec: LoopSpec, first_update: int,
                  checkpoints: Checkpoints, checkpoint: int | None, run: RunDir | None, wall: float) -> None:
    """Raise ``Diverged`` (summary written, nothing saved) on a non-finite loss or parameter."""
    bad = [name for name in spec.losses if name in metrics and not np.isfinite(metrics[name]).all()]
    where = ""
    if bad:
        finite = np.isfinite(metrics[bad[0]]).reshape(-1, metrics[bad[0]].shape[-1]).all(axis=0)
        where = f" at update {first_update + int(np.argmin(finite)) + 1}"
    elif params is not None and not bool(_all_finite(params(state))):
        bad, where = ["parameters"], f" after update {first_update + metrics[spec.headline].shape[-1]}"
    if not bad:
        return
    kept = (f"the last good checkpoint (chunk {checkpoint}) in {checkpoints.directory} is kept" if checkpoint
            else "no good checkpoint was written before it")
    message = f"diverged: non-finite {', '.join(bad)}{where}; {kept}"
    _stopped_summary(run, "diverged", message, first_update, checkpoint, checkpoints, wall)
    raise Diverged(message)


def _stopped_summary(run: RunDir | None, stopped: str, reason: str, updates: int, checkpoint: int | None,
                     checkpoints: Checkpoints, wall: float) -> None:
    if run is not None:
        run.write_summary({"kind": run.kind, "finished": False, "stopped": stopped, "reason": reason,
                           "phase": os.path.relpath(checkpoints.directory, run.path), "updates": updates,
                           "checkpoint": checkpoint, "wall_time_s": wall})


def _log(writer: Any, metrics: dict, first_update: int, spec: LoopSpec) -> None:
    """Every metric after every update, averaged over leading axes; the headline also per seed.
    A non-finite value is logged as it is (a NaN loss shows as NaN), except NaN in a ``sparse`` metric,
    which means no value in that update."""
    headline = metrics[spec.headline]
    for u in range(headline.shape[-1]):
        step = spec.step_offset + (first_update + u + 1) * spec.steps_per_update
        for name, value in metrics.items():
            column = value[..., u]
            if name not in spec.sparse:
                writer.add_scalar(f"{spec.prefix}/{name}", float(column.mean()), step)
            elif not np.isnan(column).all():
                writer.add_scalar(f"{spec.prefix}/{name}", float(np.nanmean(column)), step)
        if headline.ndim == 2:
            for s, value in enumerate(headline[:, u]):
                if not (spec.headline in spec.sparse and np.isnan(value)):
                    writer.add_scalar(f"seed_{s}/{spec.headline}", float(value), step)


def run_main(body: Callable[[], T]) -> T:
    """An entry point's body, with a stopped or refused run ending the process in one line, no traceback:
    Ctrl-C exits 130, divergence 3, a refused or corrupt run directory 2."""
    try:
        return body()
    except RunStopped as stop:
        print(f"\n{stop}", file=sys.stderr, flush=True)
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:
        print("\ninterrupted (outside the training loop: the run directory keeps its last checkpoint)",
              file=sys.stderr, flush=True)
        sys.exit(130)
    except RunDirError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
