"""PPO configuration: validated once, at the edge, into a frozen dataclass."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax

from ssmrl.agents.config import ConfigError, Options, check, env_names, from_fields, model_names, setting
from ssmrl.ssm.precision import PRECISIONS


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Everything a PPO run needs. Defaults are Lu et al. (2023)'s POPGym configuration.

    Each field's ``key`` is where Hydra's tree holds it (``configs/ppo/ppo.yaml``: ``env.*``, ``model.*``
    and the top-level PPO keys); ``agents.config.from_tree`` reads it, checked."""

    env_name: str = setting("RepeatPreviousEasy", "environment: any registered name (envs.available())",
                            key="env.name", choices=env_names)
    env_options: Options = setting((), "keyword options of the environment's constructor", key="env.options")
    model: str = setting("s5", "memory model: any ssm registry name", key="model.name", choices=model_names)
    features: int = setting(256, "width of the memory model", key="model.features", ge=1)
    num_layers: int = setting(4, "stacked memory layers", key="model.num_layers", ge=1)
    model_options: Options = setting((("state_size", 256),), "options of ssm.make for the model (e.g. state_size)",
                                     key="model.options")
    encoder_hidden: int = setting(128, "width of the observation encoder", ge=1)
    head_hidden: int = setting(128, "width of the actor and critic heads", ge=1)
    total_timesteps: int = setting(15_000_000, "environment steps to train for (all envs)", ge=1)
    num_envs: int = setting(64, "parallel environments", ge=1)
    num_steps: int = setting(1024, "steps per env per update (the rollout length)", ge=1)
    update_epochs: int = setting(30, "epochs over each rollout", ge=1)
    num_minibatches: int = setting(8, "minibatches per epoch (they split the envs)", ge=1)
    lr: float = setting(5e-5, "Adam learning rate", gt=0)
    anneal_lr: bool = setting(False, "decay the learning rate linearly to 0")
    gamma: float = setting(0.99, "discount", ge=0, le=1)
    gae_lambda: float = setting(1.0, "GAE lambda", ge=0, le=1)
    clip_eps: float = setting(0.2, "PPO ratio clipping", gt=0)
    ent_coef: float = setting(0.0, "entropy bonus weight", ge=0)
    vf_coef: float = setting(1.0, "value loss weight", ge=0)
    max_grad_norm: float = setting(0.5, "global gradient-norm clip", gt=0)
    updates_per_chunk: int = setting(10, "updates per compiled call: the unit of progress, logging and checkpoints",
                                     ge=1)
    eval_envs: int = setting(64, "envs of the final evaluation", ge=1)
    precision: str = setting("f32", "matmuls: f32, or bf16 operands with f32 accumulation (ssm/precision.py)",
                             choices=PRECISIONS)

    def check(self) -> None:
        """How the fields fit together and the registries' options (called by ``agents.config``)."""
        from ssmrl import envs, ssm

        ssm.check_options(self.model, dict(self.model_options), where="model.options")
        envs.check_options(self.env_name, dict(self.env_options), where="env.options")
        _require(self.num_envs % self.num_minibatches == 0,
                 f"num_envs ({self.num_envs}) must be divisible by num_minibatches ({self.num_minibatches})")

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
        raise ConfigError(message)


def validate(config: PPOConfig, num_devices: int | None = None) -> PPOConfig:
    """Check every field and how they fit together before anything compiles; raises ``ConfigError``
    (a ``ValueError``) naming the bad key and value."""
    return check_devices(check(config), num_devices)


def check_devices(config: PPOConfig, num_devices: int | None = None) -> PPOConfig:
    """The envs are sharded over the devices (``num_devices``, default all JAX sees): they must divide evenly."""
    num_devices = num_devices or jax.device_count()
    _require(config.num_envs % num_devices == 0,
             f"num_envs ({config.num_envs}) must be divisible by the device count ({num_devices}) to shard envs")
    return config


def from_mapping(values: Mapping[str, Any]) -> PPOConfig:
    """Build a config from its field names (a ``run.json``); unknown keys are an error that lists the valid ones."""
    return from_fields(PPOConfig, values)
