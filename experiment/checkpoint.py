"""Orbax checkpoints of a run: the full state pytree plus a JSON history of logged metrics."""

from __future__ import annotations

import logging
import os
from typing import Any

import orbax.checkpoint as ocp

# orbax reports every save at INFO through absl; keep run logs readable.
logging.getLogger("absl").setLevel(logging.WARNING)


class Checkpoints:
    """Keeps the last ``max_to_keep`` checkpoints under ``directory``, indexed by chunk number."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, history: dict) -> None:
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), history=ocp.args.JsonSave(history))
        self.manager.save(step, args=args)
        self.manager.wait_until_finished()

    def restore(self, template: Any, step: int | None = None) -> tuple[int, Any, dict]:
        """Restore into the structure of ``template`` (a freshly initialised state)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint to resume from in {self.directory}")
        args = ocp.args.Composite(state=ocp.args.StandardRestore(template), history=ocp.args.JsonRestore())
        restored = self.manager.restore(step, args=args)
        return step, restored.state, restored.history

    def close(self) -> None:
        self.manager.close()
