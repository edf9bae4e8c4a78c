"""``preset=auto|small|full`` on every entry point, resolved before Hydra composes the config.

Hydra picks a config-group file by name while composing, before any of our code runs, so ``auto``
cannot be a YAML file: the entry point rewrites its command line instead. ``auto`` (the default)
becomes ``full`` (the paper's configuration) when JAX sees an accelerator and ``small`` (minutes on a
laptop CPU) otherwise, and the choice is printed on the first line so nobody waits ten hours by
accident. Old names (``paper``, ``atari100k``) still work as aliases of ``full``.
"""

from __future__ import annotations

import os
import sys

AUTO = "auto"
ACCELERATED_BACKENDS = ("gpu", "cuda", "rocm", "tpu")


def available(preset_dir: str, aliases: dict[str, str]) -> list[str]:
    """Every name ``preset=`` accepts: ``auto``, the YAML files in ``preset_dir`` and the aliases."""
    files = sorted(f[:-5] for f in os.listdir(preset_dir) if f.endswith(".yaml"))
    return [AUTO, *files, *sorted(a for a in aliases if a not in files)]


def has_accelerator() -> bool:
    import jax

    return jax.default_backend() in ACCELERATED_BACKENDS


def resolve(value: str, preset_dir: str, aliases: dict[str, str], accelerated: bool) -> str:
    """One ``preset=`` value (a comma list in a multirun) -> the YAML file names Hydra should load."""
    valid = available(preset_dir, aliases)
    names = []
    for name in value.split(","):
        name = name.strip()
        if name not in valid:
            raise SystemExit(f"unknown preset {name!r}; valid: {valid} "
                             f"(auto: full with an accelerator, small on a CPU)")
        if name == AUTO:
            name = "full" if accelerated else "small"
        names.append(aliases.get(name, name))
    return ",".join(names)


def select(argv: list[str], preset_dir: str, aliases: dict[str, str] | None = None,
           accelerated: bool | None = None) -> tuple[list[str], str]:
    """``argv`` with its ``preset=`` override resolved (added when absent) and a line saying which.

    ``aliases`` maps accepted names to YAML file names (``{"full": "atari100k"}`` where the full
    preset's file has another name). ``accelerated`` defaults to what JAX sees.
    """
    aliases = dict(aliases or {})
    given = [i for i, a in enumerate(argv) if a.startswith("preset=")]
    value = argv[given[-1]].split("=", 1)[1] if given else AUTO
    needs_device = AUTO in [v.strip() for v in value.split(",")]
    if accelerated is None:
        accelerated = has_accelerator() if needs_device else False
    resolved = resolve(value, preset_dir, aliases, accelerated)
    # Hydra's argparse takes overrides as one run of positionals: keep the override among them.
    overrides = [i for i, a in enumerate(argv) if "=" in a and not a.startswith("-")]
    at = given[-1] if given else (overrides[0] if overrides else len(argv))
    argv = [a for i, a in enumerate(argv) if i not in given[:-1]]
    at -= sum(i < at for i in given[:-1])
    argv = argv[:at] + [f"preset={resolved}"] + argv[at + 1 if given else at:]
    if needs_device:
        why = "an accelerator is present" if accelerated else "no accelerator: the CPU-sized config"
        line = f"preset={resolved} (auto: {why}; override with preset=small|full)"
    else:
        line = f"preset={resolved}"
    return argv, line


def apply(preset_dir: str, aliases: dict[str, str] | None = None) -> None:
    """Resolve ``preset=`` in ``sys.argv`` in place and print the choice; call before ``@hydra.main``."""
    if any(a in ("--help", "-h", "--hydra-help") for a in sys.argv[1:]):
        return
    sys.argv[1:], line = select(sys.argv[1:], preset_dir, aliases)
    print(line, flush=True)
