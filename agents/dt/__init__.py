"""Decision Transformer (Chen et al. 2021) with attention or SSM backbones, and offline-data collection.

* ``agents.dt.model``: the DT network (tokens, any ``ssm`` registry backbone, the GTrXL ``transformer`` by default,
  action head);
* ``agents.dt.train``: ``DTConfig``, batches of K-step segments, the jitted ``train_step``, evaluation;
* ``agents.dt.collection``: rollouts of a PPO agent trained on ``envs.tasks`` ``conditioned/<name>`` that
  turn its policy into per-task datasets.
"""
