"""Decision Transformer settings: one frozen dataclass, checked at the edge (``agents.config``)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ssmrl.agents.config import ConfigError, Options, check, from_fields, model_names, setting


@dataclasses.dataclass(frozen=True)
class DTConfig:
    """Defaults follow Chen et al. (2021) (REFERENCES.md section 6). In a Hydra tree the backbone is the
    top-level ``model`` / ``model_options`` (the memory model, named as on every entry point) and the
    rest sits under ``dt``."""

    backbone: str = setting("transformer", "the memory model: any ssm registry name", key="/model",
                            choices=model_names)
    backbone_options: Options = setting((), "options of ssm.make for the model (e.g. state_size)",
                                        key="/model_options")
    features: int = setting(128, "token width", ge=1)
    num_layers: int = setting(3, "backbone layers", ge=1)
    num_heads: int = setting(1, "attention heads (backbones that take them)", ge=1)
    dropout: float = setting(0.1, "dropout", ge=0, lt=1)
    context_len: int = setting(20, "K: steps of context", ge=1)
    batch_size: int = setting(64, "segments per update", ge=1)
    lr: float = setting(1e-4, "AdamW learning rate", gt=0)
    weight_decay: float = setting(1e-4, "AdamW weight decay", ge=0)
    warmup_steps: int = setting(10_000, "linear learning-rate warm-up steps", ge=0)
    grad_clip: float = setting(0.25, "global gradient-norm clip", gt=0)
    num_steps: int = setting(100_000, "training steps", ge=1)
    steps_per_chunk: int = setting(1_000, "steps per compiled call: the unit of progress and checkpoints", ge=1)
    rtg_scale: float = setting(10.0, "returns-to-go are divided by this", gt=0)
    max_timestep: int = setting(1000, "size of the timestep embedding", ge=1)
    eval_episodes: int = setting(10, "evaluation episodes per task", ge=1)

    def check(self) -> None:
        """How the fields fit together and the backbone's options (called by ``agents.config``)."""
        from ssmrl import ssm

        ssm.check_options(self.backbone, dict(self.backbone_options), where="model_options")
        if self.features % self.num_heads:
            raise ConfigError(f"dt.features ({self.features}) must be divisible by dt.num_heads ({self.num_heads})")


def validate(config: DTConfig) -> DTConfig:
    """Every field checked (types, bounds, choices) and the backbone's options; raises ``ConfigError``."""
    return check(config)


def from_mapping(values: Mapping[str, Any]) -> DTConfig:
    """``DTConfig`` from its field names; unknown keys raise naming the valid ones."""
    return validate(from_fields(DTConfig, values))
