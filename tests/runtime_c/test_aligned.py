"""Arrays quiltc allocates for a call start on a cache line (outputs once they are large
enough that split lines would cost), and hold the right values."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.runtime_c.aligned import CACHE_LINE, aligned_empty, output_empty

from support.helpers import require_cc


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(0, 70), min_size=0, max_size=3),
       dtype=st.sampled_from(["float32", "float64", "int8", "int64", "bool"]))
def test_new_arrays_have_the_shape_dtype_and_alignment(shape, dtype):
    for make in (aligned_empty, output_empty):
        array = make(tuple(shape), dtype)
        assert array.shape == tuple(shape) and array.dtype == np.dtype(dtype)
        assert array.flags.c_contiguous and array.flags.writeable
        if array.nbytes and (make is aligned_empty or array.nbytes >= 16 << 10):
            assert array.ctypes.data % CACHE_LINE == 0
        array[...] = 1
        assert np.all(array == 1)


def test_a_kernel_and_a_graph_return_aligned_outputs():
    require_cc()
    rows = 64
    x = qc.placeholder((rows, 128), "float32", "X")
    doubled = qc.compute((rows, 128), lambda i, j: x[i, j] * np.float32(2.0), "doubled")
    kernel = qc.build(qc.Schedule(doubled))
    graph = qc.graph.Graph()
    value = graph.input("x", (rows, 128))
    graph.output(graph.softmax(value, axis=-1))
    module = qc.graph.compile(graph, cache=False)
    data = np.random.default_rng(0).standard_normal((rows, 128)).astype(np.float32)
    for _ in range(3):
        result = kernel(X=data)
        probabilities = module(x=data)
        assert result.ctypes.data % CACHE_LINE == 0
        assert probabilities.ctypes.data % CACHE_LINE == 0
        np.testing.assert_array_equal(result, data * np.float32(2.0))
        shifted = np.exp(data - data.max(axis=1, keepdims=True))
        np.testing.assert_allclose(probabilities, shifted / shifted.sum(axis=1, keepdims=True),
                                   rtol=1e-5, atol=1e-7)

