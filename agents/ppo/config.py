"""PPO configuration: validated once, at the edge, into a frozen dataclass."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
from omegaconf import DictConfig, OmegaConf

from ssmrl.agents.config import config_from_mapping


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Everything a PPO run needs. Defaults are Lu et al. (2023)'s POPGym configuration."""

    env_name: str = "RepeatPreviousEasy"
    env_options: tuple[tuple[str, Any], ...] = ()
    model: str = "s5"
    features: int = 256
    num_layers: int = 4
    model_options: tuple[tuple[str, Any], ...] = (("state_size", 256),)
    encoder_hidden: int = 128
    head_hidden: int = 128
    total_timesteps: int = 15_000_000
    num_envs: int = 64
    num_steps: int = 1024
    update_epochs: int = 30
    num_minibatches: int = 8
    lr: float = 5e-5
    anneal_lr: bool = False
    gamma: float = 0.99
    gae_lambda: float = 1.0
    clip_eps: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 1.0
    max_grad_norm: float = 0.5
    updates_per_chunk: int = 10
    eval_envs: int = 64

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def requested_updates(self) -> int:
        return max(1, self.total_timesteps // self.steps_per_update)

    @property
    def num_chunks(self) -> int:
        return -(-self.requested_updates // self.updates_per_chunk)

    @property
    def chunk_updates(self) -> int:
        """Updates per compiled chunk, chosen so that every chunk has the same length."""
        return -(-self.requested_updates // self.num_chunks)

    @property
    def num_updates(self) -> int:
        return self.num_chunks * self.chunk_updates


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def validate(config: PPOConfig, num_devices: int | None = None) -> PPOConfig:
    """Check names and numbers before anything compiles; raises ``ValueError`` naming the bad value."""
    from ssmrl import envs, ssm

    _require(config.env_name in envs.available(),
             f"unknown env.name {config.env_name!r}; valid: {envs.available()}")
    _require(config.model in ssm.available(), f"unknown model {config.model!r}; valid: {ssm.available()}")
    valid_options = ssm.options(config.model)
    bad = sorted(set(dict(config.model_options)) - set(valid_options))
    _require(not bad, f"unknown option(s) {bad} for model {config.model!r}; valid: {valid_options}")
    for name in ("features", "num_layers", "encoder_hidden", "head_hidden", "total_timesteps", "num_envs",
                 "num_steps", "update_epochs", "num_minibatches", "updates_per_chunk", "eval_envs"):
        value = getattr(config, name)
        _require(isinstance(value, int) and value > 0, f"{name} must be a positive integer, got {value!r}")
    _require(config.num_envs % config.num_minibatches == 0,
             f"num_envs ({config.num_envs}) must be divisible by num_minibatches ({config.num_minibatches})")
    num_devices = num_devices or jax.device_count()
    _require(config.num_envs % num_devices == 0,
             f"num_envs ({config.num_envs}) must be divisible by the device count ({num_devices}) to shard envs")
    for name in ("lr", "clip_eps", "max_grad_norm"):
        _require(getattr(config, name) > 0, f"{name} must be > 0, got {getattr(config, name)!r}")
    for name in ("gamma", "gae_lambda"):
        _require(0.0 <= getattr(config, name) <= 1.0, f"{name} must be in [0, 1], got {getattr(config, name)!r}")
    for name in ("ent_coef", "vf_coef"):
        _require(getattr(config, name) >= 0, f"{name} must be >= 0, got {getattr(config, name)!r}")
    return config


def from_mapping(values: Mapping[str, Any]) -> PPOConfig:
    """Build a config from a flat mapping; unknown keys are an error that lists the valid ones."""
    return config_from_mapping(PPOConfig, values, "PPO")


RUN_KEYS = ("seeds", "seed", "resume", "progress", "deterministic_eval", "logger")


def from_hydra(cfg: DictConfig) -> PPOConfig:
    """Flatten the Hydra config (``env.*``, ``model.*``, top-level PPO keys) into a ``PPOConfig``."""
    values = OmegaConf.to_container(cfg, resolve=True)
    env, model = values.pop("env"), values.pop("model")
    for key in RUN_KEYS:
        values.pop(key, None)
    # Every env key but its name is an option of the env's constructor (`env.trials`, `env.options.x`).
    env_options = {k: v for k, v in env.items() if k not in ("name", "options")}
    env_options.update(env.get("options") or {})
    values.update(
        env_name=env["name"], env_options=env_options,
        model=model["name"], features=model["features"], num_layers=model["num_layers"],
        model_options=model.get("options") or {},
    )
    return from_mapping(values)
