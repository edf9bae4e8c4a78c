"""Meta-DT (Wang et al. 2024) and Prompt-DT (Xu et al. 2022) on top of ``agents.dt``.

* ``agents.meta_dt.config``: ``WorldModelConfig`` and ``MetaDTConfig`` (method, prompt), validated;
* ``agents.meta_dt.world_model``: the context world model (encoder over the last k transitions -> task
  vector z; reward and next-state decoders on ``(s, a, z)``) and its training;
* ``agents.meta_dt.prompt``: the highest-error (complementary) prompt window and segment gathering;
* ``agents.meta_dt.model``: the DT with z added to its state tokens and a prompt prepended;
* ``agents.meta_dt.train``: task vectors and prompts for the dataset, batches, the jitted training;
* ``agents.meta_dt.evaluate``: rollouts with z from the agent's own history, zero-shot and few-shot.
"""
