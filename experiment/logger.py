"""Where a run's scalars go: ``logger=tensorboard`` (default) or ``logger=wandb``, one interface.

Both take ``add_scalar(tag, value, step)``, ``add_text(tag, text)``, ``add_hparams(hparams, metrics)``,
``flush()`` and ``close()`` (tensorboardX's ``SummaryWriter`` names). Weights & Biases is optional: it
is imported only when chosen, and without an API key it runs offline (``WANDB_MODE=offline``, files
under the run directory, ``wandb sync`` uploads them later) so a run never waits on the network.
"""

from __future__ import annotations

import importlib.util
import json
import os
from typing import Any

LOGGERS = ("tensorboard", "wandb")


def check(name: str) -> str:
    """``name`` if it is a logger that can run here; a clear ``ValueError`` otherwise (before any compile)."""
    if name not in LOGGERS:
        raise ValueError(f"unknown logger {name!r}; valid: {list(LOGGERS)}")
    if name == "wandb" and importlib.util.find_spec("wandb") is None:
        raise ValueError("logger=wandb needs the wandb package: pip install -e \".[wandb]\" (or use "
                         "logger=tensorboard)")
    return name


class WandbWriter:
    """tensorboardX's writer interface over a W&B run (offline unless an API key or WANDB_MODE says otherwise)."""

    def __init__(self, run_dir: str, config: dict[str, Any], project: str = "ssmrl") -> None:
        import wandb

        # WANDB_MODE, when set, decides; without it and without a key there is nowhere to send to
        offline = "WANDB_MODE" not in os.environ and "WANDB_API_KEY" not in os.environ
        self._run = wandb.init(project=project, dir=run_dir, config=config, name=os.path.basename(run_dir),
                               mode="offline" if offline else None)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self._run.log({tag: float(value)}, step=int(step))

    def add_text(self, tag: str, text: str) -> None:
        self._run.summary[tag] = text

    def add_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        self._run.config.update(hparams, allow_val_change=True)
        self._run.summary.update(metrics)

    def flush(self) -> None:
        """W&B streams on its own; kept so both writers have one interface."""

    def close(self) -> None:
        self._run.finish()


def flat_hparams(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"a.b": scalar}``: what TensorBoard's hparams plugin can show."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_hparams(value, name + "."))
        elif isinstance(value, (bool, int, float, str)) or value is None:
            out[name] = "None" if value is None else value
        else:
            out[name] = json.dumps(value)
    return out


def make_writer(name: str, run_dir: str, config: dict[str, Any]):
    """A writer for ``name`` (checked) under ``run_dir``, the config already recorded as text."""
    check(name)
    if name == "wandb":
        writer = WandbWriter(run_dir, config)
    else:
        from tensorboardX import SummaryWriter

        writer = SummaryWriter(os.path.join(run_dir, "tensorboard"))
    writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```")
    return writer

