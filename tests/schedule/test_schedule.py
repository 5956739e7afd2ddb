"""Schedule itself: a step whose result the verifier cannot follow is refused."""

import dataclasses

import pytest

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.walk import rewrite

from support import programs


def _reads_one_further(kernel):
    """A stand-in primitive that shifts every load of A one element on: out of bounds."""

    def shift(node):
        if isinstance(node, ir.Load) and node.buffer.name == "A":
            return dataclasses.replace(node, indices=(node.indices[0], node.indices[1] + 1))
        return node

    return dataclasses.replace(kernel, body=rewrite(kernel.body, shift)), []


def test_a_step_the_verifier_cannot_follow_is_refused_and_leaves_the_schedule():
    sch = qc.Schedule(programs.matmul(4, 3, 5, False))
    before = sch.kernel
    with pytest.raises(qc.ScheduleError, match=r"shift: asked to apply shift\(\), but the "
                                                r"verifier cannot prove the result stays in "
                                                r"bounds \(index k \+ 1 of A .*may leave"):
        sch._apply("shift", _reads_one_further, (), {})
    assert sch.kernel == before
    assert "shift" not in str(sch.trace)
