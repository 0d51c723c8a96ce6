"""Sharding episode batches over local devices.

Episodes are independent, so a batch splits over devices along its leading `[B]` axis with no
communication: each device runs the same chunk program on its `[B / D]` shard (`jax.shard_map`
over a 1-D mesh named `episodes`), including the batch-level "is every episode still active"
test, which stays local to a shard. A sharded batch gives exactly the results of its shards run
alone (in float32, as for any change of batch size, the last bits can differ from one device
running the whole batch).

On a CPU the host is one device unless asked otherwise; XLA's own intra-op threads leave most of
a multi-core CPU idle on the episode program (many small kernels), while one device per core,
each running its shard concurrently, uses them. :func:`configure_cpu_devices` asks for that
before JAX starts its backend (entry points call it; library code never does).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, PartitionSpec

AXIS = "episodes"
_XLA_COUNT_FLAG = "--xla_force_host_platform_device_count"
_EIGEN_FLAG = "--xla_cpu_multi_thread_eigen"


def configure_cpu_devices(n: int | None = None) -> int | None:
    """Ask for `n` CPU devices (default: one per CPU core) before the JAX backend starts.

    With more than one device XLA's intra-op threading of the CPU kernels is switched off
    (`--xla_cpu_multi_thread_eigen=false` in `XLA_FLAGS`): the devices already keep the cores
    busy, and the two would compete for them. A no-op (returning None) when the process already
    fixed the count (`XLA_FLAGS` holds `--xla_force_host_platform_device_count`, or
    `jax_num_cpu_devices` is set) or when the backend is already initialised; otherwise returns
    the count requested. Affects only the CPU backend (GPU devices are what the machine has).
    """
    if _XLA_COUNT_FLAG in os.environ.get("XLA_FLAGS", ""):
        return None
    if int(jax.config.jax_num_cpu_devices) > 0:
        return None
    want = int(n) if n is not None else max(os.cpu_count() or 1, 1)
    if want < 1:
        raise ValueError(f"cpu devices: {want} (allowed: integers ≥ 1)")
    try:
        jax.config.update("jax_num_cpu_devices", want)
    except RuntimeError:  # backend already up: the count is fixed for this process
        return None
    flags = os.environ.get("XLA_FLAGS", "")
    if want > 1 and _EIGEN_FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_EIGEN_FLAG}=false".strip()
    return want


def episode_mesh(devices: int | None, batch: int) -> Mesh | None:
    """The 1-D mesh a batch of `batch` episodes is sharded over, or None for no sharding.

    Args:
      devices: how many local devices of the default backend to use (None = all of them; 1 = no
        sharding). More than there are is an error.
      batch: B; a batch smaller than the device count is not sharded.
    """
    local = jax.local_devices()
    d = len(local) if devices is None else int(devices)
    if not 1 <= d <= len(local):
        raise ValueError(f"devices={devices} (allowed: 1 … {len(local)} local devices, or None)")
    if d == 1 or batch < d:
        return None
    return Mesh(np.asarray(local[:d]), (AXIS,))


def over_mesh(
    fn: Callable[..., Any], mesh: Mesh | None, batched: tuple[bool, ...] = (True,)
) -> Callable[..., Any]:
    """`fn(*args)` run per shard: argument i is split along its leading `[B]` axis over the
    mesh when `batched[i]` (missing entries: False = replicated), and so are the outputs (B must
    be a multiple of the mesh size: :func:`pad_rows`). `fn` itself when `mesh` is None."""
    if mesh is None:
        return fn
    b, rep = PartitionSpec(AXIS), PartitionSpec()

    def sharded(*args: Any) -> Any:
        flags = tuple(batched) + (False,) * (len(args) - len(batched))
        specs = tuple(b if f else rep for f in flags)
        return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=b, check_vma=False)(*args)

    return sharded


def padded_size(batch: int, mesh: Mesh | None) -> int:
    """B rounded up to a multiple of the mesh size (B itself without a mesh)."""
    if mesh is None:
        return batch
    d = mesh.size
    return -(-batch // d) * d


def pad_rows(tree: Any, axis: int | None, size: int) -> Any:
    """Pad the leading axis of every leaf to `size` by repeating its last row (`axis` None:
    the tree is unbatched and returned as is). The padded episodes are run and dropped."""
    if axis is None:
        return tree

    def pad(x: Any) -> Any:
        x = np.asarray(x) if not isinstance(x, jax.Array) else x
        extra = size - x.shape[0]
        if extra <= 0:
            return x
        xp = jax.numpy if isinstance(x, jax.Array) else np
        return xp.concatenate([x, xp.repeat(x[-1:], extra, axis=0)], axis=0)

    return jax.tree.map(pad, tree)
