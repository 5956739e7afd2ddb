"""Golden files: the printed IR and the emitted C, CUDA and Cortex-M C of a few canonical
kernels, compared character for character with `tests/golden/`.

A change that moves code around must leave every file as it was. A change that means to
alter emitted code regenerates them on purpose and shows the difference in its diff:

    pytest tests/test_golden.py --update-golden
"""

from pathlib import Path

import pytest

import quiltc as qc
from quiltc import attention, recipes, recipes_cuda
from quiltc.mcu.model import conv_layer_source
from quiltc.recipes.mcu import ConvShape

from support.cuda_kernels import ragged_scale
from support.helpers import require_cc

GOLDEN = Path(__file__).with_name("golden")


def _matmul_schedule():
    sizes = qc.var("M", 1, 4096), qc.var("N", 1, 4096), qc.var("K", 1, 4096)
    *_, c = recipes.matmul_program(*sizes)
    return recipes.schedule_matmul(c, vector=16)


def _softmax_schedule():
    _, stages, out = recipes.softmax_program(qc.var("R", 1, 1 << 20), qc.var("C", 1, 1 << 16))
    return recipes.schedule_softmax(stages, out)


def _ragged_fused_schedule():
    sch, y = ragged_scale()
    batch, length, _ = sch.loops(y)
    sch.split(sch.fuse(batch, length), 8)
    return sch


def _matmul_cuda_schedule():
    sizes = qc.var("M", 1, 4096), qc.var("N", 1, 4096), qc.var("K", 1, 4096)
    *_, c = recipes.matmul_program(*sizes)
    return recipes_cuda.schedule_matmul_cuda(c)


def _mcu_conv(kind, act_bits):
    return conv_layer_source(kind, ConvShape(8, 8, 16, 16, 3, 3, 1, 1), act_bits=act_bits).source


GOLDEN_CASES = {
    "matmul.ir.txt": lambda: repr(_matmul_schedule()),
    "matmul.c": lambda: qc.build(_matmul_schedule()).source,
    "softmax.c": lambda: qc.build(_softmax_schedule()).source,
    "ragged_fused.c": lambda: qc.build(_ragged_fused_schedule()).source,
    "ragged_attention.ir.txt": lambda: repr(
        attention._attention_kernel(4, 16, 64, True, lanes=16).kernel),
    "ragged_attention.c": lambda: attention._attention_kernel(4, 16, 64, True, lanes=16).source,
    "matmul_cuda.cu": lambda: qc.build(_matmul_cuda_schedule(), target="cuda-emu").source,
    "ragged_cuda.cu": lambda: qc.build(recipes_cuda.schedule_ragged_cuda(*ragged_scale()),
                                       target="cuda-emu").source,
    "conv_int8_smlad.mcu.c": lambda: _mcu_conv("int8_smlad", 8),
    "conv_bitserial4.mcu.c": lambda: _mcu_conv("bitserial", 4),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_emitted_code_matches_golden(name, request):
    require_cc()
    text = GOLDEN_CASES[name]()
    path = GOLDEN / name
    if request.config.getoption("--update-golden"):
        path.write_text(text)
    assert path.exists(), f"{path} is missing; create it with pytest {__file__} --update-golden"
    assert text == path.read_text(), (
        f"{name} changed; if that is intended, rerun with --update-golden and commit the diff")
