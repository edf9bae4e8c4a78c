"""The config of every entry point (``train/*.py``), one frozen dataclass each, read by one converter.

``parse(name, cfg)`` turns the Hydra config an entry point composed into its dataclass with
``agents.config.from_tree``: every key typed and checked, unknown keys refused naming the valid ones,
before anything is built or compiled. The names are the same everywhere: ``env`` / ``env.name``,
``model`` (the memory model; the world-model backbone), ``preset``, ``hydra.run.dir`` for outputs and
``dataset_dir`` for offline datasets (written by collect, read by dt and meta_dt). ``prepare(name, ...)``
runs before Hydra: ``--help`` prints the entry point's own groups and keys with one-line descriptions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any

from ssmrl.agents.config import ConfigError, describe, from_tree, setting
from ssmrl.agents.dt.config import DTConfig
from ssmrl.agents.meta_dt.config import MetaDTConfig
from ssmrl.agents.meta_dt.config import WorldModelConfig as ContextModelConfig
from ssmrl.agents.ppo.config import PPOConfig, check_devices
from ssmrl.agents.world_model.config import WorldModelConfig
from ssmrl.experiment import compile_cache, presets
from ssmrl.experiment.logger import LOGGERS
from ssmrl.experiment.run_dir import RunDirError, refuse_used

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
"""``configs/<entry point>/``: each entry point's own config folder (its groups are only its own)."""

DATASETS = ("medium", "expert", "medium_expert", "random")
"""The dataset qualities train/collect.py writes under ``<dataset_dir>/<split>/``."""


def task_names() -> list[str]:
    """The offline meta-RL task distributions (``envs.tasks``): the envs of dt, meta_dt and collect."""
    from ssmrl.envs.tasks import TASKS

    return sorted(TASKS)


@dataclasses.dataclass(frozen=True)
class PPORun:
    """``train/ppo.py``: the agent (``env.*``, ``model.*`` and the PPO keys at the top level) and the run."""

    ppo: PPOConfig = setting(PPOConfig(), "the PPO agent", key="")
    seeds: int = setting(1, "seeds trained together in one run (one after another on the CPU, vmapped elsewhere)", ge=1)
    seed: int = setting(0, "first seed", ge=0)
    resume: bool = setting(False, "continue from the newest checkpoint in hydra.run.dir")
    progress: bool = setting(True, "print a progress bar")
    deterministic_eval: bool = setting(False, "evaluate with the greedy action")
    logger: str = setting("tensorboard", "where scalars go", choices=LOGGERS)

    def check(self) -> None:
        """The envs must split evenly over the devices (checked here so the CLI fails before building)."""
        check_devices(self.ppo)


@dataclasses.dataclass(frozen=True)
class WorldModelRun:
    """``train/world_model.py``: the agent (``env.*``, ``model.*`` and its keys at the top level) and the run."""

    agent: WorldModelConfig = setting(WorldModelConfig(), "the world-model agent", key="")
    seed: int = setting(0, "seed", ge=0)
    resume: bool = setting(False, "continue from the newest checkpoint in hydra.run.dir")
    progress: bool = setting(True, "print a progress bar")


@dataclasses.dataclass(frozen=True)
class OfflineRun:
    """What DT and Meta-DT runs share: the data and the run."""

    env: str = setting("tasks/point_robot", "task distribution the data was collected in", key="env.name",
                       choices=task_names)
    dataset: str = setting("expert", "dataset quality: <dataset_dir>/<split>/<dataset>", choices=DATASETS)
    dataset_dir: str = setting("data/point_robot", "folder written by train/collect.py")
    seed: int = setting(0, "seed", ge=0)
    progress: bool = setting(True, "print progress")
    resume: bool = setting(False, "continue from the newest checkpoint in hydra.run.dir")
    target_return: float | None = setting(None, "null: each task's best return in the data; a number: that "
                                                "target everywhere")

    def check(self) -> None:
        """Both splits of the dataset are there (train/collect.py writes them), before anything is built."""
        for split in ("train", "test"):
            folder = os.path.join(self.dataset_dir, split, self.dataset)
            if not os.path.isfile(os.path.join(folder, "card.json")):
                raise ConfigError(f"dataset_dir={self.dataset_dir!r} holds no {self.dataset!r} dataset ({folder} has "
                                  f"no card.json); train/collect.py dataset_dir={self.dataset_dir} writes one")


@dataclasses.dataclass(frozen=True)
class DTRun(OfflineRun):
    """``train/dt.py``: a Decision Transformer (``model``, ``model_options`` and ``dt.*``)."""

    dt: DTConfig = setting(DTConfig(), "the Decision Transformer", key="dt")


