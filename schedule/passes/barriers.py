"""insert_barriers: a barrier before every statement that would race on shared memory.

    for t in range(16):  # threadIdx.x          for t in range(16):  # threadIdx.x
        A_shared[t] = A[i, t]                        A_shared[t] = A[i, t]
    for t_1 in range(16):  # threadIdx.x   ->    barrier()
        C[i, t_1] = A_shared[15 - t_1]           for t_1 in range(16):  # threadIdx.x
                                                     C[i, t_1] = A_shared[15 - t_1]

The walk is the verifier's own race check (ir.verify_gpu.SharedRaces), so the pass adds
exactly the barriers whose absence the build would refuse, and no others: where the check
finds a statement reading a shared buffer other threads wrote (or overwriting one they
read) since the last barrier, the pass puts a barrier before that statement. Barriers
for global buffers are not its business: the verifier cannot see those races either, so
the primitives that write a global result for other threads to read (cross_thread_reduce)
place their own.
"""

import dataclasses

from ...ir import nodes as ir
from ...ir.verify_gpu import NO_ACCESSES, SharedRaces


class _BarrierBefore(SharedRaces):
    """The race check, repairing each race it meets instead of refusing it."""

    def race(self, stmt, accesses, stale, overwritten):
        return ir.seq(ir.Barrier(), stmt), accesses


def insert_barriers(kernel):
    """`kernel` with a barrier before every statement that reads a shared buffer another
    statement wrote, or writes one another read, since the last barrier."""
    body, _ = _BarrierBefore(kernel).walk(kernel.body, NO_ACCESSES)
    return dataclasses.replace(kernel, body=body)
