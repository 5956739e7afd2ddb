"""Region inference: exact regions of common loop nests, a property test that the region
holds every index read, the loop nest that visits a region, and the table-lookup error."""

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.index import symbol, table
from quiltc.schedule.nest import buffer_named, ranges_on_path, resolve_loop
from quiltc.schedule.primitives.split import split
from quiltc.schedule.region import fresh_symbols, infer_region, region_nest

from support import programs
from support.tiers import examples

i, j, k, N, M, K = (symbol(name) for name in ("i", "j", "k", "N", "M", "K"))


def region_at(kernel, buffer_name, loop, kind="read"):
    """The region of `buffer_name` accessed by one iteration of `loop`."""
    path, node = resolve_loop(kernel, loop, "test")
    buffer = buffer_named(kernel, buffer_name, "test")
    return infer_region(node.body, buffer, ranges_on_path(kernel, path), kind, "test")


def matmul_kernel(rows, inner, columns):
    """The naive kernel of `programs.matmul`, sizes passed as they are."""
    return qc.lower(programs.matmul(rows, inner, columns))


def stencil_kernel(length, offsets):
    """C[j] = sum of A[j + o] over `offsets`, A padded by max(offsets) elements."""
    A = qc.placeholder((length + max(offsets),), "float32", "A")

    def body(j):
        value = A[j + offsets[0]]
        for offset in offsets[1:]:
            value = value + A[j + offset]
        return value

    return qc.lower(qc.compute((length,), body, "C"))


def test_region_of_a_row_of_a_matmul_spans_the_symbolic_reduction():
    kernel = matmul_kernel(qc.var("N", 1, 16), qc.var("K", 1, 16), qc.var("M", 1, 16))
    region = region_at(kernel, "A", "i")
    assert region.starts == (i, 0) and region.extents == (1, K)
    assert region.symbolic_dimensions() == [1]
    assert not any(interval.needs_guard for interval in region.intervals)
    region = region_at(kernel, "B", "j")
    assert region.starts == (0, j) and region.extents == (K, 1)
    assert str(region) == "B[0:0+K, j:j+1]"


@pytest.mark.parametrize("inner, needs_guard", [(6, True), (8, False)])
def test_region_of_a_split_reduction_is_one_block_guarded_where_it_may_overrun(inner,
                                                                               needs_guard):
    kernel, _ = split(matmul_kernel(5, inner, 7), "k", 4)
    region = region_at(kernel, "A", "k_o")
    assert region.starts == (i, 4 * symbol("k_o")) and region.extents == (1, 4)
    assert region.intervals[1].is_constant
    assert [interval.needs_guard for interval in region.intervals] == [False, needs_guard]


def test_region_extent_is_clamped_to_a_smaller_buffer():
    kernel, _ = split(matmul_kernel(5, 3, 7), "j", 16)
    region = region_at(kernel, "C", "j_o", kind="write")
    assert region.extents == (1, 7)
    assert not region.intervals[1].needs_guard


def test_region_extent_stays_constant_against_a_symbolic_buffer_and_gets_a_guard():
    kernel, _ = split(matmul_kernel(5, 3, qc.var("M", 1, 16)), "j", 8)
    region = region_at(kernel, "C", "j_o", kind="write")
    assert region.extents == (1, 8) and region.intervals[1].needs_guard


def test_region_extent_clamps_to_a_symbolic_buffer_that_is_never_larger():
    kernel, _ = split(matmul_kernel(5, 3, qc.var("M", 1, 16)), "j", 32)
    region = region_at(kernel, "C", "j_o", kind="write")
    assert region.extents == (1, 32) and region.intervals[1].needs_guard
    kernel = matmul_kernel(5, 3, qc.var("M", 1, 16))
    region = region_at(kernel, "C", "i", kind="write")
    assert region.extents == (1, M) and not region.intervals[1].needs_guard


def test_region_of_a_stencil_covers_every_offset():
    kernel = stencil_kernel(qc.var("N", 1, 16), [0, 1, 3])
    region = region_at(kernel, "A", "j")
    assert region.starts == (j,) and region.extents == (4,)
    assert not region.intervals[0].needs_guard


def test_region_of_reads_and_writes_differ_and_a_loop_without_access_has_none():
    kernel = matmul_kernel(5, 3, 7)
    assert region_at(kernel, "C", "i", kind="read") is None
    written = region_at(kernel, "C", "i", kind="write")
    assert written.starts == (i, 0) and written.extents == (1, 7)


def test_a_table_lookup_inside_the_loop_cannot_be_bounded():
    A = ir.Buffer("A", qc.float32, (8,))
    C = ir.Buffer("C", qc.float32, (4,))
    row = table("row")
    loop = ir.For(j, 4, ir.Store(C, (j,), ir.Load(A, (row(j),))))
    with pytest.raises(qc.ScheduleError, match=r"test: .*dimension 0 of A is indexed through j in "
                       r"a way interval arithmetic cannot bound \(a table lookup\)"):
        infer_region(loop, A, {}, "read", "test")


@settings(max_examples=examples(40))
@given(length=st.integers(1, 13), symbolic=st.booleans(),
       offsets=st.lists(st.integers(0, 4), min_size=1, max_size=3, unique=True),
       factor=st.sampled_from([1, 2, 3, 4, 7]))
def test_region_holds_every_index_read_and_its_guard_is_needed_only_when_it_overruns(
        length, symbolic, offsets, factor):
    size = qc.var("N", 1, 16) if symbolic else length
    kernel, (outer, _) = split(stencil_kernel(size, offsets), "j", factor)
    region = region_at(kernel, "A", outer)
    (interval,) = region.intervals
    assert interval.extent == factor + max(offsets) - min(offsets) or not interval.is_constant \
        or interval.extent == length + max(offsets)
    values = {N: length}
    for block in range(-(-length // factor)):
        at = {**values, outer: block}
        start = int(interval.start.subs(at))
        end = start + int(sympy.sympify(interval.extent).subs(at))
        limit = int(sympy.sympify(interval.limit).subs(values))
        # Reads the split's guard leaves out never run (they would pass the buffer's end).
        read = [block * factor + inner + offset for inner in range(factor)
                for offset in offsets if block * factor + inner < length]
        assert all(start <= index < end for index in read)
        assert start == min(read)
        if not interval.needs_guard:
            assert end <= limit


def test_region_nest_drops_unit_dimensions_and_guards_the_leaves():
    kernel, _ = split(matmul_kernel(5, 6, 7), "k", 4)
    region = region_at(kernel, "A", "k_o")
    cache = ir.Buffer("A_local", qc.float32, region.extents)
    row, column = fresh_symbols(kernel, ["A_local_0", "A_local_0"])
    assert (row.name, column.name) == ("A_local_0", "A_local_0_1")
    nest = region_nest(region, [row, column], lambda offsets: ir.Store(
        cache, tuple(offsets), ir.Load(region.buffer, tuple(
            start + offset for start, offset in zip(region.starts, offsets)))))
    assert repr(nest) == (
        "for A_local_0_1 in range(4):\n"
        "    if A_local_0_1 + 4*k_o < 6:\n"
        "        A_local[0, A_local_0_1] = A[i, A_local_0_1 + 4*k_o]"
    )
