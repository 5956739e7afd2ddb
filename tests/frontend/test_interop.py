"""Arrays from any framework: a DLPack capsule or `__dlpack__` object from numpy itself,
an `__array__` object, torch tensors and JAX arrays reach the kernel in place (the
pointers it is called with are checked against the arrays' addresses); results come back
as numpy, or in the framework `like=` names; ragged batches cross as padded tensors plus
lengths."""

import numpy as np
import pytest

import quiltc as qc
from quiltc import QuiltError, ShapeError

from support.helpers import ArrayInterfaceOnly, DLPackOnly, require_cc


@pytest.fixture(scope="module")
def scale_add():
    """C = 2 A + B over (M, N) float32."""
    require_cc()
    M, N = qc.var("M", 1, 256), qc.var("N", 1, 256)
    A = qc.placeholder((M, N), "float32", "A")
    B = qc.placeholder((M, N), "float32", "B")
    C = qc.compute((M, N), lambda i, j: A[i, j] * np.float32(2) + B[i, j], "C")
    return qc.build(qc.Schedule(C, name="scale_add"))


def called_pointers(kernel, monkeypatch):
    """The addresses of the buffers each call of `kernel` hands to C, call by call."""
    ffi, real, calls = kernel._library.ffi, kernel._function, []

    def spy(*arguments):
        calls.append([int(ffi.cast("uintptr_t", argument)) for argument in arguments
                      if isinstance(argument, ffi.CData)])
        return real(*arguments)

    monkeypatch.setattr(kernel, "_function", spy)
    return calls


def test_a_dlpack_capsule_and_a_dlpack_object_from_numpy_are_read_in_place(scale_add,
                                                                             monkeypatch):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 5)).astype(np.float32)
    b = rng.standard_normal((3, 5)).astype(np.float32)
    calls = called_pointers(scale_add, monkeypatch)
    result = scale_add(A=a.__dlpack__(), B=DLPackOnly(b))
    np.testing.assert_allclose(result, np.float32(2) * a + b, rtol=1e-6)
    assert calls[0][:2] == [a.ctypes.data, b.ctypes.data]
    assert isinstance(result, np.ndarray)


def test_an_array_interface_object_is_converted(scale_add):
    a = np.ones((2, 2), np.float32)
    np.testing.assert_array_equal(scale_add(A=ArrayInterfaceOnly(a), B=a),
                                  np.full((2, 2), 3, np.float32))


def test_memory_on_a_gpu_is_refused_with_the_way_to_move_it(scale_add):
    class OnGpu(DLPackOnly):
        def __dlpack_device__(self):
            return (2, 0)

    with pytest.raises(ShapeError, match=r"argument 'A' lives on a CUDA GPU.*\.cpu\(\)"):
        scale_add(A=OnGpu(np.ones((2, 2), np.float32)), B=np.ones((2, 2), np.float32))


def test_an_unknown_framework_in_like_is_refused(scale_add):
    a = np.ones((2, 2), np.float32)
    with pytest.raises(QuiltError, match="like='tensorflow': choose one of numpy, torch, jax"):
        scale_add(A=a, B=a, like="tensorflow")


def test_torch_tensors_in_place_in_and_out(scale_add, monkeypatch):
    torch = pytest.importorskip("torch", reason="install it with: pip install torch")
    a = torch.randn(4, 6)
    b = torch.randn(4, 6)
    calls = called_pointers(scale_add, monkeypatch)
    result = scale_add(A=a, B=b, like="torch")
    assert isinstance(result, torch.Tensor)
    torch.testing.assert_close(result, 2 * a + b)
    assert calls[0][:2] == [a.data_ptr(), b.data_ptr()]
    assert calls[0][2] == result.data_ptr()
    written = torch.zeros(4, 6)
    scale_add(A=a, B=b, out={"C": written})
    assert calls[1][2] == written.data_ptr()
    torch.testing.assert_close(written, 2 * a + b)
    # A transposed view cannot be read in place: it is copied, and still right.
    torch.testing.assert_close(scale_add(A=a.T, B=b.T, like=a), 2 * a.T + b.T)
    with pytest.raises(ShapeError, match="requires grad"):
        scale_add(A=a.requires_grad_(), B=b)


def test_ragged_batches_cross_as_padded_torch_tensors_and_lengths():
    torch = pytest.importorskip("torch", reason="install it with: pip install torch")
    padded = torch.arange(24, dtype=torch.float32).reshape(3, 4, 2)
    ragged = qc.RaggedArray.from_padded(padded, torch.tensor([2, 0, 4]))
    assert ragged.lengths.tolist() == [2, 0, 4]
    for row, length, stored in zip(padded.numpy(), (2, 0, 4), ragged.to_list()):
        np.testing.assert_array_equal(stored, row[:length])
    back, mask = ragged.to_padded(mask=True, like="torch")
    assert isinstance(back, torch.Tensor) and back.dtype == torch.float32
    torch.testing.assert_close(back[mask], padded[mask])
    assert mask.sum().item() == 6 * 2


def test_jax_arrays_in_and_like_jax_out(scale_add):
    jnp = pytest.importorskip("jax.numpy", reason="install it with: pip install jax")
    a = jnp.arange(6, dtype=jnp.float32).reshape(2, 3)
    result = scale_add(A=a, B=a, like="jax")
    assert type(result).__module__.startswith("jax")
    np.testing.assert_array_equal(np.asarray(result), 3 * np.asarray(a))
