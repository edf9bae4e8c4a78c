"""experiment.logger and the loop's scalars: TensorBoard or W&B behind one interface, nothing dropped."""

import importlib.machinery
import math
import sys
import types

import numpy as np
import pytest

from ssmrl.experiment import logger
from ssmrl.experiment.loop import LoopSpec, _log


class Recorder:
    def __init__(self):
        self.scalars = []

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        pass


def test_non_finite_losses_are_logged_and_missing_returns_are_not():
    writer = Recorder()
    spec = LoopSpec(num_chunks=1, steps_per_update=10, headline="episode_return", sparse=("episode_return",))
    _log(writer, {"loss": np.array([[1.0, math.nan]]), "grad_norm": np.array([[math.inf, 2.0]]),
                  "episode_return": np.array([[math.nan, 0.5]])}, first_update=0, spec=spec)
    logged = {(tag, step): value for tag, value, step in writer.scalars}
    assert math.isnan(logged["train/loss", 20]) and math.isinf(logged["train/grad_norm", 10])
    assert ("train/episode_return", 10) not in logged  # NaN there means no episode ended: no value
    assert logged["train/episode_return", 20] == 0.5 and logged["seed_0/episode_return", 20] == 0.5


def test_unknown_or_missing_logger_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown logger 'mlflow'; valid: \['tensorboard', 'wandb'\]"):
        logger.check("mlflow")
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(ValueError, match=r"pip install -e \"\.\[wandb\]\""):
        logger.check("wandb")


def test_wandb_writer_runs_offline_behind_the_tensorboard_interface(monkeypatch, tmp_path):
    calls = {}

    class Run:
        summary, config = {}, types.SimpleNamespace(update=lambda d, **_: calls.setdefault("config", d))

        def log(self, values, step):
            calls.setdefault("log", []).append((values, step))

        def finish(self):
            calls["finished"] = True

    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    fake.init = lambda **kwargs: calls.setdefault("init", kwargs) and Run()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    writer = logger.make_writer("wandb", str(tmp_path), {"lr": 0.1})
    writer.add_scalar("train/loss", math.nan, 5)
    writer.add_hparams({"lr": 0.1}, {"hparam/eval_return": 0.5})
    writer.close()
    assert calls["init"]["dir"] == str(tmp_path) and calls["init"]["config"] == {"lr": 0.1}
    assert calls["init"]["mode"] == "offline"
    assert math.isnan(calls["log"][0][0]["train/loss"]) and calls["log"][0][1] == 5
    assert Run.summary["hparam/eval_return"] == 0.5 and "config" in Run.summary and calls["finished"]


def test_flat_hparams_are_scalars():
    assert logger.flat_hparams({"a": {"b": 1, "c": None}, "d": (1, 2)}) == {"a.b": 1, "a.c": "None", "d": "[1, 2]"}