@dataclasses.dataclass(frozen=True)
class MetaDTRun(OfflineRun):
    """``train/meta_dt.py``: Meta-DT or Prompt-DT (``method``, ``model``, ``meta.*``, ``world_model.*``, ``dt.*``)."""

    dt: DTConfig = setting(DTConfig(), "the prompted Decision Transformer", key="dt")
    meta: MetaDTConfig = setting(MetaDTConfig(), "the method", key="meta")
    world_model: ContextModelConfig = setting(ContextModelConfig(), "Meta-DT's context world model",
                                              key="world_model")
    world_model_extra_datasets: tuple[str, ...] = setting(
        (), "Meta-DT: qualities of the train split the world model also learns from, e.g. [random]",
        choices=DATASETS)


@dataclasses.dataclass(frozen=True)
class CollectRun:
    """``train/collect.py``: the collection agent (PPO's keys, as train/ppo.py names them) and the datasets."""

    ppo: PPOConfig = setting(PPOConfig(), "the collection agent", key="")
    dataset_dir: str = setting("data/point_robot", "where the datasets go: <dataset_dir>/<split>/<quality>")
    split_seed: int = setting(0, "which tasks are train and test (task_split)", ge=0)
    seed: int = setting(0, "PPO training and collection seed", ge=0)
    episodes_per_task: int = setting(100, "episodes collected per task and quality", ge=1)
    medium_level: float = setting(0.5, "medium = the snapshot closest to random + level * (expert - random)",
                                  ge=0, le=1)
    medium_expert_fraction: float = setting(0.7, "share of medium episodes in medium_expert", ge=0, le=1)
    deterministic: bool = setting(False, "collect with the policy mean instead of sampling")
    eval_episodes: int = setting(4, "episodes per train task that score each snapshot", ge=1)
    progress: bool = setting(True, "print progress")
    resume: bool = setting(False, "continue an interrupted collection in dataset_dir")

    def check(self) -> None:
        """The collection env is a task distribution (its conditioned twin is what PPO trains on)."""
        if self.ppo.env_name not in task_names():
            raise ConfigError(f"unknown env.name {self.ppo.env_name!r} for collection; valid: {task_names()}")
        if self.ppo.env_options:
            raise ConfigError("collection sets env.options itself (each split's tasks), got "
                              f"{dict(self.ppo.env_options)}")


@dataclasses.dataclass(frozen=True)
class EvaluateRun:
    """``train/evaluate.py``: which run to evaluate and how (the run's ``kind`` decides the rest)."""

    run: str = setting("", "a run directory written by train/ppo.py, world_model.py, dt.py or meta_dt.py")
    episodes: int = setting(256, "evaluation episodes per split, spread over the run's seeds or tasks", ge=1)
    deterministic: bool = setting(False, "PPO and world-model runs: act with the greedy action")
    video: bool = setting(False, "PPO runs on image observations: episode.gif (and .mp4 with ffmpeg)")
    seed: int = setting(0, "evaluation seed", ge=0)

    def check(self) -> None:
        if not os.path.isdir(self.run):
            raise ConfigError(f"run={self.run!r} is not a directory; pass run=<a run directory>")


SET_BY_SCRIPT: dict[str, tuple[str, ...]] = {"collect": ("env.options", "eval_envs")}
"""Keys of an entry point's class that the script sets itself: ``--help`` leaves them out."""

ENTRIES: dict[str, type] = {"ppo": PPORun, "world_model": WorldModelRun, "dt": DTRun, "meta_dt": MetaDTRun,
                            "collect": CollectRun, "evaluate": EvaluateRun}


def parse(name: str, cfg: Any) -> Any:
    """The checked config of entry point ``name`` (``ENTRIES``) from its composed Hydra config; a bad
    value raises ``ConfigError`` naming the key, the value and the valid ones."""
    return from_tree(ENTRIES[name], cfg)


