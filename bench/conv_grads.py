"""Per-layer cost of the Drama image networks' convs: forward, input gradient (XLA's, and for strided convs the
phase split of ``agents/world_model/conv.py``) and weight gradient (XLA's, and as a matmul per tap), timed apart in
one process.

    python bench/conv_grads.py                 # 128 frames (the bench's 4 x 32 update batch)
    python bench/conv_grads.py --frames 32
    python bench/conv_grads.py --preset small  # the small preset's networks (channels 8-32, kernel 4)

Layers are those of the default ``WorldModelConfig`` (or of ``--preset``) on 64x64x3 frames: the encoder's convs
(the first stride 1, the rest stride 2) and the sub-pixel decoder's convs (each to 4x its channels at the lower
resolution) and its output conv. The ratio columns are XLA's time over ours.
"""

from __future__ import annotations

import argparse
import math

import jax
from timing import timed  # the sibling script module: bench/ is the script's path entry

from ssmrl.agents.world_model.config import PRESETS, WorldModelConfig, preset
from ssmrl.agents.world_model.conv import (
    matmul_weight_grad,
    phase_input_grad,
    xla_conv,
    xla_input_grad,
    xla_weight_grad,
)
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
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a preset's networks instead of Drama's")
    args = parser.parse_args()
    config = preset(args.preset) if args.preset else WorldModelConfig()
    print(f"device: {jax.devices()[0].device_kind}; {args.preset or 'drama'} networks; {args.frames} frames; "
          f"median of {args.repeats} after a warm-up")
    print("| layer | shape | forward (ms) | input grad, XLA (ms) | input grad, phase split (ms) | XLA / phase "
          "| weight grad, XLA (ms) | weight grad, matmul (ms) | XLA / matmul |")
    print("|---|---|---|---|---|---|---|---|---|")
    key = jax.random.PRNGKey(0)
    forward = jax.jit(xla_conv, static_argnums=2)
    input_grad = jax.jit(xla_input_grad, static_argnums=3)
    phase_grad = jax.jit(phase_input_grad, static_argnums=(0, 3))
    xla_grad = jax.jit(xla_weight_grad, static_argnums=3)
    matmul_grad = jax.jit(matmul_weight_grad, static_argnums=(2, 3))
    for name, size, c_in, c_out, k, stride in drama_layers(config):
        x = jax.random.normal(key, (args.frames, size, size, c_in))
        w = 0.1 * jax.random.normal(key, (k, k, c_in, c_out))
        dy = jax.random.normal(key, xla_conv(x, w, stride).shape)
        ms = lambda fn, *fn_args: 1e3 * timed(fn, *fn_args, repeats=args.repeats)  # noqa: E731
        fwd, dx_xla = ms(forward, x, w, stride), ms(input_grad, x, w, dy, stride)
        dx_phase = ms(phase_grad, x.shape, w, dy, stride) if stride > 1 else None  # stride 1 keeps XLA's
        dw_xla, dw_matmul = ms(xla_grad, x, w, dy, stride), ms(matmul_grad, x, dy, k, stride)
        phase = f"{dx_phase:,.0f} | {dx_xla / dx_phase:.1f}" if dx_phase is not None else "- | -"
        print(f"| {name} | k{k} s{stride}, {c_in} -> {c_out} at {size}x{size} | {fwd:,.0f} | {dx_xla:,.0f} | {phase} | "
              f"{dw_xla:,.0f} | {dw_matmul:,.0f} | {dw_xla / dw_matmul:.1f} |", flush=True)


if __name__ == "__main__":
    main()
