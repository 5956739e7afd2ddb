"""Whole networks and single layers as microcontroller C, built on the host: bit-exact
with the numpy integer models (QuantModel, PooledModel) and the layer references."""

import copy
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc import nn, qmodel, weightpool
from quiltc.mcu import declared_bytes
from quiltc.mcu.model import (
    CONV_KINDS,
    conv_layer_source,
    dense_layer_source,
    depthwise_layer_source,
    host_layer,
    host_model,
    model_sources,
)
from quiltc.nn import quantize as q
from quiltc.recipes.mcu import ConvShape
from quiltc.runtime_c import mcu_toolchain
from quiltc.runtime_c.mcu_boards import board_for_core

from support.helpers import require_cc, require_tool
from support.tiers import activation_widths, examples

ARM_HINT = ("apt-get install -y --no-install-recommends gcc-arm-none-eabi "
            "libnewlib-arm-none-eabi")


def small_cnn():
    return nn.Sequential([
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.DepthwiseConv2d(16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Dense(8, 10)], seed=3)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 1, (24, 8, 8, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def pooled(images):
    return weightpool.compress(small_cnn(), calib=images, pool_size=16)


@pytest.mark.parametrize("int8_conv", ["plain", "smlad"])
@pytest.mark.parametrize("act_bits", [8, 3])
def test_the_int8_model_runs_bit_exact_on_the_host(images, act_bits, int8_conv):
    require_cc()
    model = qmodel.quantize(small_cnn(), images, act_bits=act_bits)
    run = host_model(model_sources(model, act_bits, int8_conv))
    inputs = model.quantize_input(images)
    np.testing.assert_array_equal(run(inputs), model.forward_int(inputs))


@pytest.mark.parametrize("act_bits", activation_widths())
def test_the_pooled_model_runs_bit_exact_on_the_host_at_every_width(images, pooled, act_bits):
    require_cc()
    quant = pooled.quantized(act_bits)
    assert "bitserial_conv2d" in [layer.kind for layer in quant.layers]
    run = host_model(model_sources(pooled, act_bits))
    inputs = pooled.quantize_input(images)
    scores = run(inputs)
    np.testing.assert_array_equal(scores, quant.forward_int(inputs))
    np.testing.assert_array_equal(scores.argmax(axis=1), pooled.predict(images, act_bits))


def test_the_sources_declare_the_api_and_keep_tables_in_flash(pooled):
    sources = model_sources(pooled, 4)
    header, model_c, weights = sources["model.h"], sources["model.c"], sources["weights.c"]
    assert "#define QUILTC_INPUT_SIZE 64\n" in header
    assert "#define QUILTC_OUTPUT_SIZE 10\n" in header
    assert "int quiltc_model_run(const int8_t *in, int8_t *out);" in header
    assert "int quiltc_model_run(const int8_t *in, int8_t *out)\n{" in model_c
    between = [int(np.prod(layer.out_shape)) for layer in pooled.quantized(4).layers[:-1]]
    assert f"static uint8_t quiltc_ping[{max(between)}]" in model_c
    assert f"static uint8_t quiltc_pong[{max(between)}]" in model_c
    for text in (model_c, weights):
        assert "malloc(" not in text and "free(" not in text and "#pragma omp" not in text
    tables = [line for line in weights.splitlines() if "[" in line and "=" in line]
    assert tables and all(line.startswith("const ") for line in tables)
    assert "_lut[" in weights and "_index[" in weights
    # One pool, so one table: stored once, handed to every pooled layer.
    pooled_layers = [layer for layer in pooled.quantized(4).layers
                     if layer.kind == "bitserial_conv2d"]
    lut_name = next(line for line in tables if "_lut[" in line).split()[2].split("[")[0]
    assert weights.count("_lut[") == 1
    assert model_c.count(f", {lut_name},") == len(pooled_layers) > 1
    flash, ram = declared_bytes(sources)
    table_bytes = sum(a.nbytes for layer in pooled.quantized(4).layers
                      for a in (layer.bias, layer.multiplier, layer.shift) if a is not None)
    assert flash > table_bytes
    # The ping-pong buffers and every kernel's scratch (padded images, bit planes).
    assert ram > 2 * max(between)
    assert re.search(r"^static uint8_t quiltc_layer\d+_conv_planes\[\d+\];$", model_c, re.M)


def test_a_quant_model_emits_only_at_its_own_width(images):
    model = qmodel.quantize(small_cnn(), images, act_bits=8)
    with pytest.raises(qc.QuiltError, match="quantized for act_bits=8, not 4; quantize it again"):
        model_sources(model, 4)


def test_a_pool_index_past_the_table_is_refused(pooled):
    model = copy.deepcopy(pooled.quantized(4))  # the fixture's own model stays intact
    layer = next(layer for layer in model.layers if layer.kind == "bitserial_conv2d")
    layer.indices.flat[0] = 16
    with pytest.raises(qc.QuiltError, match=r"has pool index 16, but its table has only 16 "
                                             r"entries; compress the model again"):
        model_sources(model, 4)


def test_only_quantized_models_are_emitted():
    with pytest.raises(qc.QuiltError, match="takes a QuantModel or a pooled model"):
        model_sources(small_cnn(), 8)


@pytest.mark.slow
@pytest.mark.toolchain
def test_the_model_compiles_for_cortex_m4_with_every_warning(tmp_path, pooled):
    require_tool("arm-none-eabi-gcc", ARM_HINT)
    import subprocess

    sources = model_sources(pooled, 2)
    for name, text in sources.items():
        (tmp_path / name).write_text(text)
    for name in ("model.c", "weights.c"):
        result = subprocess.run(
            ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-std=c99", "-O2", "-Wall",
             "-Wextra", "-Werror", "-ffreestanding", "-c", name, "-o", name + ".o"],
            cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kind", CONV_KINDS)
@settings(max_examples=examples(3))
@given(h=st.integers(3, 9), groups=st.integers(1, 3), cout=st.integers(1, 9),
       stride=st.integers(1, 2), padding=st.integers(0, 1), act_bits=st.integers(1, 8),
       seed=st.integers(0, 2**16))
def test_a_conv_layer_source_computes_its_reference(kind, h, groups, cout, stride, padding,
                                                     act_bits, seed):
    require_cc()
    shape = ConvShape(h, h, 8 * groups, cout, 3, 3, stride, padding)
    layer = conv_layer_source(kind, shape, act_bits, pool_size=32, seed=seed)
    bits = act_bits if kind == "bitserial" else 8
    x = np.random.default_rng(seed).integers(0, 1 << bits, (h, h, 8 * groups)).astype(np.uint8)
    assert layer.input_size == x.size
    np.testing.assert_array_equal(host_layer(layer)(x), layer.reference(x).reshape(-1))


@pytest.mark.toolchain
def test_the_smlad_layer_uses_the_dual_multiply_accumulate_on_cortex_m4(tmp_path):
    require_tool("arm-none-eabi-gcc", ARM_HINT)
    import subprocess

    layer = conv_layer_source("int8_smlad", ConvShape(6, 6, 8, 8, 3, 3, 1, 1))
    (tmp_path / "layer.c").write_text(layer.source)
    assembly = {}
    for cpu in ("cortex-m4", "cortex-m3"):
        result = subprocess.run(["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", "-std=c99",
                                 "-O2", "-Wall", "-Werror", "-S", "-o", "-", "layer.c"],
                                cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assembly[cpu] = result.stdout
    assert "\tsmlad\t" in assembly["cortex-m4"]
    assert "\tsmlad\t" not in assembly["cortex-m3"]


def test_an_unknown_layer_kind_is_refused():
    with pytest.raises(qc.QuiltError, match="conv kind 'int4' is unknown; use one of int8_plain"):
        conv_layer_source("int4", ConvShape(4, 4, 8, 8, 3, 3))


def _drawn_block(data, extents, largest):
    """None (the recipe's default block) or a register block whose every extent divides
    the loop it blocks (`extents`), as an explicit block must."""
    if not data.draw(st.booleans()):
        return None
    return {"block": tuple(data.draw(st.sampled_from(
        [size for size in range(1, largest + 1) if extent % size == 0])) for extent in extents)}


@settings(max_examples=examples(6))
@given(data=st.data(), h=st.integers(5, 9), w=st.integers(5, 9), channels=st.integers(1, 9),
       kernel=st.sampled_from([1, 3, 5]), stride=st.integers(1, 2), padding=st.integers(0, 2),
       seed=st.integers(0, 2**16))
def test_a_depthwise_layer_source_computes_its_reference(data, h, w, channels, kernel, stride,
                                                         padding, seed):
    require_cc()
    shape = ConvShape(h, w, channels, channels, kernel, kernel, stride, padding)
    schedule = _drawn_block(data, (shape.ow, channels), 4)
    layer = depthwise_layer_source(shape, seed=seed, schedule=schedule)
    x = np.random.default_rng(seed).integers(0, 256, (h, w, channels)).astype(np.uint8)
    expected = layer.reference(x)
    assert layer.kind == "int8_depthwise" and expected.shape == (shape.oh, shape.ow, channels)
    # `parameters` are the numpy reference's own tables, as a baseline rebuilds the layer.
    np.testing.assert_array_equal(q.depthwise_conv2d_int(
        x[None], **layer.parameters, stride=stride, padding=padding, out_min=0,
        out_max=255)[0], expected)
    np.testing.assert_array_equal(host_layer(layer)(x), expected.reshape(-1))


@settings(max_examples=examples(6))
@given(data=st.data(), cin=st.integers(1, 300), cout=st.integers(1, 20),
       seed=st.integers(0, 2**16))
def test_a_dense_layer_source_computes_its_reference(data, cin, cout, seed):
    require_cc()
    schedule = {**(_drawn_block(data, (cout,), 8) or {}),
                "variant": data.draw(st.sampled_from(["plain", "smlad"]))}
    layer = dense_layer_source(cin, cout, seed=seed, schedule=schedule)
    x = np.random.default_rng(seed).integers(0, 256, cin).astype(np.uint8)
    expected = layer.reference(x)
    assert (layer.kind, layer.input_size, layer.output_size) == ("int8_dense", cin, cout)
    np.testing.assert_array_equal(q.dense_int(x[None], **layer.parameters, out_min=0,
                                              out_max=255)[0], expected)
    np.testing.assert_array_equal(host_layer(layer)(x), expected)


@pytest.mark.toolchain
@pytest.mark.parametrize("core", ["m3", "m4"])
def test_the_depthwise_and_dense_layers_run_their_reference_under_unicorn(tmp_path, core):
    require_tool(mcu_toolchain.COMPILER, mcu_toolchain.MCU_INSTALL_HINT)
    pytest.importorskip("unicorn", reason="install the test extra: pip install -e '.[test]'")
    from quiltc.runtime_c.unicorn_run import call_function

    shape = ConvShape(6, 5, 8, 8, 3, 3, 1, 1)
    rng = np.random.default_rng(4)
    for name, layer, x in (
            ("depthwise", depthwise_layer_source(shape, seed=2),
             rng.integers(0, 256, (6, 5, 8)).astype(np.uint8)),
            ("dense", dense_layer_source(41, 12, seed=3, schedule={"variant": "smlad"}),
             rng.integers(0, 256, 41).astype(np.uint8))):
        elf = mcu_toolchain.compile_elf({"layer.c": layer.source}, board_for_core(core).machine,
                                        tmp_path / name, [layer.function])
        call = call_function(elf, layer.function, [x, np.zeros(layer.output_size, np.uint8)],
                             core=core)
        np.testing.assert_array_equal(call.arrays[1], layer.reference(x).reshape(-1))


def test_a_depthwise_layer_that_changes_its_channels_and_an_empty_dense_layer_are_refused():
    with pytest.raises(qc.QuiltError, match="cin=8 and cout=16; pass cout=8"):
        depthwise_layer_source(ConvShape(4, 4, 8, 16, 3, 3))
    with pytest.raises(qc.QuiltError, match="a dense layer 0 -> 4 needs whole numbers"):
        dense_layer_source(0, 4)
