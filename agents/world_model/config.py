"""World-model agent configuration: validated once, at the edge, into a frozen dataclass.

Defaults are the ``atari100k`` preset at Drama size (REFERENCES.md section 4): 32x32 categorical
latents, a 5-layer conv encoder (16/32/48/64/64, kernel 5) to 1024 features, a 512-wide sequence
model of 2 blocks, 256-wide one-layer world-model heads (~7M world-model parameters), batch 16 x 64,
imagination of 1024 starts x 16 steps after 8 context steps.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from ssmrl.agents.config import config_from_mapping

MODELS = ("drama", "s4wm", "rssm")
DECODERS = ("subpixel", "conv_transpose")
SAMPLERS = ("uniform", "dfs")


@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
    """Everything one world-model run needs (sizes, losses, actor-critic, data, schedule)."""

    # environment: any registered name (``envs.available()``) with discrete actions
    env_name: str = "atari/Pong"
    env_options: tuple = ()         # constructor options as sorted (key, value) pairs
    num_envs: int = 1
    # world model
    model: str = "drama"
    s4wm_layer: str = "s4"          # the S4WM block's layer: any ssm registry name
    hidden: int = 512               # width of the sequence model output h
    num_layers: int = 2
    state_size: int = 16            # Mamba-2 d_state / S4 and S5 state size N
    latent_groups: int = 32
    latent_classes: int = 32
    unimix: float = 0.01
    channels: tuple[int, ...] = (16, 32, 48, 64, 64)   # image encoder / decoder
    kernel: int = 5
    decoder: str = "subpixel"       # image upsampling: "subpixel" or "conv_transpose" (the slow baseline)
    vector_hidden: int = 512        # vector encoder / decoder (R2I on POPGym: one 512-wide layer)
    vector_layers: int = 1
    mlp_hidden: int = 256           # world-model heads: posterior, prior, reward, continue
    mlp_layers: int = 1
    reward_bins: int = 255
    twohot_range: float = 20.0      # reward and value bins span symlog [-range, range] (DreamerV3: 20)
    free_bits: float = 1.0
    dyn_scale: float = 0.5
    rep_scale: float = 0.1
    wm_lr: float = 1e-4
    wm_grad_clip: float = 1000.0
    # actor-critic in imagination
    ac_hidden: int = 512
    ac_layers: int = 2
    gamma: float = 0.985
    lam: float = 0.95
    entropy: float = 3e-4
    actor_lr: float = 3e-5
    critic_lr: float = 3e-5
    ac_grad_clip: float = 100.0
    slow_critic_rate: float = 0.02
    slow_critic_reg: float = 1.0
    return_norm_decay: float = 0.99
    imag_batch: int = 1024
    imag_context: int = 8
    horizon: int = 16
    # data and schedule
    batch_size: int = 16
    batch_length: int = 64
    sampler: str = "uniform"        # "uniform" or "dfs" (Drama's dynamic frequency-based sampling)
    dfs_temperature: float = 10.0
    total_steps: int = 100_000      # agent steps per env (x num_envs = replay rows)
    prefill: int = 1024             # random-policy steps before the first update
    train_every: int = 1            # env steps (per env) between two updates
    updates_per_chunk: int = 100    # updates per compiled call: the unit of progress and checkpoints
    eval_every: int = 0             # chunks between evaluations (0: only at the end)
    eval_envs: int = 1
    eval_steps: int = 3000          # agent steps of each evaluation (finished episodes are scored)
    video_context: int = 8
    video_horizon: int = 32

    @property
    def latent_size(self) -> int:
        return self.latent_groups * self.latent_classes

    @property
    def steps_per_update(self) -> int:
        """Env steps (all envs) collected between two updates."""
        return self.train_every * self.num_envs

    @property
    def prefill_chunk_steps(self) -> int:
        return -(-self.prefill // self.train_every) * self.train_every

    @property
    def num_updates(self) -> int:
        return max(1, (self.total_steps - self.prefill_chunk_steps) // self.train_every)

    @property
    def num_chunks(self) -> int:
        return -(-self.num_updates // self.updates_per_chunk)

    @property
    def capacity(self) -> int:
        """Replay rows per env: the whole run fits, so windows never wrap."""
        return self.prefill_chunk_steps + self.num_chunks * self.updates_per_chunk * self.train_every


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def validate(config: WorldModelConfig) -> WorldModelConfig:
    """Check names and numbers before anything compiles; raises ``ValueError`` naming the bad value."""
    from ssmrl import envs, ssm

    _require(config.env_name in envs.available(),
             f"unknown env.name {config.env_name!r}; valid: {envs.available()}")
    _require(config.decoder in DECODERS, f"unknown decoder {config.decoder!r}; valid: {list(DECODERS)}")
    _require(config.model in MODELS, f"unknown model {config.model!r}; valid: {list(MODELS)}")
    _require(config.s4wm_layer in ssm.available(),
             f"unknown s4wm_layer {config.s4wm_layer!r}; valid: {ssm.available()}")
    _require(config.sampler in SAMPLERS, f"unknown sampler {config.sampler!r}; valid: {list(SAMPLERS)}")
    for name in ("num_envs", "hidden", "num_layers", "state_size", "latent_groups", "latent_classes", "kernel",
                 "vector_hidden", "vector_layers", "mlp_hidden", "mlp_layers", "ac_hidden", "ac_layers", "reward_bins",
                 "imag_batch", "imag_context", "horizon", "batch_size", "batch_length", "total_steps", "train_every",
                 "updates_per_chunk", "eval_envs", "eval_steps", "video_context", "video_horizon"):
        value = getattr(config, name)
        _require(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                 f"{name} must be a positive integer, got {value!r}")
    for name in ("prefill", "eval_every"):
        value = getattr(config, name)
        _require(isinstance(value, int) and value >= 0, f"{name} must be a non-negative integer, got {value!r}")
    _require(len(config.channels) >= 2 and all(isinstance(c, int) and c > 0 for c in config.channels),
             f"channels must list >= 2 positive integers, got {config.channels!r}")
    for name in ("gamma", "lam", "slow_critic_rate", "return_norm_decay"):
        value = getattr(config, name)
        _require(0.0 < value <= 1.0, f"{name} must be in (0, 1], got {value!r}")
    _require(0.0 <= config.unimix < 1.0, f"unimix must be in [0, 1), got {config.unimix!r}")
    for name in ("free_bits", "dyn_scale", "rep_scale", "entropy", "slow_critic_reg", "dfs_temperature"):
        _require(getattr(config, name) >= 0.0, f"{name} must be >= 0, got {getattr(config, name)!r}")
    for name in ("wm_lr", "actor_lr", "critic_lr", "wm_grad_clip", "ac_grad_clip", "twohot_range"):
        _require(getattr(config, name) > 0.0, f"{name} must be > 0, got {getattr(config, name)!r}")
    _require(config.imag_context >= 2, f"imag_context must be >= 2, got {config.imag_context}")
    _require(config.prefill >= max(config.batch_length, config.imag_context),
             f"prefill ({config.prefill}) must be >= batch_length ({config.batch_length}) and imag_context "
             f"({config.imag_context}) so the first update can sample whole windows")
    _require(config.total_steps > config.prefill_chunk_steps,
             f"total_steps ({config.total_steps}) must exceed prefill ({config.prefill})")
    return config


def from_mapping(values: Mapping[str, Any]) -> WorldModelConfig:
    """``WorldModelConfig`` from a plain mapping; lists become tuples, unknown keys raise."""
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return config_from_mapping(WorldModelConfig, values, "world_model")


PRESETS: dict[str, dict[str, Any]] = {
    # 2-core CPU, ~15 min on Atari; configs/world_model/preset/small.yaml
    "small": dict(
        hidden=64, num_layers=1, state_size=16, latent_groups=8, latent_classes=8,
        channels=(8, 16, 16, 32, 32), kernel=4, mlp_hidden=64, mlp_layers=1, ac_hidden=64, ac_layers=1,
        imag_batch=64, imag_context=4, horizon=12, batch_size=4, batch_length=32,
        total_steps=4000, prefill=500, train_every=8, updates_per_chunk=25, eval_steps=2000,
        wm_lr=3e-4, actor_lr=1e-4, critic_lr=1e-4,
    ),
    # R2I's POPGym setting at CPU size; configs/world_model/preset/popgym.yaml
    "popgym": dict(
        num_envs=8, hidden=128, num_layers=2, latent_groups=16, latent_classes=16, vector_hidden=512,
        vector_layers=1, mlp_hidden=128, mlp_layers=1, ac_hidden=128, ac_layers=2, imag_batch=128,
        imag_context=8, horizon=12, batch_size=16, batch_length=32, total_steps=4000, prefill=200,
        train_every=4, updates_per_chunk=50, eval_envs=32, eval_steps=520, wm_lr=3e-3, actor_lr=1e-4,
        critic_lr=1e-4, gamma=0.99, free_bits=3.0, twohot_range=1.0,
    ),
}


def preset(name: str, **overrides) -> WorldModelConfig:
    """A named preset (``PRESETS``; its YAML twin in configs/world_model/preset/) with ``overrides``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid: {sorted(PRESETS)}")
    return WorldModelConfig(**{**PRESETS[name], **overrides})


