"""Data parallelism: one per-device step function, two ways to run it.

A step function is written for one device's share of the episodes and uses
named-axis collectives over 'data'. `Runner` runs it either through
`jax.jit(jax.shard_map(...))` over a ('data',) mesh (the default; JAX's own
pmap now wraps exactly this) or through `jax.pmap`, with the same function.
Parameters are replicated; episodes are split along their leading axis.
"""
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = 'data'
KINDS = ('shard_map', 'pmap')


class Runner:
  """Places states and batches on devices and runs per-device functions.

  Args:
    kind: 'shard_map' or 'pmap' (`config.parallel`).
    devices: the devices to use; all of them by default.
  """

  def __init__(self, kind: str, devices=None):
    if kind not in KINDS:
      raise ValueError(f'config.parallel={kind!r} is not one of {KINDS}.')
    self.kind = kind
    self.devices = list(devices if devices is not None else jax.devices())
    self.mesh = Mesh(np.asarray(self.devices), (AXIS,))
    self.num_devices = len(self.devices)
    self.num_local_devices = sum(
        d.process_index == jax.process_index() for d in self.devices)

  # State: replicated.
  def put_state(self, state):
    if self.kind == 'pmap':  # a leading device axis; pmap places it
      n = self.num_local_devices
      return jax.tree.map(
          lambda x: np.broadcast_to(np.asarray(x), (n,) + np.shape(x)), state)
    return self._replicate(state)

  def get_state(self, state):
    """A replicated state as global arrays without a device axis."""
    if self.kind == 'pmap':
      state = jax.tree.map(lambda x: x[0], state)
      if jax.process_count() > 1:
        # pmap's outputs live on this process's devices only; checkpoints
        # and the evaluation take arrays over every process's devices.
        return self._replicate(state)
    return state

  def _replicate(self, tree):
    """Arrays (the same in every process) -> replicated over the mesh."""
    sharding = NamedSharding(self.mesh, P())

    def put(x):
      # An array on this process's devices alone (a restored checkpoint)
      # cannot be moved to other processes' devices where the runtime has no
      # cross-host transfers (CPU): each process gives its identical copy
      # from host memory instead.
      if (isinstance(x, jax.Array) and x.is_fully_addressable and
          not sharding.is_fully_addressable):
        x = np.asarray(x)
      return jax.device_put(x, sharding)

    return jax.tree.map(put, tree)

  # Batches: split along the leading (episode) axis.
  def put_batch(self, batch):
    """This process's episodes [E_local, ...] -> device arrays."""
    if self.kind == 'pmap':
      def shard(x):
        x = np.asarray(x)
        return x.reshape((self.num_local_devices, -1) + x.shape[1:])
      return jax.tree.map(shard, batch)
    sharding = NamedSharding(self.mesh, P(AXIS))
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
        batch)

  def compile(self, fn: Callable, *, sharded_out: bool = False,
              donate_state: bool = False):
    """Compiles `fn(state, batch) -> out` written for one device.

    Args:
      fn: per-device function using collectives over AXIS.
      sharded_out: outputs are per-episode (split over devices) rather than
        replicated results of collectives.
      donate_state: the first argument's buffers may be reused.
    """
    donate = (0,) if donate_state else ()
    if self.kind == 'pmap':
      return jax.pmap(fn, axis_name=AXIS, devices=self.devices,
                      donate_argnums=donate)
    out_spec = P(AXIS) if sharded_out else P()
    # check_vma=False keeps pmap's semantics: gradients of replicated
    # parameters stay per-device until the step's explicit pmean (with
    # varying-axis checks on, JAX would also psum them implicitly).
    mapped = jax.shard_map(fn, mesh=self.mesh, in_specs=(P(), P(AXIS)),
                           out_specs=out_spec, check_vma=False)
    return jax.jit(mapped, donate_argnums=donate)

  def get_sharded(self, out):
    """Per-episode outputs -> numpy arrays [E_local, ...] of this process."""
    if self.kind == 'pmap':
      return jax.tree.map(
          lambda x: np.asarray(x).reshape((-1,) + x.shape[2:]), out)
    return jax.tree.map(
        lambda x: np.concatenate(
            [np.asarray(s.data) for s in sorted(
                x.addressable_shards, key=lambda s: s.index[0].start or 0)]),
        out)

  def get_replicated(self, out):
    """Replicated outputs -> host numpy values."""
    if self.kind == 'pmap':
      out = jax.tree.map(lambda x: x[0], out)
    return jax.tree.map(np.asarray, out)


def pmean_tree(tree):
  return jax.tree.map(functools.partial(jax.lax.pmean, axis_name=AXIS), tree)


def mean_over_episodes(tree):
  return jax.tree.map(lambda x: jnp.mean(x, axis=0), tree)
