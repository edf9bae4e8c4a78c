"""Settings of Meta-DT / Prompt-DT beyond the DT's own (``agents.dt.config.DTConfig``), checked at the edge."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ssmrl.agents.config import ConfigError, Options, check, from_fields, model_names, setting

METHODS = ("meta_dt", "prompt_dt")
TASK_CONTEXTS = ("own", "task")


@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
    """The context world model; defaults follow Meta-DT (GRU over the last 4 transitions, z of size 16)."""

    encoder: str = setting("gru", "context encoder: any ssm registry name", choices=model_names)
    encoder_options: Options = setting((), "options of ssm.make for the encoder")
    features: int = setting(128, "width", ge=1)
    task_dim: int = setting(16, "size of the task vector z", ge=1)
    context_len: int = setting(4, "k: transitions the encoder reads", ge=1)
    batch_size: int = setting(256, "windows per update", ge=1)
    lr: float = setting(1e-3, "learning rate", gt=0)
    num_steps: int = setting(10_000, "training steps", ge=1)
    steps_per_chunk: int = setting(1_000, "steps per compiled call: the unit of progress and checkpoints", ge=1)
    reward_weight: float = setting(1.0, "weight of the reward prediction loss", ge=0)
    state_weight: float = setting(1.0, "weight of the next-state prediction loss", ge=0)

    def check(self) -> None:
        """How the fields fit together and the encoder's options (called by ``agents.config``)."""
        from ssmrl import ssm

        ssm.check_options(self.encoder, dict(self.encoder_options), where="world_model.encoder_options")
        if self.reward_weight + self.state_weight <= 0:
            raise ConfigError("world_model.reward_weight + world_model.state_weight must be > 0")


@dataclasses.dataclass(frozen=True)
class MetaDTConfig:
    """``method``: ``meta_dt`` (z in the state tokens, prompt = the agent's highest-error segment) or
    ``prompt_dt`` (no z, prompt = an expert segment of the task's data). In a Hydra tree ``method`` is
    top-level and the rest sits under ``meta``."""

    method: str = setting("meta_dt", "Meta-DT or Prompt-DT", key="/method", choices=METHODS)
    prompt_len: int = setting(5, "steps of the prompt (<= the episode horizon)", ge=1)
    # Meta-DT: share of training segments whose prompt is replaced by the learned empty prompt, so the
    # same network also acts from z alone (zero-shot, and the few-shot exploration episode).
    prompt_dropout: float = setting(0.5, "Meta-DT: share of segments trained with the empty prompt", ge=0, lt=1)
    # Meta-DT: where the z of a training step comes from. ``own``: the last k transitions of its own
    # episode (the paper). ``task``: a random window (any length 0..k) of a random episode of the same task
    # in the world model's data, so z says where the task is even where the episode's own past already
    # does (expert data; see docs/RESULTS.md) and the DT has a reason to read it.
    task_context: str = setting("own", "Meta-DT: z of a training step from its own episode or the task's data",
                                choices=TASK_CONTEXTS)


def validate_world_model(config: WorldModelConfig) -> WorldModelConfig:
    """Every field checked and the encoder's options; raises ``ConfigError`` naming the bad value."""
    return check(config)


def validate(config: MetaDTConfig, horizon: int | None = None) -> MetaDTConfig:
    """Every field checked; with the data's episode ``horizon``, the prompt must fit in it."""
    check(config)
    if horizon is not None and config.prompt_len > horizon:
        raise ConfigError(f"meta.prompt_len ({config.prompt_len}) must be <= the episode horizon ({horizon})")
    return config


def world_model_from_mapping(values: Mapping[str, Any]) -> WorldModelConfig:
    return validate_world_model(from_fields(WorldModelConfig, values))


def from_mapping(values: Mapping[str, Any]) -> MetaDTConfig:
    return validate(from_fields(MetaDTConfig, values))