def small(**overrides) -> WorldModelConfig:
    """The ``small`` preset (2-core CPU, ~15 min on Atari)."""
    return preset("small", **overrides)


RUN_KEYS = ("seed", "resume", "progress")
MODEL_KEYS = ("name", "layer", "state_size")


def from_hydra(cfg: DictConfig) -> WorldModelConfig:
    """Flatten the Hydra config (``env.*``, ``model.*``, top-level keys) into a ``WorldModelConfig``.

    Every env key but ``name`` (and Atari's ``game``, which only forms the name) is an option of the
    env's constructor, as in train/ppo.py."""
    values = OmegaConf.to_container(cfg, resolve=True)
    env, model = values.pop("env"), values.pop("model")
    for key in RUN_KEYS:
        values.pop(key, None)
    bad_model = sorted(set(model) - set(MODEL_KEYS))
    if bad_model:
        raise ValueError(f"unknown model key(s) {bad_model}; valid: {sorted(MODEL_KEYS)}")
    env_options = {k: v for k, v in env.items() if k not in ("name", "game", "options")}
    env_options.update(env.get("options") or {})
    values.update(env_name=env["name"], env_options=env_options, model=model["name"],
                  state_size=model.get("state_size", 16))
    if "layer" in model:
        values["s4wm_layer"] = model["layer"]
    return from_mapping(values)
