"""The schedule search: every candidate schedule of a conv kernel is built for the core,
run under unicorn, checked against the numpy reference and counted, and the fewest
wins."""

import pytest

import quiltc as qc
from quiltc.mcu.schedule_search import candidates_for, search_schedule
from quiltc.recipes import mcu_bitserial
from quiltc.recipes.mcu import ConvShape
from quiltc.runtime_c import mcu_toolchain

from support.helpers import require_tool

pytest.importorskip("unicorn", reason="install the test extra: pip install -e '.[test]'")

LAYER = ConvShape(h=4, w=4, cin=16, cout=4, kh=3, kw=3, stride=1, padding=1)


def test_int8_candidates_are_the_blocks_that_divide_the_layer():
    blocks = {candidate["block"] for candidate in candidates_for("int8_plain", LAYER)}
    assert blocks == {(1, 1), (2, 1), (4, 1), (1, 2), (2, 2), (4, 2), (1, 4), (2, 4)}
    # cout = 4: the 4-channel block divides it, the 8-channel one does not.
    assert candidates_for("bitserial", LAYER) == [
        {"groups_per_step": n, "window_unrolled": unrolled} for n in (1, 2)
        for unrolled in (False, True)] + [
            {"channel_block": 4, "window_unrolled": True, "row_pointers": True}]


@pytest.mark.parametrize("kind, act_bits, candidates", [
    ("int8_smlad", 8, [{"block": (1, 1), "unrolled_rows": False},
                       {"block": (2, 2), "unrolled_rows": False}]),
    ("bitserial", 2, [{"groups_per_step": 1}, {"groups_per_step": 2}]),
])
def test_the_search_counts_every_candidate_and_keeps_the_fewest(kind, act_bits, candidates):
    require_tool(mcu_toolchain.COMPILER, mcu_toolchain.MCU_INSTALL_HINT)
    best, counts = search_schedule(kind, LAYER, "m4", act_bits, candidates)
    assert [schedule for schedule, _ in counts] == candidates
    assert dict((str(s), n) for s, n in counts)[str(best)] == min(n for _, n in counts)
    # Sharing each load between outputs (2 x 2 outputs, or two groups' table rows per
    # channel step) must beat one at a time.
    assert counts[1][1] < counts[0][1]


@pytest.mark.parametrize("core", ["m3", "m4"])
def test_channel_blocks_match_numpy_looped_or_written_out(core):
    # search_schedule checks every emulated output against the numpy reference (it
    # raises otherwise): blocks of 1, 2 and 4 channels, with the window looped and
    # written out (indices and requantization tables then immediates), at 3 bits.
    require_tool(mcu_toolchain.COMPILER, mcu_toolchain.MCU_INSTALL_HINT)
    candidates = [{"channel_block": block, "window_unrolled": unrolled}
                  for block in (1, 2, 4) for unrolled in (False, True)]
    _, counts = search_schedule("bitserial", LAYER, core, 3, candidates)
    assert [schedule for schedule, _ in counts] == candidates
    # Four accumulators in registers over the written-out window beat one at a time.
    assert counts[5][1] < counts[1][1]


@pytest.mark.parametrize("core", ["m3", "m4"])
def test_planes_holding_row_pointers_match_numpy_in_fewer_instructions(core):
    # Blocks of 4 channels with the window written out, then one group a step looped,
    # each with the planes holding bytes and then row pointers.
    require_tool(mcu_toolchain.COMPILER, mcu_toolchain.MCU_INSTALL_HINT)
    candidates = [{**schedule, "row_pointers": stored}
                  for schedule in ({"channel_block": 4, "window_unrolled": True},
                                   {"groups_per_step": 1}) for stored in (False, True)]
    _, counts = search_schedule("bitserial", LAYER, core, 2, candidates)
    assert [schedule for schedule, _ in counts] == candidates
    # Each block reads every row pointer again: one load each instead of two instructions.
    assert counts[1][1] < counts[0][1]


def test_a_channel_block_must_divide_the_channels_and_stands_alone():
    with pytest.raises(qc.QuiltError, match="channel_block=3 needs a divisor of the layer's 4"):
        mcu_bitserial.bitserial_conv(LAYER, 2, 64, (0, 3), channel_block=3)
    with pytest.raises(qc.QuiltError, match="and no groups_per_step \\(got 2\\)"):
        mcu_bitserial.bitserial_conv(LAYER, 2, 64, (0, 3), channel_block=2, groups_per_step=2)


def test_an_unknown_kind_and_an_empty_candidate_list_are_refused():
    with pytest.raises(qc.QuiltError, match="conv kind 'int4' is unknown; use one of"):
        search_schedule("int4", LAYER, "m4")
    with pytest.raises(qc.QuiltError, match="no schedule to count for a int8_plain conv"):
        search_schedule("int8_plain", LAYER, "m3", candidates=[])
