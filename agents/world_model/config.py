"""World-model agent configuration: validated once, at the edge, into a frozen dataclass.

Defaults are the ``atari100k`` preset at Drama size (REFERENCES.md section 4): 32x32 categorical
latents, a 5-layer conv encoder (16/32/48/64/64, kernel 5) to 1024 features, a 512-wide sequence
model of 2 blocks, 256-wide one-layer world-model heads (~7M world-model parameters), batch 16 x 64,
imagination of 1024 starts x 16 steps after 8 context steps.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ssmrl.agents.config import ConfigError, Options, check, env_names, from_fields, model_names, setting
from ssmrl.agents.world_model.conv import WEIGHT_GRADS
from ssmrl.ssm.precision import PRECISIONS

MODELS = ("drama", "s4wm", "rssm")
DECODERS = ("subpixel", "conv_transpose")
DECODER_INPUTS = ("state", "latent")
POSTERIOR_HEADS = ("mlp", "linear")
ACTION_INPUTS = ("joint", "separate")
SAMPLERS = ("uniform", "dfs")
REWARD_INPUTS = ("after_action", "state_action", "state_per_action", "next_state")
REWARD_OUTPUTS = ("twohot", "symlog_mse")


def block_layer(model: str, s4wm_layer: str) -> str | None:
    """The ssm registry layer of a backbone's blocks: Mamba-2 for drama, ``s4wm_layer`` for s4wm, None otherwise
    (the rssm's GRU cell is not a registry layer)."""
    return {"drama": "mamba2", "s4wm": s4wm_layer}.get(model)


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
    """Everything one world-model run needs (sizes, losses, actor-critic, data, schedule)."""

    env_name: str = setting("atari/Pong", "environment with discrete actions: any registered name "
                            "(envs.available(), e.g. atari/Boxing)", key="env.name", choices=env_names)
    env_options: Options = setting((), "keyword options of the environment's constructor", key="env.options")
    num_envs: int = setting(1, "envs stepped together", ge=1)
    # world model
    model: str = setting("drama", "world-model backbone", key="model.name", choices=MODELS)
    s4wm_layer: str = setting("s4", "the S4WM block's layer: any ssm registry name", key="model.layer",
                              choices=model_names)
    hidden: int = setting(512, "width of the sequence model output h", ge=1)
    num_layers: int = setting(2, "sequence-model blocks", ge=1)
    state_size: int = setting(16, "Mamba-2 d_state / S4 and S5 state size N", key="model.state_size", ge=1)
    layer_options: Options = setting((), "more options of ssm.make for the drama / s4wm blocks (e.g. dt_min, "
                                     "memory)", key="model.options")
    latent_groups: int = setting(32, "categorical latents", ge=1)
    latent_classes: int = setting(32, "classes per categorical latent", ge=1)
    unimix: float = setting(0.01, "uniform mix into latent and policy distributions", ge=0, lt=1)
    channels: tuple[int, ...] = setting((16, 32, 48, 64, 64), "image encoder / decoder channels (>= 2 layers)")
    kernel: int = setting(5, "image conv kernel size", ge=1)
    decoder: str = setting("subpixel", "image upsampling (conv_transpose: the slow baseline)", choices=DECODERS)
    decoder_input: str = setting("state", "what the observation decoder reads: state = s_t = [z_t, h_{t-1}] "
                                 "(DreamerV3); latent = z_t alone (Drama, STORM), so all that is drawn passes "
                                 "through the posterior latent of the frame", choices=DECODER_INPUTS)
    conv_weight_grad: str = setting("matmul", "image convs' gradients: matmul = on the CPU, the weight gradient as "
                                    "matmuls and a strided conv's input gradient as one stride-1 conv "
                                    "(XLA's CPU paths are up to 11x slower), xla = XLA's own", choices=WEIGHT_GRADS)
    precision: str = setting("f32", "matmuls of every dense layer (world model, actor, critic; the convs stay f32): "
                             "f32, or bf16 operands with f32 accumulation (ssm/precision.py)", choices=PRECISIONS)
    vector_hidden: int = setting(512, "vector encoder / decoder width (R2I on POPGym: one 512-wide layer)", ge=1)
    vector_layers: int = setting(1, "vector encoder / decoder layers", ge=1)
    mlp_hidden: int = setting(256, "width of the posterior, prior, reward and continue heads", ge=1)
    mlp_layers: int = setting(1, "layers of those heads", ge=1)
    posterior_head: str = setting("mlp", "the posterior's head: mlp = as the other heads (DreamerV3, Drama); linear = "
                                  "one Dense from the frame's embedding (with h_{t-1} for rssm) to the latent's "
                                  "logits (docs/RESULTS.md: the MLP's hidden layer kept Pong's moving pixels out of "
                                  "an autoencoder)", choices=POSTERIOR_HEADS)
    action_input: str = setting("joint", "how the sequence model reads (z_t, a_t): joint = one Dense over [z_t, "
                                "a_t, first_t], LayerNorm, SiLU (Drama); separate = z_t and [a_t, first_t] each "
                                "through a Dense, LayerNorm and SiLU of their own, summed (DreamerV3's RSSM embeds "
                                "each input apart), so a one-hot action is not one input of a thousand beside a "
                                "32x32 latent", choices=ACTION_INPUTS)
    reward_input: str = setting("after_action", "what the reward head reads: after_action = h_t, the sequence output "
                                "after a_t (Drama); state_action = [z_t, h_{t-1}, a_t], the actor's input "
                                "and its action, so the features the actor reads must hold what the reward needs; "
                                "state_per_action = [z_t, h_{t-1}] to one reward distribution per action, a_t's "
                                "taken; next_state = [z_{t+1}, h_t], the state a_t led to (DreamerV3), z_{t+1} "
                                "the posterior of the next frame in training, a prior sample in imagination",
                                choices=REWARD_INPUTS)
    reward_output: str = setting("twohot", "what the reward head outputs: twohot = a distribution over reward_bins, "
                                 "cross-entropy (DreamerV3, Drama); symlog_mse = one number in symlog space, squared "
                                 "error (DreamerV3's alternative; docs/RESULTS.md compares the two)",
                                 choices=REWARD_OUTPUTS)
    reward_zero_init: bool = setting(True, "the reward head's output layer starts at zero, so the first predictions "
                                     "are 0 (DreamerV3); false: LeCun-normal, as its hidden layers, so the reward's "
                                     "gradient reaches the features from the first update (docs/RESULTS.md: from "
                                     "zero a sparse reward is learned hundreds of updates later)")
    reward_norm: bool = setting(True, "LayerNorm in the reward head's hidden layers, as every head's (DreamerV3); "
                                "false: Dense layers with a bias (docs/RESULTS.md: with the norm a sparse reward is "
                                "not learned in 1,600 updates from features the reward alone shapes)")
    reward_bins: int = setting(255, "two-hot bins of reward and value", ge=1)
    twohot_range: float = setting(20.0, "the bins span symlog [-range, range] (DreamerV3: 20)", gt=0)
    free_bits: float = setting(1.0, "KL free nats", ge=0)
    dyn_scale: float = setting(0.5, "dynamics KL weight", ge=0)
    rep_scale: float = setting(0.1, "representation KL weight", ge=0)
    reward_loss_scale: float = setting(1.0, "reward loss weight (DreamerV3, Drama: 1)", ge=0)
    prior_reward_scale: float = setting(0.0, "weight of a second reward loss, read from the sequence model fed a "
                                        "prior sample in place of each posterior latent, as imagination feeds it "
                                        "(0: off; docs/RESULTS.md: on Pong, at 10,000 beside a 10,000x reward, "
                                        "imagination still foresaw the lost point one step, not two, with the "
                                        "reward read from next_state or after_action)", ge=0)
    reward_ahead: int = setting(0, "heads reading the rewards 1 .. N steps later from h_t and the actions between "
                                "(MuZero's reward unrolled from a state), each head's loss at reward_loss_scale, so "
                                "the state holds a reward before the frame that decides it; auxiliary: imagination "
                                "reads the reward head alone (0: off; docs/RESULTS.md, Pong's lost point)", ge=0)
    recon_moving_weight: float = setting(0.0, "weight of a second reconstruction loss, the observation's squared "
                                         "error on the values that move within the window (more than 0.05 in "
                                         "preprocess' units from their median over its rows): a two-pixel ball's "
                                         "error is otherwise lost beside the background's (0: off)", ge=0)
    recon_gradient: bool = setting(True, "the reconstruction's gradient shapes the model state (DreamerV3, Drama); "
                                   "false: the decoder reads the state through stop_gradient, so the reward, "
                                   "continuation and KL losses alone decide what the encoder and latent hold")
    wm_lr: float = setting(1e-4, "world-model learning rate", gt=0)
    wm_grad_clip: float = setting(1000.0, "world-model gradient-norm clip", gt=0)
    wm_eps: float = setting(1e-5, "world-model Adam epsilon: a parameter whose gradient's RMS is below it moves "
                            "slower than wm_lr (optax's default and scripts/reward_from_frames.py: 1e-8)", gt=0)
    # actor-critic in imagination
    ac_hidden: int = setting(512, "actor and critic width", ge=1)
    ac_layers: int = setting(2, "actor and critic layers", ge=1)
    gamma: float = setting(0.985, "discount", gt=0, le=1)
    lam: float = setting(0.95, "lambda-return lambda", gt=0, le=1)
    entropy: float = setting(3e-4, "actor entropy weight", ge=0)
    actor_lr: float = setting(3e-5, "actor learning rate", gt=0)
    critic_lr: float = setting(3e-5, "critic learning rate", gt=0)
    ac_grad_clip: float = setting(100.0, "actor-critic gradient-norm clip", gt=0)
    slow_critic_rate: float = setting(0.02, "slow critic EMA rate", gt=0, le=1)
    slow_critic_reg: float = setting(1.0, "weight of the slow-critic regulariser", ge=0)
    return_norm_decay: float = setting(0.99, "decay of the return-percentile normaliser", gt=0, le=1)
    imag_batch: int = setting(1024, "imagination starts per update", ge=1)
    imag_context: int = setting(8, "real steps read before imagining", ge=2)
    horizon: int = setting(16, "imagined steps", ge=1)
    # data and schedule
    batch_size: int = setting(16, "replay windows per update", ge=1)
    batch_length: int = setting(64, "steps per replay window", ge=1)
    sampler: str = setting("uniform", "replay sampling of windows (dfs: Drama's dynamic frequency-based sampling)",
                           choices=SAMPLERS)
    dfs_temperature: float = setting(10.0, "temperature of dfs sampling", ge=0)
    total_steps: int = setting(100_000, "agent steps per env (x num_envs = replay rows)", ge=1)
    prefill: int = setting(1024, "random-policy steps before the first update", ge=0)
    train_every: int = setting(1, "env steps (per env) between two updates", ge=1)
    updates_per_chunk: int = setting(100, "updates per compiled call: the unit of progress and checkpoints", ge=1)
    eval_every: int = setting(0, "chunks between evaluations (0: only at the end)", ge=0)
    eval_envs: int = setting(1, "envs of each evaluation", ge=1)
    eval_steps: int = setting(3000, "agent steps of each evaluation (finished episodes are scored)", ge=1)
    video_context: int = setting(8, "real frames before the imagined video", ge=1)
    video_horizon: int = setting(32, "imagined frames of the video", ge=1)

    @property
    def posterior_layers(self) -> int:
        """Hidden layers of the posterior's head: ``mlp_layers``, or 0 (one Dense) with ``posterior_head="linear"``."""
        return self.mlp_layers if self.posterior_head == "mlp" else 0

    def check(self) -> None:
        """How the fields fit together and the env's options (called by ``agents.config``)."""
        from ssmrl import envs, ssm

        envs.check_options(self.env_name, dict(self.env_options), where="env.options")
        if self.layer_options:
            _require(self.model != "rssm", f"model.options {dict(self.layer_options)} set for the rssm, whose GRU "
                                           "cell takes none")
            ssm.check_options(self.block_layer, dict(self.layer_options), where="model.options")
            owned = sorted({"state_size", "num_layers", "final_norm"} & set(dict(self.layer_options)))
            _require(not owned, f"model.options {owned} are set by the world model (model.state_size, num_layers; "
                                "the blocks always end in a norm); valid here: the layer's other options")
        _require(len(self.channels) >= 2 and all(c > 0 for c in self.channels),
                 f"channels must list >= 2 positive integers, got {list(self.channels)!r}")
        _require(self.prefill >= max(self.batch_length, self.imag_context),
                 f"prefill ({self.prefill}) must be >= batch_length ({self.batch_length}) and imag_context "
                 f"({self.imag_context}) so the first update can sample whole windows")
        _require(self.total_steps > self.prefill_chunk_steps,
                 f"total_steps ({self.total_steps}) must exceed prefill ({self.prefill})")

    @property
    def block_layer(self) -> str | None:
        return block_layer(self.model, self.s4wm_layer)

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


def validate(config: WorldModelConfig) -> WorldModelConfig:
    """Check every field and how they fit together before anything compiles; raises ``ConfigError``
    (a ``ValueError``) naming the bad key and value."""
    return check(config)


def from_mapping(values: Mapping[str, Any]) -> WorldModelConfig:
    """``WorldModelConfig`` from its field names (a ``run.json``); unknown keys raise."""
    return from_fields(WorldModelConfig, values)


# What each backbone sets of its own (configs/world_model/model/<name>.yaml; a test keeps them equal): the CLI's
# model group and ``preset(..., model=name)`` build the same model.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "drama": dict(state_size=16),
    "s4wm": dict(state_size=64),
    "rssm": dict(state_size=16),
}

