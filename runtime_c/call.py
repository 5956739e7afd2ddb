"""`CompiledKernel`: a loaded C kernel as a Python callable.

    C = f(A=a, B=b)                 # outputs allocated and returned
    f(A=a, B=b, out={"C": c})       # outputs written in place
    Y = f(X=ragged)                 # RaggedArrays in, RaggedArrays out
    C = f(A=torch_a, B=jax_b, like="torch")   # any DLPack or __array__ object in,
                                              # torch out (see ir/interop.py)

Before it calls into C it checks every argument's name, dtype, rank and shape and every
symbolic size's declared range (through `ir.shapes`, as the interpreter does), so a bad
argument ends in a ShapeError that names it instead of a crash. For dense arguments the
checks and the sizes they fix depend on names, dtypes and shapes alone and are kept per
such signature, so repeated calls pay for them once.
"""

import numpy as np

from ..ir.dtypes import storage_type
from ..ir.errors import ShapeError
from ..ir.interop import as_like, framework_name
from ..ir.shapes import bind_shape_vars, gather_ragged, ragged_result, storage_shape
from .aligned import output_empty
from .forks import before_kernel_call
from .memory import AllocationCheck

# Argument signatures whose checked sizes a kernel keeps (see CompiledKernel._prepare).
PREPARED_SIGNATURES = 4096


class CompiledKernel:
    """A kernel compiled for the CPU. `source` is its C, `library_path` the shared object."""

    def __init__(self, kernel, source, library):
        self.kernel = kernel
        self.source = source
        self.library_path = str(library.path)
        self._library = library
        self._function = getattr(library.handle, kernel.name)
        self._pointer_types = [f"{storage_type(p.dtype)} *" for p in kernel.params]
        self.outputs = tuple(kernel.outputs)
        self.inputs = tuple(p.name for p in kernel.params if p.name not in self.outputs)
        self._check_allocations = AllocationCheck(kernel)
        self._prepared = {}

    def __repr__(self):
        return (f"CompiledKernel({self.kernel.name}: inputs {', '.join(self.inputs)} -> "
                f"outputs {', '.join(self.outputs)}; {self.library_path})")

    def __call__(self, out=None, like=None, **arguments):
        """Run the kernel on `arguments` (input name -> array; CPU tensors of any
        framework are read in place); see the module docstring.

        Returns the output array when the kernel has one output, else {name: array}, as
        numpy, or in the framework `like` names ("torch", "jax", or an array of one).
        """
        framework_name(like)
        out = {} if out is None else out
        self._check_names(arguments, out)
        arrays, lengths, row_shapes = gather_ragged(self.kernel, {**arguments, **out})
        binding, output_shapes = self._prepare(arrays, lengths, row_shapes)
        for name in out:
            array = arrays[name]
            if not (array.flags.c_contiguous and array.flags.writeable):
                raise ShapeError(
                    f"out[{name!r}] must be a writeable C-contiguous array to be written in "
                    f"place; pass np.empty({array.shape}, np.{array.dtype}) or leave {name!r} "
                    "out of out= to have it allocated"
                )
        arrays = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
        self._separate_overlaps(arrays, out)
        for name, shape in output_shapes.items():
            if name not in arrays:
                arrays[name] = output_empty(shape, self.kernel.param(name).dtype.numpy)
        # from_buffer, not cast of .ctypes.data: 0.4 microseconds a pointer, not 1.9
        ffi = self._library.ffi
        pointers = [ffi.from_buffer(pointer_type, arrays[buffer.name])
                    for buffer, pointer_type in zip(self.kernel.params, self._pointer_types)]
        sizes = [binding[v.symbol] for v in self.kernel.shape_vars]
        tables = [ffi.from_buffer("int32_t *", lengths[d.name]) for d in self.kernel.ragged_dims]
        before_kernel_call(self.library_path)
        self._function(*pointers, *sizes, *tables)
        results = {name: as_like(self._result(name, arrays[name], binding, lengths, out), like)
                   for name in self.outputs}
        return results[self.outputs[0]] if len(self.outputs) == 1 else results

    def _prepare(self, arrays, lengths, row_shapes):
        """(binding, {output name: shape}) for `arrays`, every check passed. Without
        ragged arguments these depend on the arrays' names, dtypes and shapes alone, so
        they are worked out once per signature: the checks and sympy substitutions took
        40 of the 49 microseconds a call of a tiny kernel took."""
        signature = (None if self.kernel.ragged_dims
                     else tuple((name, array.dtype, array.shape) for name, array in arrays.items()))
        if signature in self._prepared:
            return self._prepared[signature]
        binding = bind_shape_vars(self.kernel, arrays, lengths, row_shapes)
        output_shapes = {}
        for name in self.outputs:
            if name not in arrays:
                shape = storage_shape(self.kernel.param(name), binding, lengths)
                if None in shape:
                    raise ShapeError(f"the rows of output {name!r} are not fixed by any input; "
                                     f"pass it through out={{{name!r}: ...}}")
                output_shapes[name] = shape
        missing = [d.name for d in self.kernel.ragged_dims if d.name not in lengths]
        if missing:
            raise ShapeError(f"no argument carries the rows of ragged dims {', '.join(missing)}")
        self._check_allocations(binding, lengths)
        if signature is not None:
            if len(self._prepared) >= PREPARED_SIGNATURES:
                self._prepared.clear()
            self._prepared[signature] = binding, output_shapes
        return binding, output_shapes

    def _separate_overlaps(self, arrays, out):
        """An input that shares memory with an `out=` array is read from a copy, as numpy's
        ufuncs do: the kernel writes outputs while it still reads its inputs. Two outputs
        in one memory cannot both be right, so that is refused."""
        written = list(out)
        for position, name in enumerate(written):
            for other in written[position + 1:]:
                if np.may_share_memory(arrays[name], arrays[other]):
                    raise ShapeError(f"out[{name!r}] and out[{other!r}] share memory; pass "
                                     "separate arrays for separate outputs")
            for other in self.inputs:
                if np.may_share_memory(arrays[name], arrays[other]):
                    arrays[other] = arrays[other].copy()

    def _result(self, name, values, binding, lengths, out):
        buffer = self.kernel.param(name)
        if not buffer.is_ragged:
            return values
        if name in out:
            return out[name]
        return ragged_result(buffer, values, binding, lengths)

    def _check_names(self, arguments, out):
        if not isinstance(out, dict):
            raise ShapeError(
                f"out= takes a dict of output name -> array, e.g. out={{{self.outputs[0]!r}: "
                f"array}}, not a {type(out).__name__}"
            )
        expected = f"expected inputs {', '.join(self.inputs) or '(none)'}"
        unknown = sorted(set(arguments) - set(self.inputs))
        if unknown:
            outputs_given = [name for name in unknown if name in self.outputs]
            hint = (f"; pass outputs through out={{{outputs_given[0]!r}: array}}"
                    if outputs_given else "")
            raise ShapeError(f"unknown arguments {', '.join(unknown)}; {expected}{hint}")
        missing = [name for name in self.inputs if name not in arguments]
        if missing:
            raise ShapeError(f"missing arguments {', '.join(missing)}; {expected}")
        unknown_outputs = sorted(set(out) - set(self.outputs))
        if unknown_outputs:
            raise ShapeError(
                f"out= names {', '.join(unknown_outputs)}, which are not outputs; "
                f"the outputs are {', '.join(self.outputs)}"
            )
