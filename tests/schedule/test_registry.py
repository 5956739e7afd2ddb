"""The primitive registry: every Schedule method comes from its table with the signature,
docstring and return shape the README promises, and qc.Schedule opens tensors or kernels."""

import inspect

import pytest
import sympy

import quiltc as qc
from quiltc.schedule import schedule as base
from quiltc.schedule.registry import KINDS, PRIMITIVES

from support import programs

# The methods' signatures, as the README and the tests call them.
SIGNATURES = {
    "split": "(self, loop, factor, guard=None)",
    "fuse": "(self, outer, inner)",
    "reorder": "(self, *loops)",
    "tile": "(self, x, y, x_factor, y_factor)",
    "unroll": "(self, loop)",
    "vectorize": "(self, loop)",
    "parallel": "(self, loop)",
    "stream": "(self, loop)",
    "bind": "(self, loop, axis)",
    "compute_at": "(self, tensor, loop)",
    "compute_inline": "(self, tensor)",
    "cache_read": "(self, tensor, scope, at)",
    "cache_write": "(self, tensor, scope, at)",
    "decompose": "(self, tensor, loop)",
    "distribute": "(self, loop)",
    "online_softmax": "(self, tensor, loop)",
    "peel": "(self, loop)",
    "pad_loop": "(self, loop, multiple)",
    "pad_bulk": "(self, loop, multiple)",
    "pad_local": "(self, tensor, dim=None)",
    "pad_storage": "(self, tensor, dim, multiple)",
    "fold_storage": "(self, tensor, loop)",
    "share_storage": "(self, tensor, output)",
    "store_row_pointers": "(self, tensor, table)",
    "remap": "(self, loop, order='length-desc')",
    "hfuse": "(self, nest_a, nest_b)",
    "split_op": "(self, loop, factor)",
    "cross_thread_reduce": "(self, tensor, loop, threads)",
    "insert_barriers": "(self)",
}
# Methods of the schedule itself rather than primitives.
OWN_METHODS = {"apply", "copy", "loops"}


def test_every_primitive_method_comes_from_the_table():
    methods = {name for name, value in vars(base.Schedule).items()
               if callable(value) and not name.startswith("_")}
    assert methods - OWN_METHODS == set(PRIMITIVES) == set(SIGNATURES)
    for name, entry in PRIMITIVES.items():
        method = getattr(qc.Schedule, name)
        assert str(inspect.signature(method)) == SIGNATURES[name]
        assert method.__doc__.startswith(entry.summary)
        assert inspect.getdoc(entry.function) in method.__doc__
        assert method.__qualname__ == f"Schedule.{name}"


def test_each_entry_matches_its_function():
    for entry in PRIMITIVES.values():
        parameters = list(inspect.signature(entry.function).parameters.values())[1:]
        assert len(parameters) == len(entry.params), entry.name
        for param, parameter in zip(entry.params, parameters):
            assert param.kind in KINDS
            assert (param.kind == "loops") == (parameter.kind is parameter.VAR_POSITIONAL)
        assert set(entry.decisions) <= {p.name for p in entry.params}
        assert all(p.choices for p in entry.params if p.kind == "choice")


def test_the_decisions_a_tuner_may_vary():
    decisions = {name: entry.decisions for name, entry in PRIMITIVES.items() if entry.decisions}
    assert decisions == {
        "split": ("factor",), "tile": ("x_factor", "y_factor"), "pad_loop": ("multiple",),
        "pad_bulk": ("multiple",), "pad_storage": ("multiple",), "remap": ("order",),
        "split_op": ("factor",),
        "cross_thread_reduce": ("threads",),
    }
    assert "factor: an integer; a decision a tuner may vary" in qc.Schedule.split.__doc__
    assert "axis: one of 'blockIdx.x'" in qc.Schedule.bind.__doc__


def test_methods_return_what_they_did_before():
    sch = qc.Schedule(programs.matmul(6, 5, 7))
    i, j, k = sch.loops("C")
    outer, inner = sch.split(i, 2)
    assert isinstance(outer, sympy.Symbol) and (outer.name, inner.name) == ("i_o", "i_i")
    assert sch.reorder(outer, j, inner) is None
    fused = sch.fuse(outer, j)
    assert isinstance(fused, sympy.Symbol) and fused.name == "i_o_j"
    assert sch.cache_write("C", "local", at=fused) == "C_local"
    assert sch.parallel(fused) is None
    elementwise = qc.Schedule(programs.scale(4, 7))
    parts = elementwise.split_op("j", 2)
    assert [part.name for part in parts] == ["j_o", "j_i", "j_r"]


def test_a_wrong_call_fails_like_a_python_function():
    sch = qc.Schedule(programs.matmul(6, 5, 7))
    with pytest.raises(TypeError, match="missing a required argument: 'factor'"):
        sch.split("i")
    with pytest.raises(TypeError, match="unexpected keyword argument 'width'"):
        sch.split("i", 4, width=4)
    assert len(sch.trace) == 0


def test_one_schedule_class_opens_tensors_and_kernels():
    program = programs.matmul(6, 5, 7)
    of_tensor = qc.Schedule(program)
    assert of_tensor.outputs == [program] and of_tensor.kernel.name == "kernel"
    of_list = qc.Schedule([program], name="mm")
    assert of_list.outputs == [program] and of_list.kernel.name == "mm"
    of_kernel = qc.Schedule(of_tensor.kernel)
    assert of_kernel.kernel == of_tensor.kernel and of_kernel.outputs == ["C"]
    renamed = qc.Schedule(programs.ragged_kernel(), name="triangle")
    assert renamed.kernel.name == "triangle"
    assert isinstance(of_kernel, base.Schedule) and type(of_kernel) is qc.Schedule
    assert qc.Schedule.__mro__[1] is base.Schedule