PRESETS: dict[str, dict[str, Any]] = {
    # 2-core CPU, ~15 min on Atari; configs/world_model/preset/small.yaml
    "small": dict(
        hidden=64, num_layers=1, latent_groups=8, latent_classes=8,
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
        train_every=4, updates_per_chunk=50, eval_envs=32, eval_steps=520, wm_lr=3e-3, actor_lr=1e-3,
        critic_lr=1e-3, gamma=0.99, free_bits=3.0, twohot_range=1.0, reward_input="state_per_action",
        entropy=3e-3,
    ),
}


def preset(name: str, **overrides) -> WorldModelConfig:
    """A named preset (``PRESETS``; its YAML twin in configs/world_model/preset/) with ``overrides``, over the
    backbone's own settings (``MODEL_DEFAULTS``), as the CLI composes them."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid: {sorted(PRESETS)}")
    model = overrides.get("model", PRESETS[name].get("model", WorldModelConfig.model))
    if model not in MODEL_DEFAULTS:
        raise ValueError(f"unknown world-model backbone {model!r}; valid: {sorted(MODEL_DEFAULTS)}")
    return WorldModelConfig(**{**MODEL_DEFAULTS[model], **PRESETS[name], **overrides})


def small(**overrides) -> WorldModelConfig:
    """The ``small`` preset (2-core CPU, ~15 min on Atari)."""
    return preset("small", **overrides)
