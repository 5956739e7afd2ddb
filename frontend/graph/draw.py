"""A picture of a fusion plan: each partition a box listing its ops, placed by its depth
in the condensed graph (producers left of consumers), arrows for the tensors that pass
between partitions (the cuts). matplotlib is imported here only, so the library works
without it."""

import textwrap

from ..ir.errors import QuiltError


def _placement(plan):
    """{partition number: (column, row)}: column = longest path of partitions before it."""
    producer = {value.name: part.number for part in plan.partitions for value in part.outputs}
    column, rows, place = {}, {}, {}
    for part in plan.partitions:
        sources = {producer[value.name] for value in part.inputs if value.name in producer}
        column[part.number] = 1 + max((column[source] for source in sources), default=-1)
        row = rows.get(column[part.number], 0)
        rows[column[part.number]] = row + 1
        place[part.number] = (column[part.number], -row)
    return place, producer


def draw_plan(plan, path):
    """Write the picture of `plan` to `path` (any format matplotlib writes)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise QuiltError("plan.draw needs matplotlib: pip install matplotlib") from None
    place, producer = _placement(plan)
    columns = 1 + max((x for x, _ in place.values()), default=0)
    rows = 1 + max((-y for _, y in place.values()), default=0)
    figure, axes = plt.subplots(figsize=(min(2.6 * columns + 1, 40), min(1.8 * rows + 1.5, 30)))
    colours = {"opaque": "#f4a582", "reduce": "#92c5de", "elementwise": "#b8e186",
               "injective": "#d9d9d9"}
    for part in plan.partitions:
        x, y = place[part.number]
        for value in part.inputs:
            if value.name in producer:
                source_x, source_y = place[producer[value.name]]
                axes.annotate("", xy=(x - 0.35, y), xytext=(source_x + 0.35, source_y),
                              arrowprops={"arrowstyle": "->", "color": "0.4", "lw": 0.8})
        ops = textwrap.fill(" ".join(node.op for node in part.nodes), 26)
        axes.text(x, y, f"{part.name} [{part.kind}]\n{ops}", ha="center", va="center",
                  fontsize=7, bbox={"boxstyle": "round", "facecolor": colours[part.kind]})
    axes.set_xlim(-0.7, columns - 0.3)
    axes.set_ylim(-rows + 0.4, 0.6)
    ops = sum(len(part.nodes) for part in plan.partitions)
    axes.set_title(f"fusion plan, level {plan.level}: {ops} ops in "
                   f"{len(plan.partitions)} partitions ({len(plan.refusals)} cuts with reasons: "
                   "print(plan))", fontsize=9)
    axes.set_axis_off()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
