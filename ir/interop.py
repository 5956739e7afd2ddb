"""Arrays from and to other frameworks. What comes in (`to_numpy`) may be a numpy array,
any object with `__dlpack__` (torch, JAX, CuPy), a DLPack capsule itself, or anything with
`__array__`; it becomes a numpy view of the same memory where the layout allows, so a
kernel reads a CPU tensor in place. What goes out is numpy unless the caller names a
framework with `like=` (`as_like`): torch tensors and JAX arrays then view the result's
memory, and a ragged torch result is a `torch.nested` jagged tensor.
"""

import numpy as np

from .errors import QuiltError, ShapeError

TORCH_MISSING = (
    "torch is not installed; pip install torch==2.13.0 (the bench extra: pip install -e '.[bench]')"
)
FRAMEWORKS = ("numpy", "torch", "jax")
# DLPack's device types (dlpack.h): the memory a numpy view can read.
_CPU_DEVICES = (1, 3)  # kDLCPU, kDLCUDAHost
_DEVICE_NAMES = {2: "a CUDA GPU", 4: "an OpenCL device", 7: "a Vulkan device",
                 8: "a Metal device", 10: "a ROCm GPU", 13: "a CUDA managed buffer"}


def import_torch():
    """The torch module, or a QuiltError that says how to install it."""
    try:
        import torch
    except ImportError:
        raise QuiltError(TORCH_MISSING) from None
    return torch


class _Capsule:
    """A bare DLPack capsule dressed as the object `np.from_dlpack` takes (read once)."""

    def __init__(self, capsule):
        self.capsule = capsule

    def __dlpack__(self, **_):
        return self.capsule

    def __dlpack_device__(self):
        return (1, 0)


def _device_type(value):
    try:
        return int(value.__dlpack_device__()[0])
    except (AttributeError, TypeError, ValueError, IndexError):
        return None


def to_numpy(name, value):
    """A numpy view of `value`: a numpy array, a `__dlpack__` object or DLPack capsule in
    CPU memory, or an `__array__` object (converted, a copy where it must be)."""
    if isinstance(value, np.ndarray):
        return value
    if type(value).__name__ == "PyCapsule":
        value = _Capsule(value)
    if hasattr(value, "__dlpack__"):
        device = _device_type(value)
        if device is not None and device not in _CPU_DEVICES:
            where = _DEVICE_NAMES.get(device, f"DLPack device type {device}")
            raise ShapeError(f"argument {name!r} lives on {where}; quiltc's host targets read "
                             "CPU memory: move it first (torch: .cpu(), JAX: "
                             "jax.device_get(...))")
        try:
            return np.from_dlpack(value)
        except (TypeError, RuntimeError, BufferError):
            pass  # a dtype DLPack cannot carry (bool in old numpy), or a tensor needing grad
    if hasattr(value, "__array__"):
        try:
            return np.asarray(value)
        except (RuntimeError, TypeError, ValueError) as error:
            raise ShapeError(f"argument {name!r} ({type(value).__name__}) cannot be read as "
                             f"an array: {error}") from None
    raise ShapeError(
        f"argument {name!r} is a {type(value).__name__}; pass a numpy array or an object "
        "with __dlpack__ or __array__"
    )


def framework_name(like):
    """"numpy", "torch" or "jax" for `like`: one of those names, or an array of one."""
    if like is None:
        return "numpy"
    if isinstance(like, str):
        if like not in FRAMEWORKS:
            raise QuiltError(f"like={like!r}: choose one of {', '.join(FRAMEWORKS)}, or pass an "
                             "array of the framework the results should come back in")
        return like
    root = type(like).__module__.split(".")[0]
    known = {"numpy": "numpy", "torch": "torch", "jax": "jax", "jaxlib": "jax"}
    if root not in known:
        raise QuiltError(f"like= got a {type(like).__name__} from {root}; results come back "
                         f"as {', '.join(FRAMEWORKS)}: pass one of those names")
    return known[root]


def as_like(value, like):
    """`value` (a numpy array, RaggedArray, or a dict of them) in the framework `like`
    names; the memory is shared, except a read-only array, which torch gets a copy of."""
    framework = framework_name(like)
    if framework == "numpy":
        return value
    if isinstance(value, dict):
        return {name: as_like(item, framework) for name, item in value.items()}
    if hasattr(value, "to_torch_nested"):
        if framework == "torch" and value.is_jagged:
            return value.to_torch_nested()
        return value
    if framework == "torch":
        torch = import_torch()
        return torch.from_numpy(value if value.flags.writeable else value.copy())
    import jax.numpy as jnp

    try:
        return jnp.from_dlpack(value)
    except (TypeError, RuntimeError, BufferError, ValueError):
        return jnp.asarray(value)  # memory JAX will not share (unaligned): a copy


def jagged_parts(nested):
    """(values, lengths) of a CPU `torch.nested` jagged tensor whose rows lie back to back,
    the values a numpy view of its memory; ShapeError says how to fix any other tensor."""
    torch = import_torch()
    if not getattr(nested, "is_nested", False) or nested.layout != torch.jagged:
        layout = getattr(nested, "layout", None)
        raise ShapeError(
            f"from_torch_nested needs a nested tensor of layout torch.jagged, got a "
            f"{type(nested).__name__} of layout {layout}; build one with "
            "torch.nested.nested_tensor(rows, layout=torch.jagged)"
        )
    if nested.device.type != "cpu":
        raise ShapeError(
            f"from_torch_nested reads memory in place, but the nested tensor is on "
            f"{nested.device}; move it first with nested.cpu()"
        )
    if nested.lengths() is not None or not nested.values().is_contiguous():
        raise ShapeError(
            "the nested tensor's rows do not lie back to back in one contiguous buffer; "
            "make them so first with nested.contiguous()"
        )
    try:
        values = nested.values().detach().numpy()
    except TypeError as error:
        raise ShapeError(
            f"the nested tensor's dtype {nested.dtype} has no numpy equivalent ({error}); "
            "convert it first, e.g. nested.to(torch.float32)"
        ) from None
    offsets = nested.offsets().detach().numpy()
    return values[offsets[0]:offsets[-1]], np.diff(offsets)
