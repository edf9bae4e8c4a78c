"""World-model agents (Drama / S4WM / DreamerV3 RSSM backbones) trained in imagination.

config (WorldModelConfig, presets) -> networks, distributions -> sequence (the three backbones behind
one interface) -> world_model (model + loss) -> behavior (actor-critic in imagination), replay ->
agent (state, collect, train_step, chunk, evaluate, open-loop video).
"""
