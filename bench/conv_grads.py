"""Per-layer cost of the Drama image networks' convs: forward, input gradient and weight gradient (XLA's, and
the im2col matmul of ``agents/world_model/conv.py``), timed apart in one process.

    python bench/conv_grads.py                 # 128 frames (the bench's 4 x 32 update batch)
    python bench/conv_grads.py --frames 32

Layers are those of the default ``WorldModelConfig`` on 64x64x3 frames: the encoder's convs (the first
stride 1, the rest stride 2) and the sub-pixel decoder's convs (each to 4x its channels at the lower
resolution) and its output conv. The ratio column is XLA's weight gradient over the matmul's.
"""

from __future__ import annotations

import argparse
import math

import jax
from world_model import timed  # the sibling script module: bench/ is the script's path entry

from ssmrl.agents.world_model.config import WorldModelConfig
from ssmrl.agents.world_model.conv import im2col_weight_grad, xla_conv, xla_input_grad, xla_weight_grad
from ssmrl.agents.world_model.networks import conv_sizes


def drama_layers(config: WorldModelConfig, size: int = 64,
                 colours: int = 3) -> list[tuple[str, int, int, int, int, int]]:
    """``(name, input size, C_in, C_out, kernel, stride)`` of every conv in the encoder and sub-pixel decoder."""
    channels, k = config.channels, config.kernel
    sizes = [h for h, _ in conv_sizes(size, size, len(channels))]
    layers = [(f"encoder {i + 1}", sizes[max(i - 1, 0)], c_in, c, k, 1 if i == 0 else 2)
              for i, (c_in, c) in enumerate(zip((colours, *channels[:-1]), channels))]
    up = math.ceil(k / 2)
    for i, (h, c) in enumerate(zip(reversed(sizes[:-1]), reversed(channels[:-1]))):
        layers.append((f"decoder up {i + 1}", -(-h // 2), channels[-1 - i], 4 * c, up, 1))
    layers.append(("decoder out", size, channels[0], colours, k, 1))
    return layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind}; {args.frames} frames; median of {args.repeats} after a warm-up")
    print("| layer | shape | forward (ms) | input grad, XLA (ms) | weight grad, XLA (ms) | weight grad, matmul (ms) "
          "| XLA / matmul |")
    print("|---|---|---|---|---|---|---|")
    key = jax.random.PRNGKey(0)
    for name, size, c_in, c_out, k, stride in drama_layers(WorldModelConfig()):
        x = jax.random.normal(key, (args.frames, size, size, c_in))
        w = 0.1 * jax.random.normal(key, (k, k, c_in, c_out))
        dy = jax.random.normal(key, xla_conv(x, w, stride).shape)
        forward = jax.jit(xla_conv, static_argnums=2)
        input_grad = jax.jit(xla_input_grad, static_argnums=3)
        xla_grad = jax.jit(xla_weight_grad, static_argnums=3)
        matmul_grad = jax.jit(im2col_weight_grad, static_argnums=(2, 3))
        calls = [(forward, x, w, stride), (input_grad, x, w, dy, stride), (xla_grad, x, w, dy, stride),
                 (matmul_grad, x, dy, k, stride)]
        times = [1e3 * timed(fn, *fn_args, repeats=args.repeats) for fn, *fn_args in calls]
        print(f"| {name} | k{k} s{stride}, {c_in} -> {c_out} at {size}x{size} | "
              + " | ".join(f"{t:,.0f}" for t in times) + f" | {times[2] / times[3]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
