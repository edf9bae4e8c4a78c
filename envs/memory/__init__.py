"""World-model memory benchmarks after S4WM (Deng et al. 2023), rendered as small images.

``memory/DistractingMemory`` (reward after a hallway of distractors), ``memory/MultiDoorsKeys`` (doors
that open for keys taken long before) and ``memory/FourRooms`` (long imagination after exploration);
sizes are constructor options (``width``, ``num_keys``, ``size``, ...), the paper's sizes included.
"""

from ssmrl.envs.memory.distracting import DistractingMemory
from ssmrl.envs.memory.doors_keys import MultiDoorsKeys
from ssmrl.envs.memory.four_rooms import FourRooms


def _builder(cls):
    def make(**options):
        env = cls(**options)
        return env, env.default_params

    return make


ENVS = {f"memory/{cls.__name__}": _builder(cls) for cls in (DistractingMemory, MultiDoorsKeys, FourRooms)}

__all__ = ["ENVS", "DistractingMemory", "FourRooms", "MultiDoorsKeys"]
