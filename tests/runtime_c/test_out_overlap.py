"""An `out=` array that shares memory with an input still gives the right answer (the
input is read from a copy), and two outputs in one memory are refused."""

import numpy as np
import pytest

import quiltc as qc
from quiltc.recipes import matmul_program, schedule_matmul

from support.helpers import require_cc


def test_a_matmul_written_over_its_own_input_is_right():
    require_cc()
    *_, c = matmul_program(6, 6, 6)
    fn = qc.build(schedule_matmul(c, vector=16))
    a = np.arange(36, dtype=np.float32).reshape(6, 6) / 10
    b = np.eye(6, dtype=np.float32)[::-1].copy()
    expected = a @ b
    result = fn(A=a, B=b, out={"C": a})
    assert result is a
    np.testing.assert_allclose(a, expected, rtol=1e-6)


def test_two_outputs_in_one_memory_are_refused():
    require_cc()
    x = qc.placeholder((4,), "float32", "X")
    doubled = qc.compute((4,), lambda i: x[i] * np.float32(2.0), "doubled")
    tripled = qc.compute((4,), lambda i: x[i] * np.float32(3.0), "tripled")
    fn = qc.build(qc.Schedule([doubled, tripled]))
    shared = np.zeros(4, np.float32)
    with pytest.raises(qc.ShapeError, match=r"out\['doubled'\] and out\['tripled'\] share "
                       r"memory; pass separate arrays"):
        fn(X=np.ones(4, np.float32), out={"doubled": shared, "tripled": shared})
