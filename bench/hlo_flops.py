"""Matmul and convolution FLOPs of a compiled XLA module, with every loop body counted per iteration.

XLA's ``cost_analysis()`` counts a ``while`` body (``lax.scan``, ``nn.scan``) once, whatever its trip
count: an RSSM update or an imagination rollout is undercounted by ~T or ~H. This walks the optimised
HLO text instead: each ``dot`` costs ``2 * |out| * |contracted lhs dims|``, each ``convolution``
``2 * |out| * |kernel| / kernel_out_features``, four times that for complex ones (a complex multiply-add is four
real multiplies and four real adds, all executed: popjaxrl's S5 runs complex dots, ours the real ones they
reduce to); a computation's cost is its own ops plus the computations it calls (fusions), a ``while`` body times
its ``known_trip_count``. Elementwise work is not counted: this is the arithmetic the matmul units do, the figure
to hold against a matmul peak.
On GPUs, matmuls and convolutions become cuBLAS / cuDNN ``custom-call``s and are counted from their
operand shapes and dimension numbers (written from XLA's HLO format, not yet checked on a GPU).
"""

from __future__ import annotations

import math
import re

_COMPUTATION = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (.*?) ([\w\-]+)\((.*)$")
_ARRAY = re.compile(r"^\(?\w+\[([\d,]*)\]")  # an array, or a tuple's first element (GPU library calls)
_COMPLEX = re.compile(r"^\(?c(64|128)\[")
_OPERANDS = re.compile(r"%([\w.\-]+)")
_TRIP_COUNT = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')


def _dims(text: str) -> list[int]:
    return [int(d) for d in text.split(",") if d]


def _parse(hlo: str) -> tuple[dict[str, list[str]], str]:
    """``{computation name: its instruction lines}`` and the entry computation's name."""
    computations: dict[str, list[str]] = {}
    entry, current = "", None
    for line in hlo.splitlines():
        if current is None:
            match = _COMPUTATION.match(line)
            if match:
                current = match.group(1)
                computations[current] = []
                if line.startswith("ENTRY"):
                    entry = current
        elif line.strip() == "}":
            current = None
        else:
            computations[current].append(line)
    return computations, entry


def _conv_flops(out: list[int], kernel: list[int], rest: str) -> float:
    """``2 * |forward output| * |kernel| / kernel_out_features``."""
    labels = re.search(r"dim_labels=\w+_(\w+)->", rest)
    if not out or not kernel or not labels or "o" not in labels.group(1):
        return 0.0
    return 2.0 * math.prod(out) * math.prod(kernel) / kernel[labels.group(1).index("o")]


def _op_flops(op: str, kind: str, out: list[int], rest: str, shapes: dict[str, list[int]]) -> float:
    """Real FLOPs of one instruction ``op`` whose result type is ``kind`` (``f32[16,768]{1,0}``, ``c64[...]``)."""
    return (4.0 if _COMPLEX.match(kind) else 1.0) * _real_op_flops(op, out, rest, shapes)


def _real_op_flops(op: str, out: list[int], rest: str, shapes: dict[str, list[int]]) -> float:
    operands = _OPERANDS.findall(rest.split(")", 1)[0])
    if op == "custom-call":  # GPU: cuBLAS matmuls and cuDNN convolutions are library calls, not dots
        target = re.search(r'custom_call_target="([^"]+)"', rest)
        target = target.group(1) if target else ""
        if "cublas" in target:
            contracting = re.search(r'"lhs_contracting_dimensions":\[([\d",]*)\]', rest)
            lhs = shapes.get(operands[0], []) if operands else []
            dims = [int(d) for d in re.findall(r"\d+", contracting.group(1))] if contracting else []
            return 2.0 * math.prod(out) * math.prod(lhs[i] for i in dims) if lhs and dims else 0.0
        if "cudnn$conv" in target and len(operands) >= 2:
            first, second = shapes.get(operands[0], []), shapes.get(operands[1], [])
            if "BackwardFilter" in target:  # (input, grad of output) -> grad of kernel
                return _conv_flops(second, out, rest)
            if "BackwardInput" in target:  # (grad of output, kernel) -> grad of input
                return _conv_flops(first, second, rest)
            return _conv_flops(out, second, rest)
        return 0.0
    if op == "dot":
        contracting = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", rest)
        lhs = shapes.get(operands[0], [])
        k = math.prod(lhs[i] for i in _dims(contracting.group(1))) if contracting and lhs else 1
        return 2.0 * math.prod(out) * k
    if op == "convolution":
        return _conv_flops(out, shapes.get(operands[1], []), rest)
    return 0.0


def loop_aware_flops(hlo: str) -> float:
    """Matmul + convolution FLOPs of one execution of the optimised HLO module ``hlo``
    (``compiled.as_text()``), loop bodies times their trip counts."""
    computations, entry = _parse(hlo)
    memo: dict[str, float] = {}

    def cost(name: str) -> float:
        if name in memo:
            return memo[name]
        memo[name] = 0.0  # guards against recursion through malformed text
        shapes: dict[str, list[int]] = {}
        total = 0.0
        for line in computations.get(name, []):
            match = _INSTRUCTION.match(line)
            if not match:
                continue
            result, kind, op, rest = match.groups()
            array = _ARRAY.match(kind)
            shapes[result] = _dims(array.group(1)) if array else []
            total += _op_flops(op, kind, shapes[result], rest, shapes)
            if op == "while":
                body = re.search(r"body=%([\w.\-]+)", rest)
                trips = _TRIP_COUNT.search(rest)
                total += cost(body.group(1)) * (int(trips.group(1)) if trips else 1)
            else:
                for called in re.findall(r"(?:calls|to_apply)=%([\w.\-]+)", rest):
                    total += cost(called)
        memo[name] = total
        return total

    return cost(entry)


def matmul_peak(size: int = 2048, repeats: int = 5, dtype: str = "f32", round_s: float = 0.05) -> float:
    """GFLOP/s of a jitted ``size x size`` matmul on the default device: the peak other figures are held against.

    ``dtype="bf16"``: bf16 operands with f32 accumulation (``preferred_element_type``). The median of ``repeats``
    rounds, each as many products dispatched back to back as fill ``round_s`` seconds: one or a few on a CPU; on a
    GPU, where one 2048^3 product takes ~0.3 ms, timing single calls measured launch latency and clock ramp-up
    (40-96 TFLOP/s between three processes on one H200, docs/RESULTS.md)."""
    import math
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np

    a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
    if dtype == "bf16":
        a = a.astype(jnp.bfloat16)
    compiled = jax.jit(lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32)).lower(a, a).compile()
    jax.block_until_ready(compiled(a, a))
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(a, a))
    calls = max(1, math.ceil(round_s / (time.perf_counter() - t0)))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):  # one device runs them in order: the last one done means all are
            out = compiled(a, a)
        jax.block_until_ready(out)
        times.append((time.perf_counter() - t0) / calls)
    return 2 * size**3 / float(np.median(times)) / 1e9
