"""Choosing a conv kernel's schedule for one core by counting instructions.

A register block (recipes.mcu.REGISTER_BLOCKS) trades registers for loads: a larger
block reuses each loaded activation and weight more often, until the accumulators,
operands and pointers no longer fit the core's registers and gcc spills them. The
bit-serial kernel trades the same way when it sums several groups of input channels per
channel step (their table-row pointers stay in registers), and trades flash for
instructions when its whole window is written out. Where the balance tips
depends on the core, the layer and the activation width, so the choice is measured:
each candidate layer is compiled for the core, run under unicorn (the `test` extra) on
reproducible data, checked against the numpy integer reference, and counted.

    best, counts = search_schedule("int8_smlad", ConvShape(16, 16, 32, 32, 3, 3, 1, 1), "m4")
    best    # {"block": (4, 2), "unrolled_rows": True}: keyword arguments of the recipe
"""

import tempfile

import numpy as np

from ..ir.errors import QuiltError
from ..recipes.mcu_bitserial import VECTOR_LEN
from ..runtime_c import mcu_toolchain
from ..runtime_c.mcu_boards import board_for_core
from ..runtime_c.unicorn_run import call_function
from .model import CONV_KINDS, conv_layer_source

# Pixels along a row x output channels: up to 8 accumulators, what 13 registers hold
# beside a block's operands and pointers.
BLOCKS = ((1, 1), (2, 1), (4, 1), (8, 1), (1, 2), (2, 2), (4, 2), (1, 4), (2, 4))
GROUPS_PER_STEP = (1, 2, 4)
# Output channels whose accumulators stay in registers (bit-serial, channel blocks outside
# the pixels): 8 leaves the planes' row pointers and two temporaries the rest of the
# registers at b <= 2; 4 leaves room for more planes. Each block reads every row pointer
# again, so its planes hold the rows' addresses (`row_pointers`: one load a row pointer
# instead of two instructions; blocks of 8, window written out, under unicorn: M4 b = 2
# 1.62M -> 1.47M, M3 b = 4 3.16M -> 2.83M), for four bytes of RAM a plane byte.
CHANNEL_BLOCKS = (4, 8)


def layer_instructions(layer, shape, core, folder, act_bits=8, seed=1):
    """Instructions of one call of the LayerSource `layer` (a conv of ConvShape `shape`)
    on `core` ("m3", "m4", "m7") on random `act_bits`-bit activations, its ELF built in
    `folder`; raises QuiltError if its output differs from the numpy reference."""
    x = np.random.default_rng(seed).integers(0, 1 << act_bits, (shape.h, shape.w, shape.cin),
                                             dtype=np.uint8)
    elf = mcu_toolchain.compile_elf({"layer.c": layer.source}, board_for_core(core).machine,
                                    folder, [layer.function])
    call = call_function(elf, layer.function, [x, np.zeros(layer.output_size, np.uint8)],
                         core=core)
    if not np.array_equal(call.arrays[1], np.asarray(layer.reference(x)).reshape(-1)):
        raise QuiltError(f"the emulated {layer.kind} layer on the {core} differs from its "
                         "numpy reference: the kernel or its tables are wrong")
    return call.instructions


def candidates_for(kind, shape):
    """The schedules worth counting for a conv of `kind` and `shape`: for the int8 kinds
    every block in BLOCKS that divides the row and the channels, with the window's rows
    looped and written out; for "bitserial" every GROUPS_PER_STEP dividing the groups,
    the window looped and written out (its pool indices then immediates in the code:
    fewer instructions for more flash), and every CHANNEL_BLOCKS dividing the channels
    with the window written out and the planes holding row pointers (looped, gcc runs out
    of registers for the block's accumulators beside the loops' counters and pointers)."""
    if kind not in CONV_KINDS:
        raise QuiltError(f"conv kind {kind!r} is unknown; use one of {', '.join(CONV_KINDS)}")
    if kind == "bitserial":
        groups = shape.cin // VECTOR_LEN
        return ([{"groups_per_step": n, "window_unrolled": unrolled}
                 for n in GROUPS_PER_STEP if groups % n == 0 for unrolled in (False, True)]
                + [{"channel_block": block, "window_unrolled": True, "row_pointers": True}
                   for block in CHANNEL_BLOCKS if shape.cout % block == 0])
    return [{"block": block, "unrolled_rows": unrolled}
            for block in BLOCKS if shape.ow % block[0] == 0 and shape.cout % block[1] == 0
            for unrolled in (False, True)]


def search_schedule(kind, shape, core, act_bits=8, candidates=None):
    """The schedule (keyword arguments of the kind's recipe) of the fewest instructions
    for a conv of `kind` and `shape` on `core` at `act_bits` (bit-serial only), among
    `candidates` (default: `candidates_for`). Returns (best, [(schedule, instructions)])."""
    candidates = candidates_for(kind, shape) if candidates is None else list(candidates)
    if not candidates:
        raise QuiltError(f"no schedule to count for a {kind} conv of {shape}; pass candidates")
    counts = []
    bits = act_bits if kind == "bitserial" else 8
    with tempfile.TemporaryDirectory() as folder:
        for number, schedule in enumerate(candidates):
            layer = conv_layer_source(kind, shape, act_bits=act_bits, schedule=schedule)
            counts.append((schedule, layer_instructions(layer, shape, core,
                                                        f"{folder}/{number}", bits)))
    best = min(counts, key=lambda entry: entry[1])[0]
    return best, counts
