"""The CUDA target: `extern "C" __global__` kernels plus a host launcher, in one .cu file.

Each top-level loop nest of the kernel becomes one `__global__` function (one launch):

    for b in range(B):          # blockIdx.x       __global__ void k_launch0(...) {
        for i in range(L_len(b)):  # threadIdx.x       const int64_t b = (int64_t)blockIdx.x;
            Y[b, i] = ...                              const int64_t i = (int64_t)threadIdx.x;
                                                       if (i < L_len[b]) { Y[...] = ...; }

Bound loops become block and thread indices, guarded where the extent may fall short of
the launched dimension; `shared` buffers are `__shared__` arrays and barriers
`__syncthreads()`. The blockIdx loops of a nest must be its outermost loops; a nest with
no binding runs as one thread.

The launcher, `extern "C" void k(...)`, takes exactly the C target's arguments (host
pointers, sizes, lengths tables): it computes the prelude tables on the host, copies every
buffer and table to the device, derives each launch's grid and block from the bound
extents (for an extent that depends on outer loops, such as a ragged row length, the
largest over those loops), launches, copies the outputs back and frees. `k_error()`
returns the first CUDA error of the last call ("" when none). Compiled by nvcc the file
runs on a GPU; compiled by g++ with runtime_c/cuda_emu.h it runs on the CPU.
"""

import sympy

from ..ir import nodes as ir
from ..ir.dtypes import storage_type
from ..ir.errors import QuiltError
from ..ir.index import bounds
from ..ir.verify_gpu import launch_nests
from ..ir.walk import children
from . import helpers, prelude
from .base import CLikeRenderer
from .names import strip_parentheses

AXES = "xyz"

# The prelude assigns quiltc_alloc's result to typed pointers, which C allows from
# void* and C++ does not: here it returns a value that converts to any pointer type.
_HOST_ALLOC = """struct quiltc_host_memory
{
    void* memory;
    template <typename T> operator T*() const { return static_cast<T*>(memory); }
};

static quiltc_host_memory quiltc_alloc(size_t bytes)
{
    void* memory = malloc(bytes > 0 ? bytes : 64);
    if (memory == NULL) {
        fprintf(stderr, "quiltc: out of memory allocating %zu bytes\\n", bytes);
        abort();
    }
    return quiltc_host_memory{memory};
}"""

_RUNTIME = """#ifdef __CUDACC__
#include <cuda_runtime.h>
#define QUILTC_LAUNCH(kernel, grid, block, ...) kernel<<<(grid), (block)>>>(__VA_ARGS__)
#else
#include "cuda_emu.h"
#endif"""

_DEVICE_MEMORY = """static char quiltc_cuda_error[512];

static void quiltc_cuda_check(cudaError_t status, const char* what)
{
    if (status != cudaSuccess && quiltc_cuda_error[0] == 0) {
        snprintf(quiltc_cuda_error, sizeof quiltc_cuda_error, "%s: %s", what,
                 cudaGetErrorString(status));
    }
}

static void* quiltc_to_device(const void* host, size_t bytes)
{
    void* device = NULL;
    quiltc_cuda_check(cudaMalloc(&device, bytes > 0 ? bytes : 64), "cudaMalloc");
    if (host != NULL && device != NULL && bytes > 0) {
        quiltc_cuda_check(cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
    }
    return device;
}

static void quiltc_to_host(void* host, const void* device, size_t bytes)
{
    if (device != NULL && bytes > 0) {
        quiltc_cuda_check(cudaMemcpy(host, device, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
    }
}"""


