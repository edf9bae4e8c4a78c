"""A progress bar in steps (env steps, or gradient steps offline), moved after every update.

A chunk of the paper's configuration takes minutes; counting chunks left the bar at ``0/23`` with no
rate, ETA or return until the first one ended. The chunk calls ``on_update`` after every update (from
inside a compiled scan through ``jax.debug.callback``, or from a host loop), so the bar shows the rate,
the ETA and the latest value of the trainer's headline metric from the first update on (the first
update's time includes compilation).
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm


class Progress:
    """``headline``: the short name of the metric shown (``ret`` for returns, ``loss``...)."""

    def __init__(self, total_steps: int, steps_per_update: int, enabled: bool = True, headline: str = "ret",
                 desc: str = "env steps") -> None:
        self.steps_per_update = steps_per_update
        self.headline = headline
        self.latest_return: float | None = None
        self.bar = tqdm(total=total_steps, disable=not enabled, desc=desc,
                        unit="step", unit_scale=True, dynamic_ncols=True)

    def start_at(self, steps: int) -> None:
        """A resumed run: the bar starts where the checkpoint is; rate and ETA count only new steps."""
        self.bar.initial = self.bar.n = steps
        self.bar.refresh()

    def on_update(self, returns: np.ndarray) -> None:
        """Host side of one update of every seed: ``returns [seeds]`` (or a scalar), NaN where there is no value."""
        self._note(returns)
        self.bar.update(min(self.steps_per_update, self.bar.total - self.bar.n))

    def chunk_done(self, steps_done: int, returns: np.ndarray) -> None:
        """After a chunk: the exact step count (when no per-update call moved the bar) and its returns."""
        self._note(returns)
        self.bar.update(steps_done - self.bar.n)

    def _note(self, returns: np.ndarray) -> None:
        returns = np.asarray(returns, np.float64)
        if np.isfinite(returns).any():
            self.latest_return = float(np.nanmean(returns[np.isfinite(returns)]))
            self.bar.set_postfix({self.headline: f"{self.latest_return:.4g}"}, refresh=False)

    def close(self) -> None:
        self.bar.close()
