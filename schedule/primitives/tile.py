"""tile: split two nested loops and interleave the parts into 2-D tiles.

    for i in range(M):              for i_o in range(ceil(M / 4)):
        for j in range(N):   ->         for j_o in range(ceil(N / 8)):
            body(i, j)                      for i_i in range(4):
                                                for j_i in range(8):
                                                    if i_o*4 + i_i < M and j_o*8 + j_i < N:
                                                        body(i_o*4 + i_i, j_o*8 + j_i)

    (each guard only where its factor may not divide the extent)

    tile(i, j, 4, 8) is split(i, 4); split(j, 8); reorder(i_o, j_o, i_i, j_i).
"""

from ...ir.errors import ScheduleError
from ...ir.printer import render
from .fuse import check_rectangular
from .reorder import perfect_chain, reorder
from .split import check_factor, split


def tile(kernel, x, y, x_factor, y_factor):
    """Tile `x` (outer) and `y` (inner, in x's perfectly nested chain) by the factors;
    returns [x_outer, y_outer, x_inner, y_inner]."""
    asked = f"tile loops {x} and {y} by {x_factor} x {y_factor}"
    chain = perfect_chain(kernel, (x, y), "tile", asked)
    x_loop, y_loop = chain.loops[0], chain.loops[-1]
    if x_loop.var.name != str(x):
        raise ScheduleError(
            "tile", asked, f"loop {x} is nested inside loop {y}",
            f"Pass the outer loop first: tile({y}, {x}, ...).",
            render(kernel, mark=x_loop),
        )
    check_factor("tile", x_loop.var.name, x_factor, kernel, x_loop)
    check_factor("tile", y_loop.var.name, y_factor, kernel, y_loop)
    check_rectangular(
        "tile", asked, x_loop, y_loop,
        f"{y_loop.var}'s outer part cannot move outside {x_loop.var}'s inner part",
        "Tile loops of a rectangular nest, or split the ragged loop on its own.", kernel,
    )
    kernel, (x_outer, x_inner) = split(kernel, x_loop.var, x_factor)
    kernel, (y_outer, y_inner) = split(kernel, y_loop.var, y_factor)
    kernel, _ = reorder(kernel, x_outer, y_outer, x_inner, y_inner)
    return kernel, [x_outer, y_outer, x_inner, y_inner]
