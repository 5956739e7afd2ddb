"""Scalar types of the IR, with their numpy and C spellings."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DType:
    """A scalar type: `name` is the language's spelling, `c` the C99 one."""

    name: str
    c: str
    bits: int
    is_float: bool
    is_signed: bool

    @property
    def numpy(self):
        return np.dtype(self.name if self.name != "bool" else np.bool_)

    def __repr__(self):
        return self.name


float32 = DType("float32", "float", 32, True, True)
float64 = DType("float64", "double", 64, True, True)
int8 = DType("int8", "int8_t", 8, False, True)
int16 = DType("int16", "int16_t", 16, False, True)
int32 = DType("int32", "int32_t", 32, False, True)
int64 = DType("int64", "int64_t", 64, False, True)
uint8 = DType("uint8", "uint8_t", 8, False, False)
boolean = DType("bool", "int", 1, False, False)

ALL = {d.name: d for d in (float32, float64, int8, int16, int32, int64, uint8, boolean)}


def as_dtype(value):
    """Turn a dtype spelling (`"float32"`, `np.float32`, a DType) into a DType."""
    if isinstance(value, DType):
        return value
    try:
        name = np.dtype(value).name
    except TypeError:
        name = str(value)
    if name not in ALL:
        from .errors import LanguageError

        raise LanguageError(
            f"dtype {value!r} is not supported; use one of {', '.join(sorted(ALL))}"
        )
    return ALL[name]


def identity(combiner, dtype):
    """The value a reduction with `combiner` (ir.base.COMBINERS) starts from."""
    if combiner == "sum":
        return 0
    largest = combiner in ("max", "nanmax")
    if dtype.is_float:
        return float("-inf") if largest else float("inf")
    info = np.iinfo(dtype.numpy)
    return int(info.min) if largest else int(info.max)


def storage_type(dtype):
    """The C type of one stored element: numpy keeps bools in one byte."""
    return "uint8_t" if dtype == boolean else dtype.c