class Launch:
    """One top-level nest run as one `__global__` function: its grid loops (the blockIdx
    chain at its top) and, per bound axis, the loops bound to it with their enclosing
    loops inside the nest."""

    def __init__(self, number, nest):
        self.number, self.nest = number, nest
        self.grid_loops = []
        node = nest
        while isinstance(node, ir.For) and node.kind.startswith("blockIdx"):
            self.grid_loops.append(node)
            node = node.body
        self.bound = {kind: [] for kind in ir.GPU_AXES}
        for number, loop in enumerate(self.grid_loops):
            self.bound[loop.kind].append((loop, tuple(self.grid_loops[:number])))
        self._collect(node, tuple(self.grid_loops))

    def _collect(self, stmt, enclosing):
        if isinstance(stmt, ir.For):
            if stmt.kind.startswith("blockIdx"):
                serial = [loop for loop in enclosing if not loop.kind.startswith("blockIdx")]
                place = (f"lies inside loop {serial[-1].var} ({serial[-1].kind})" if serial
                         else "follows other statements of its nest")
                raise QuiltError(
                    f"loop {stmt.var} is bound to {stmt.kind} but {place}: the cuda target "
                    "launches one grid per top-level loop nest, so blockIdx loops must be the "
                    "outermost loops of their nest; bind the loops around it to blockIdx as "
                    "well, or reorder"
                )
            if stmt.kind.startswith("threadIdx"):
                self.bound[stmt.kind].append((stmt, enclosing))
            enclosing = enclosing + (stmt,)
        for child in children(stmt):
            if isinstance(child, ir.Stmt):
                self._collect(child, enclosing)

    def exact_loops(self, ranges):
        """Vars of bound loops whose extent is always the launched dimension (no guard):
        the axis's one extent, independent of other loops, and (for threads, since a
        block has at least one) never 0."""
        exact = set()
        for kind, loops in self.bound.items():
            extents = {loop.extent for loop, _ in loops}
            independent = all(not (loop.extent.free_symbols & {o.var for o in enclosing})
                              for loop, enclosing in loops)
            nonempty = kind.startswith("blockIdx") or all(
                bounds(extent, ranges)[0] >= 1 for extent in extents)
            if len(extents) == 1 and independent and nonempty:
                exact |= {loop.var for loop, _ in loops}
        return exact

    def max_threads(self, ranges):
        """The largest block the launch may need, when the ranges bound it, else None."""
        total = sympy.Integer(1)
        for kind, loops in self.bound.items():
            if kind.startswith("threadIdx") and loops:
                highest = []
                for loop, enclosing in loops:
                    scope = dict(ranges)
                    for outer in enclosing:
                        scope[outer.var] = (sympy.Integer(0), outer.extent - 1)
                    highest.append(bounds(loop.extent, scope)[1])
                total *= sympy.Max(*highest)
        return int(total) if total.is_Integer else None


