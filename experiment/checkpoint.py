"""Orbax checkpoints of a run: the full state pytree plus a JSON record (metric history, counters)."""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from ssmrl.experiment.run_dir import RunDirError

# orbax reports every save at INFO and slow saves ("waiting for previous save") at WARNING through absl;
# a run checkpoints after every chunk, so only errors are worth a line in its log.
logging.getLogger("absl").setLevel(logging.ERROR)


class Checkpoints:
    """Keeps the last ``max_to_keep`` checkpoints under ``directory``, indexed by chunk number."""

    def __init__(self, directory: str, max_to_keep: int = 2, create: bool = True):
        self.directory = os.path.abspath(directory)
        if not create and not os.path.isdir(self.directory):
            raise RunDirError(f"no checkpoints in {self.directory}: the run stopped before its first checkpoint")
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create)
        handlers = {"state": ocp.StandardCheckpointHandler(), "history": ocp.JsonCheckpointHandler()}
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, record: dict) -> None:
        """Save and wait until it is on disk. Orbax returns False (and writes nothing) when ``step`` is not
        newer than the latest checkpoint: that would leave another run's state behind, so it raises."""
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), history=ocp.args.JsonSave(record))
        saved = self.manager.save(step, args=args)
        self.manager.wait_until_finished()
        if not saved:
            raise RunDirError(f"checkpoint {step} was not saved in {self.directory} (its newest is "
                              f"{self.latest_step()}): the directory holds another run's checkpoints")

    def shape(self, key: str, step: int | None = None) -> tuple[int, ...]:
        """The stored shape of one state leaf, named as ``jax.tree_util.keystr`` names it (``"['replay']['action']"``),
        read from the checkpoint's metadata (nothing restored)."""
        step = self.latest_step() if step is None else step
        leaves = jax.tree_util.tree_leaves_with_path(self.manager.item_metadata(step)["state"])
        shapes = {jax.tree_util.keystr(path): tuple(leaf.shape) for path, leaf in leaves}
        if key not in shapes:
            raise RunDirError(f"checkpoint {os.path.join(self.directory, str(step))} holds no {key}")
        return shapes[key]

    def restore(self, template: Any, step: int | None = None) -> tuple[int, Any, dict]:
        """``(step, state, record)`` restored into the structure of ``template`` (a freshly initialised state)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise RunDirError(f"no checkpoint to resume from in {self.directory}")
        args = ocp.args.Composite(state=ocp.args.StandardRestore(template), history=ocp.args.JsonRestore())
        try:
            restored = self.manager.restore(step, args=args)
        except Exception as error:  # orbax raises many types (ValueError, KeyError, OSError, msgpack...)
            raise RunDirError(f"checkpoint {os.path.join(self.directory, str(step))} cannot be restored "
                              f"({type(error).__name__}: {str(error)[:300]}); it is corrupt or from another "
                              "config") from None
        return step, restored.state, restored.history

    def close(self) -> None:
        self.manager.close()


def restore_latest(directory: str, template: Any) -> tuple[int, Any]:
    """``(step, state)`` of the newest checkpoint under ``directory`` (structure of ``template``), read only."""
    checkpoints = Checkpoints(directory, create=False)
    try:
        step, state, _ = checkpoints.restore(template)
    finally:
        checkpoints.close()
    return step, state
