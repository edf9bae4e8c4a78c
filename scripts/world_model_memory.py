"""The S4WM memory benchmarks (Deng et al. 2023) for every world-model backbone, with seeds and bootstrap CIs.

    python scripts/world_model_memory.py                          # CPU sizes: the table in docs/RESULTS.md
    python scripts/world_model_memory.py --preset paper           # the paper's widths and key counts (GPU)
    python scripts/world_model_memory.py --benchmarks distracting --sizes 8 16 --backbones s4wm_s5 rssm

Each (benchmark, size, backbone) trains ``--seeds`` world models, one per seed, on random-policy episodes
(`agents/world_model/memory_bench.py`) and appends one line per seed to ``OUT/results.jsonl``; a rerun
skips what is there, so an interrupted sweep continues where it stopped. ``OUT/table.md`` is rewritten
after every configuration: the metric's mean over seeds with a 95% stratified-bootstrap interval. Frame
generation (Multi Doors Keys, Four Rooms) gets a reference row, ``hold_last_frame``: the same held-out episodes
with the last observed frame repeated, untrained; and a plot, ``OUT/<benchmark>_<size>.png``, of the error per
frame over the episode for every backbone.
Sizes: Distracting Memory's hallway ``width``, Multi Doors Keys' ``num_keys``, Four Rooms' episode ``length``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from ssmrl.agents.world_model.memory_bench import (
    BACKBONES,
    BENCHMARKS,
    HEADLINE,
    HOLD,
    PRESETS,
    SIZE_OPTION,
    hold_last_frame,
    preset_env_options,
    run,
    table,
)
from ssmrl.experiment.plots import error_over_horizon


def read_results(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        try:
            return [json.loads(line) for line in f if line.strip()]
        except json.JSONDecodeError as error:
            raise SystemExit(f"{path}: not a results file ({error}); move it away or choose another --out")


def plot_errors(results: list[dict], benchmark: str, options: dict, out: str) -> None:
    """``OUT/<benchmark>_<size>.png``: the squared error per frame over the episode of every backbone there."""
    rows = [r for r in results if r["benchmark"] == benchmark and r["env_options"] == options]
    errors: dict[str, list] = {}
    for r in rows:
        errors.setdefault(r["backbone"], []).append(r["error_per_step"])
    size = options[SIZE_OPTION[benchmark]]
    error_over_horizon({name: np.array(runs) for name, runs in errors.items()}, rows[0]["context"],
                       os.path.join(out, f"{benchmark}_{size}.png"),
                       f"{benchmark}, {SIZE_OPTION[benchmark]} {size}: imagined after {rows[0]['context']} frames")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--benchmarks", nargs="+", choices=sorted(BENCHMARKS), default=sorted(BENCHMARKS))
    parser.add_argument("--backbones", nargs="+", choices=sorted(BACKBONES), default=sorted(BACKBONES))
    parser.add_argument("--sizes", nargs="+", type=int, help="sizes of every chosen benchmark (default: the preset's)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--updates", type=int, help="world-model updates (default: the preset's)")
    parser.add_argument("--train-episodes", type=int, help="random-policy training episodes per seed (default: preset)")
    parser.add_argument("--test-episodes", type=int, help="held-out episodes per seed (default: the preset's)")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="also measure every N updates into the results' `curve` (default 0: only at the end)")
    parser.add_argument("--out", default="runs/world_model_memory")
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    if args.seeds < 1 or (args.updates is not None and args.updates < 20) or args.eval_every < 0:
        parser.error(f"--seeds must be >= 1, --updates >= 20 and --eval-every >= 0, got {args.seeds}, "
                     f"{args.updates} and {args.eval_every}")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "results.jsonl")
    results = read_results(path)
    done = {(r["benchmark"], json.dumps(r["env_options"], sort_keys=True), r["backbone"]) for r in results}
    for benchmark in args.benchmarks:
        for size in args.sizes or preset["sizes"][benchmark]:
            options = preset_env_options(args.preset, benchmark, size)
            # frame generation is read against repeating the last observed frame: that row comes first, untrained
            generates = BENCHMARKS[benchmark]["metric"] == "generation_error"
            for backbone in [HOLD] * generates + args.backbones:
                if (benchmark, json.dumps(options, sort_keys=True), backbone) in done:
                    continue
                t0 = time.time()
                test_episodes = args.test_episodes or preset["test_episodes"]
                if backbone == HOLD:
                    rows = hold_last_frame(benchmark, options, args.seeds, test_episodes)
                else:
                    rows = run(benchmark, backbone, options, args.seeds,
                               args.updates or preset["updates"][benchmark],
                               args.train_episodes or preset["train_episodes"], test_episodes,
                               eval_every=args.eval_every)
                with open(path, "a") as f:
                    for row in rows:
                        f.write(json.dumps({**row, "seconds": time.time() - t0}) + "\n")
                results += rows
                with open(os.path.join(args.out, "table.md"), "w") as f:
                    f.write(table(results))
                if generates:
                    plot_errors(results, benchmark, options, args.out)
                headline = {m: [round(r[m], 3) for r in rows] for m in HEADLINE[benchmark]}
                print(f"{benchmark} {SIZE_OPTION[benchmark]}={size} {backbone}: {headline} "
                      f"({time.time() - t0:.0f} s)", flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