class CUDARenderer(CLikeRenderer):
    """CUDA C++: device kernels for the launches, and the host launcher."""

    target = "cuda"
    restrict = "__restrict__"
    kernel_prefix = 'extern "C" '
    helper_prefix = "static __host__ __device__ inline "

    def __init__(self, kernel, trace_text=""):
        super().__init__(kernel, trace_text)
        nests, self.global_buffers = launch_nests(kernel.body)
        self.launches = [Launch(number, nest) for number, nest in enumerate(nests)]
        self.exact = set()

    def use_helper(self, name, definition):
        """As the base, with the host allocator in C++ (see _HOST_ALLOC)."""
        return super().use_helper(name, _HOST_ALLOC if name == "quiltc_alloc" else definition)

    def preamble(self):
        """The includes, the CUDA runtime (or its CPU emulation) and device memory helpers."""
        includes = "\n".join(f"#include <{name}>" for name in self.includes)
        return "\n\n".join([includes, _RUNTIME, _DEVICE_MEMORY])

    def launch_name(self, launch):
        """The `__global__` function of `launch`."""
        return f"{self.kernel.name}_launch{launch.number}"

    def function(self):
        """The kernel's device functions, then its host launcher."""
        self.lines = []
        for launch in self.launches:
            self.render_launch(launch)
            self.emit(0, "")
        self.render_launcher()
        return "\n".join(self.lines)

    def declaration(self):
        """The launcher's C declaration and its error query, for `ffi.cdef`."""
        return super().declaration() + f"\nconst char* {self.kernel.name}_error(void);"

    # ------------------------------------------------------------------- device side

    def device_parameters(self):
        """The kernel's parameters, then its prelude tables and global buffers (on device)."""
        tables = [f"const int64_t* {self.restrict} {name}" for name in _table_names(self.kernel)]
        buffers = [f"{storage_type(b.dtype)}* {self.restrict} {self.buffer_names[b.name]}"
                   for b in self.global_buffers]
        return self.parameters() + tables + buffers

    def render_launch(self, launch):
        """One `__global__` function running `launch`'s nest."""
        self.exact = launch.exact_loops(self.kernel.ranges())
        threads = launch.max_threads(self.kernel.ranges())
        bounds_text = f"__launch_bounds__({max(threads, 1)}) " if threads else ""
        head = f'extern "C" __global__ void {bounds_text}{self.launch_name(launch)}('
        self.emit(0, head + "\n" + ",\n".join(
            self.indent + p for p in self.device_parameters()) + ")\n{")
        self.statement(launch.nest, 1)
        self.emit(0, "}")

    def render_gpu_loop(self, loop, depth):
        """The loop variable is the block or thread index, guarded unless exact."""
        var = self.names[loop.var.name]
        self.emit(depth, "{")
        self.emit(depth + 1, f"const int64_t {var} = (int64_t){loop.kind};")
        if loop.var in self.exact:
            self.statement(loop.body, depth + 1)
        else:
            self.emit(depth + 1, f"if ({var} < {strip_parentheses(self.index(loop.extent))}) {{")
            self.statement(loop.body, depth + 2)
            self.emit(depth + 1, "}")
        self.emit(depth, "}")

    def render_alloc_shared(self, stmt, depth):
        """A `__shared__` array: one per block, seen by all its threads."""
        size = sympy.sympify(stmt.buffer.size())
        if not size.is_Integer:
            raise QuiltError(f"shared buffer {stmt.buffer.name} has size {size}; a __shared__ "
                             "array needs a constant size: cache a tile of constant extent")
        name = self.buffer_names[stmt.buffer.name]
        element = storage_type(stmt.buffer.dtype)
        self.emit(depth, f"__shared__ {element} {name}[{max(int(size), 1)}];")
        self.statement(stmt.body, depth)

    def render_alloc_global(self, stmt, depth):
        """Global buffers are allocated by the launcher, outside any loop nest."""
        raise QuiltError(
            f"buffer {stmt.buffer.name} is allocated in global memory inside a loop nest, which "
            "a cuda kernel cannot do; cache it in 'local' or 'shared' scope, or compute it in "
            "a loop nest of its own"
        )

    def render_barrier(self, stmt, depth):
        """`__syncthreads()`: every thread of the block waits here."""
        self.emit(depth, "__syncthreads();")

    # --------------------------------------------------------------------- host side

    def _bytes(self, dtype_text, count):
        return f"sizeof({dtype_text}) * ({strip_parentheses(self.index(count))})"

    def device_copies(self):
        """(device name, C type, host pointer or NULL, byte count) of everything the
        kernels read: parameters, lengths tables, prelude tables, global buffers (emits
        the count of each flat-rows table, which no size expression names)."""
        copies = []
        for buffer in self.kernel.params:
            name = self.buffer_names[buffer.name]
            copies.append((name, storage_type(buffer.dtype), name, self._bytes(
                storage_type(buffer.dtype), buffer.size())))
        for dim in self.kernel.ragged_dims:
            copies.append((dim.lengths_table, "const int32_t", dim.lengths_table,
                           self._bytes("int32_t", dim.batch)))
        for entry in self.kernel.prelude:
            count = f"{strip_parentheses(self.index(entry.count))} + 1"
            if isinstance(entry, ir.FlatRows):
                flat = f"quiltc_flat_{entry.rows}"
                count = f"{flat} + 1"
                self.emit(1, f"int64_t {flat} = 0;")
                self.emit(1, f"for (int64_t quiltc_row = 0; quiltc_row < {self.index(entry.count)};"
                             f" ++quiltc_row) {flat} += {entry.lengths}[quiltc_row];")
            for name in _table_names(entry):
                copies.append((name, "const int64_t", name, f"sizeof(int64_t) * ({count})"))
        for buffer in self.global_buffers:
            copies.append((self.buffer_names[buffer.name], storage_type(buffer.dtype), "NULL",
                           self._bytes(storage_type(buffer.dtype), buffer.size())))
        return copies

    def render_launcher(self):
        """The host function: tables, copies in, one launch per nest, copies out, frees."""
        self.emit(0, self.signature(width=100) + "\n{")
        self.emit(1, "quiltc_cuda_error[0] = 0;")
        self.render_prelude(1)
        copies = self.device_copies()
        for name, c_type, host, size in copies:
            self.emit(1, f"{c_type}* quiltc_device_{name} = ({c_type}*)quiltc_to_device({host}, "
                         f"{size});")
        arguments = [f"quiltc_device_{name}" for name, *_ in copies[:len(self.kernel.params)]]
        arguments += [self.names[v.symbol.name] for v in self.kernel.shape_vars]
        arguments += [f"quiltc_device_{name}" for name, *_ in copies[len(self.kernel.params):]]
        for launch in self.launches:
            self.render_launch_call(launch, arguments, 1)
        self.emit(1, 'quiltc_cuda_check(cudaDeviceSynchronize(), "running the kernels");')
        outputs = {self.buffer_names[name] for name in self.kernel.outputs}
        for name, _, host, size in copies:
            if name in outputs:
                self.emit(1, f"quiltc_to_host({host}, quiltc_device_{name}, {size});")
        for name, *_ in reversed(copies):
            self.emit(1, f"cudaFree((void*)quiltc_device_{name});")
        prelude.free_tables(self, 1)
        self.emit(0, "}")
        self.emit(0, "")
        self.emit(0, f'extern "C" const char* {self.kernel.name}_error(void) '
                     "{ return quiltc_cuda_error; }")

    def render_launch_call(self, launch, arguments, depth):
        """Grid and block of `launch` from its bound extents, then the launch."""
        self.emit(depth, "{")
        dims = {}
        for kind, loops in launch.bound.items():
            scope, axis = kind.split(".")
            dims[kind] = f"quiltc_{'grid' if scope == 'blockIdx' else 'block'}_{axis}"
            self.render_dimension(dims[kind], loops, int(not loops or scope == "threadIdx"),
                                  depth + 1)
        grid = ", ".join(f"(unsigned){dims['blockIdx.' + a]}" for a in AXES)
        block = ", ".join(f"(unsigned){dims['threadIdx.' + a]}" for a in AXES)
        nonempty = " && ".join(f"{dims['blockIdx.' + a]} > 0" for a in AXES)
        name = self.launch_name(launch)
        self.emit(depth + 1, f"if ({nonempty}) {{")
        self.emit(depth + 2, f"QUILTC_LAUNCH({name}, dim3({grid}), dim3({block}),")
        self.emit(depth + 4, ", ".join(arguments) + ");")
        self.emit(depth + 2, f'quiltc_cuda_check(cudaGetLastError(), "launching {name}");')
        self.emit(depth + 1, "}")
        self.emit(depth, "}")

    def render_dimension(self, name, loops, smallest, depth):
        """`int64_t name`: the largest extent of `loops` (at least `smallest`), taken for
        an extent that depends on enclosing loops over all their iterations (host loops
        over them, as a ragged row length needs)."""
        constants = [smallest] + [int(loop.extent) for loop, _ in loops if loop.extent.is_Integer]
        self.emit(depth, f"int64_t {name} = {max(constants)};")
        symbolic = {}
        for loop, enclosing in loops:
            if not loop.extent.is_Integer:
                symbolic.setdefault(loop.extent, enclosing)
        for extent, enclosing in symbolic.items():
            needed, used = set(extent.free_symbols), []
            for outer in reversed(enclosing):
                if outer.var in needed:
                    used.insert(0, outer)
                    needed |= outer.extent.free_symbols
            for level, outer in enumerate(used):
                var = self.names[outer.var.name]
                bound = strip_parentheses(self.index(outer.extent))
                self.emit(depth + level, f"for (int64_t {var} = 0; {var} < {bound}; ++{var}) {{")
            text = strip_parentheses(self.index(extent))
            name_of_max, definition = helpers.index_helper("max")
            maximum = self.use_helper(name_of_max, self.helper_prefix + definition)
            self.emit(depth + len(used), f"{name} = {maximum}({name}, {text});")
            for level in reversed(range(len(used))):
                self.emit(depth + level, "}")


def _table_names(node):
    """The prelude tables of a kernel (or of one prelude entry), in prelude order."""
    if isinstance(node, ir.Kernel):
        return [name for entry in node.prelude for name in _table_names(entry)]
    if isinstance(node, ir.FlatRows):
        return [node.rows, node.positions]
    return [node.table]


def render_cuda(kernel, trace_text=""):
    """CUDA C++ source of `kernel` (device kernels and host launcher), headed by a comment
    holding `trace_text` (the schedule)."""
    return CUDARenderer(kernel, trace_text).render()


def cuda_signature(kernel):
    """The launcher's C declaration for `ffi.cdef`: the C target's, plus the error query."""
    return CUDARenderer(kernel).declaration()
