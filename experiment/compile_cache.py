"""A persistent compile cache for the entry points: a program compiled once is loaded, not compiled again, by the
next run that builds it (another seed of a sweep, a resume, an evaluation, the same command tomorrow).

JAX's own cache (``jax_compilation_cache_dir``) does the work; this module only picks its folder and bounds it.
JAX keys an entry by the program, the jax version, the XLA flags and the devices; on a CPU the platform version in
that key reads ``cpu``, and whether the instruction set is in it at all could not be read from the key's parts. So
the folder is named by the CPU's feature flags too: a home folder shared by machines of different CPUs (a cluster's
NFS home) cannot hand one machine code generated for another's (AVX-512 code to an AVX2 CPU).
A loaded program is the executable the compile would have produced: results are unchanged to the bit.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import sys

MAX_BYTES = 2 << 30
"""Least recently used entries are evicted past this size (a small run's programs take a few MB)."""


def machine_key() -> str:
    """A short digest of the CPU's architecture and feature flags (``/proc/cpuinfo`` where there is one)."""
    features = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            features = next((line for line in f if line.split(":")[0].strip() in ("flags", "Features")), features)
    except OSError:
        pass
    return hashlib.sha256(f"{platform.machine()} {features}".encode()).hexdigest()[:12]


def default_dir() -> str:
    """``$XDG_CACHE_HOME/ssmrl/jax-<machine_key>`` (``~/.cache`` when ``XDG_CACHE_HOME`` is unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "ssmrl", f"jax-{machine_key()}")


def enable() -> str | None:
    """Turn JAX's persistent compile cache on at :func:`default_dir`, bounded to ``MAX_BYTES``, before anything
    compiles; the folder in use, or None when it is off. JAX's own settings win: ``JAX_COMPILATION_CACHE_DIR``
    names another folder, ``JAX_ENABLE_COMPILATION_CACHE=false`` turns the cache off. Without the ``filelock``
    package or a folder it can write, the cache stays off with one note on stderr (JAX would warn once per
    program)."""
    import jax

    if not jax.config.jax_enable_compilation_cache:
        return None
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    if importlib.util.find_spec("filelock") is None:  # an install from before it was a dependency
        print("note: no compile cache (the filelock package is missing; pip install filelock)", file=sys.stderr)
        return None
    folder = default_dir()
    try:
        os.makedirs(folder, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(f"{folder} is not writable")
    except OSError as error:
        print(f"note: no compile cache ({error}); JAX_COMPILATION_CACHE_DIR=<folder> names a writable one",
              file=sys.stderr)
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)  # eviction takes a file lock: no torn entries
    return folder