def load(name: str, cfg: Any) -> Any:
    """:func:`parse` for an entry point's ``main``: a bad value ends the process with that one line
    (exit status 2, as argparse does) instead of a traceback."""
    try:
        return parse(name, cfg)
    except ValueError as e:
        print(f"config error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def groups(name: str, aliases: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Entry point ``name``'s config groups (folders of ``configs/<name>/``) and their choices;
    ``preset`` also takes ``auto`` and the ``aliases``."""
    root = os.path.join(CONFIGS, name)
    found = {}
    for group in sorted(os.listdir(root)):
        folder = os.path.join(root, group)
        if not os.path.isdir(folder):
            continue
        choices = sorted(os.path.relpath(os.path.join(d, f), folder)[:-5] for d, _, files in os.walk(folder)
                         for f in files if f.endswith(".yaml"))
        found[group] = presets.available(folder, aliases or {}) if group == "preset" else choices
    return found


def help_text(name: str, cfg: Any, usage: str, aliases: dict[str, str] | None = None) -> str:
    """``--help`` of entry point ``name``: ``usage``, its config groups with their choices and every key
    with its value in the composed ``cfg`` and a one-line description."""
    from omegaconf import OmegaConf

    lines = [usage]
    found = groups(name, aliases)
    if found:
        lines += ["", "Config groups (group=choice):"]
        lines += [f"  {group:<10} {' | '.join(choices)}" for group, choices in found.items()]
    lines += ["", "Keys (key=value), with the values these overrides give:"]
    for key, help, default in describe(ENTRIES[name]):
        if key in SET_BY_SCRIPT.get(name, ()):
            continue
        value = OmegaConf.select(cfg, key, default=default)
        value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        value = dict(value) if key.endswith("options") and isinstance(value, tuple) else value
        lines.append(f"  {key + '=' + json.dumps(value):<34} {help}")
    lines += ["", "Hydra: hydra.run.dir=<output folder>, -m (sweep over comma lists), --cfg job (print the config), "
              "--hydra-help."]
    return "\n".join(lines)


_OFFLINE_RENAMED = {"backbone": ("model", ""), "backbone_options": ("model_options", ""),
                    "data_dir": ("dataset_dir", "")}
RENAMED: dict[str, dict[str, tuple[str, str]]] = {
    "ppo": {f"env.{key}": (f"env.options.{key}", "") for key in (
        "train", "heldout", "trials", "trial_steps", "obs_dim", "act_dim", "project_actions", "projection_seeds")},
    "world_model": {"env.game": ("env.name", "atari/")},
    "dt": _OFFLINE_RENAMED,
    "meta_dt": _OFFLINE_RENAMED,
    "collect": {"out_dir": ("dataset_dir", ""), "ppo.model": ("model", ""), "ppo.model_options": ("model.options", ""),
                "ppo.features": ("model.features", ""), "ppo.num_layers": ("model.num_layers", ""), "ppo": ("", "")},
}
"""Keys each entry point took before the names were shared: ``old: (new, prefix added to each value)``."""


def rename(argv: list[str], renamed: dict[str, tuple[str, str]]) -> tuple[list[str], list[str]]:
    """``argv`` with old key names (``RENAMED``; a key or any key below it) written the new way, and a
    note per rename, so commands from before the shared vocabulary still run."""
    out, notes = [], []
    for arg in argv:
        plus = arg[:len(arg) - len(arg.lstrip("+"))]
        key, _, value = arg[len(plus):].partition("=")
        match = [old for old in renamed if key == old or key.startswith(old + ".")] if "=" in arg else []
        if arg.startswith("-") or not match:
            out.append(arg)
            continue
        old = max(match, key=len)
        new, prefix = renamed[old]
        new_key = new + key[len(old):] if new else key[len(old) + 1:]
        new_value = ",".join(prefix + v for v in value.split(",")) if prefix else value  # a multirun list too
        out.append(f"{plus}{new_key}={new_value}")
        notes.append(f"note: {key}= is now {new_key}= ({arg} -> {out[-1]})")
    return out, notes


def refuse_used_run_dir(argv: list[str]) -> None:
    """A used ``hydra.run.dir`` without ``resume=true`` is refused before Hydra starts: Hydra would first
    overwrite the earlier run's ``.hydra/`` record. One line, exit code 2 (as ``loop.run_main``)."""
    values = dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("-"))
    if "hydra.run.dir" not in values or str(values.get("resume", "false")).lower() == "true":
        return
    try:
        refuse_used(values["hydra.run.dir"])
    except RunDirError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2)


def prepare(name: str, usage: str, aliases: dict[str, str] | None = None) -> None:
    """What an entry point does before ``@hydra.main``: old key names are rewritten (:func:`rename`);
    ``--help``/``-h`` prints its own help and exits; otherwise ``preset=`` is resolved
    (``experiment.presets``) and the persistent compile cache turned on (``experiment.compile_cache``).
    ``aliases``: other accepted preset names."""
    sys.argv[1:], notes = rename(sys.argv[1:], RENAMED.get(name, {}))
    for note in notes:
        print(note, file=sys.stderr)
    argv = sys.argv[1:]
    preset_dir = os.path.join(CONFIGS, name, "preset")
    has_presets = os.path.isdir(preset_dir)  # train/evaluate.py has none
    if not any(a in ("--help", "-h") for a in argv):
        refuse_used_run_dir(argv)
        if has_presets:
            presets.apply(preset_dir, aliases)
        compile_cache.enable()
        return
    from hydra import compose, initialize_config_dir

    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    if has_presets:
        overrides, _ = presets.select(overrides, preset_dir, aliases, accelerated=False)
    with initialize_config_dir(config_dir=os.path.join(CONFIGS, name), version_base="1.3"):
        cfg = compose(name, overrides=overrides)
    print(help_text(name, cfg, usage, aliases))
    raise SystemExit(0)
