"""The Decision Transformer of Meta-DT / Prompt-DT: optional task vector in the state tokens, prompt in front.

Token sequence for a K-step segment with a K_p-step prompt::

    [R^p_0, s^p_0, a^p_0, ..., R^p_{Kp-1}, s^p_{Kp-1}, a^p_{Kp-1},  R_0, s_0, a_0, ..., R_{K-1}, s_{K-1}, a_{K-1}]

Prompt tokens have their own linear embeddings (as in Prompt-DT) and share the timestep embedding.
Where ``prompt_mask`` is False the 3 K_p prompt tokens are a learned *empty prompt* instead, so one
network acts with a prompt (few-shot) and without (zero-shot). With ``task_dim > 0`` the state token of
step t is ``Linear([s_t, z_t])`` (``embed_state(s) + embed_task(z)``), z from the context world model.
The action ``a_t`` is read at the state token of step t, after the prompt: the model stays causal.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssmrl.agents.dt.model import TOKENS_PER_STEP, DecisionTransformer, interleave
from ssmrl.agents.meta_dt.prompt import Prompt


class PromptedDecisionTransformer(DecisionTransformer):
    task_dim: int = 0  # 0: no task vector (Prompt-DT)
    prompt_len: int = 5

    def setup(self):
        super().setup()
        self.embed_task = nn.Dense(self.features, use_bias=False)
        self.prompt_rtg = nn.Dense(self.features)
        self.prompt_state = nn.Dense(self.features)
        self.prompt_action = nn.Dense(self.features)
        self.empty_prompt = self.param("empty_prompt", nn.initializers.normal(0.02),
                                       (TOKENS_PER_STEP * self.prompt_len, self.features))

    def prompt_tokens(self, prompt: Prompt, prompt_mask: jax.Array) -> jax.Array:
        """``prompt`` ([B, Kp, ...]), ``prompt_mask [B]`` -> ``[B, 3 Kp, H]``."""
        time = self.embed_time(jnp.clip(prompt.timesteps, 0, self.max_timestep - 1))
        x = interleave(self.prompt_rtg(prompt.rtg[..., None]) + time, self.prompt_state(prompt.states) + time,
                       self.prompt_action(prompt.actions) + time)
        x = jnp.where(prompt_mask[:, None, None], x, self.empty_prompt[None])
        return self.embed_norm(x)

    def __call__(self, rtg, states, actions, timesteps, task: jax.Array | None = None, prompt: Prompt | None = None,
                 prompt_mask: jax.Array | None = None, deterministic: bool = True) -> jax.Array:
        """Predicted actions ``[B, K, act]``; ``task [B, K, Z]`` (when ``task_dim > 0``), ``prompt_mask [B]``."""
        if (task is None) != (self.task_dim == 0):
            raise ValueError(f"task vectors must be given exactly when task_dim > 0 (task_dim={self.task_dim})")
        extra = None if task is None else self.embed_task(task)
        x = jnp.concatenate([self.prompt_tokens(prompt, prompt_mask),
                             self.tokens(rtg, states, actions, timesteps, state_extra=extra)], axis=1)
        h = self.backbone(self.drop(x, deterministic=deterministic), deterministic=deterministic)
        first_state = TOKENS_PER_STEP * self.prompt_len + 1
        return jnp.tanh(self.head(h[:, first_state::TOKENS_PER_STEP])) * self.action_scale
