"""The toolchain driver: compiler errors become BuildError with the compiler's first lines
and the kept source; a missing compiler becomes ToolchainMissing with the install command."""

from pathlib import Path

import pytest

import quiltc as qc
from quiltc.codegen import c_signature, render_c
from quiltc.ir.errors import BuildError, QuiltError, ToolchainMissing
from quiltc.runtime_c.cache import LibraryCache
from quiltc.runtime_c.toolchain import (
    compiler_version,
    find_toolchain,
    first_error_lines,
    sanitizer_runtime_loaded,
)

from support.helpers import require_cc


def _kernel():
    n = qc.var("n", 1, 64)
    x = qc.placeholder((n,), "float32", "x")
    return qc.lower(qc.compute((n,), lambda i: qc.exp(x[i]), "y"), name="exponent")


def test_bad_c_raises_build_error_with_first_lines_and_kept_source(tmp_path):
    require_cc()
    kernel = _kernel()
    broken = render_c(kernel).replace("expf(x[i]);", "expf(x[i]) +;")
    with pytest.raises(BuildError, match=r"error: expected expression") as caught:
        LibraryCache(tmp_path).load(broken, c_signature(kernel), find_toolchain())
    error = caught.value
    assert Path(error.source_path).read_text() == broken
    assert error.first_lines.splitlines()[0].count("error") >= 1
    assert len(error.first_lines.splitlines()) <= 12
    assert f"kept at {error.source_path}" in str(error)
    assert not list(tmp_path.rglob("*.so*")), "a failed build left an object behind"


def test_a_missing_compiler_raises_toolchain_missing_with_the_install_command(monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/quiltc-cc")
    with pytest.raises(ToolchainMissing, match=r"/nonexistent/quiltc-cc was not found on PATH. "
                                               r"Install it with: apt-get install -y gcc"):
        qc.build(_kernel())


def test_cc_picks_the_compiler_and_may_carry_arguments(monkeypatch):
    require_cc()
    monkeypatch.setenv("CC", "gcc -Wno-unused")
    toolchain = find_toolchain()
    assert toolchain.command == ("gcc", "-Wno-unused")
    assert toolchain.flags[:6] == ("-O3", "-march=native", "-fopenmp", "-fPIC", "-shared",
                                   "-std=c99")
    assert "gcc" in compiler_version(toolchain.command).lower()
    assert compiler_version(toolchain.command) is compiler_version(toolchain.command)


def test_sanitize_adds_the_sanitizer_flags():
    require_cc()
    flags = find_toolchain(sanitize=True).flags
    assert "-fsanitize=address,undefined" in flags and "-fno-omit-frame-pointer" in flags


def test_a_sanitized_build_is_refused_where_loading_it_would_abort():
    require_cc()
    if sanitizer_runtime_loaded():
        pytest.skip("this process preloads libasan, so the sanitized object would load")
    with pytest.raises(QuiltError, match=r"sanitize=True build loads only into a process that "
                                         r"preloaded the AddressSanitizer runtime: run python "
                                         r"with LD_PRELOAD="):
        qc.build(_kernel(), sanitize=True)


def test_first_error_lines_start_at_the_first_error():
    output = "a.c: In function 'f':\na.c:3:1: error: boom\n  3 | x\n" + "more\n" * 30
    lines = first_error_lines(output).splitlines()
    assert lines[0] == "a.c:3:1: error: boom" and len(lines) == 12


def test_an_unwritable_cache_folder_is_named_with_the_fix(tmp_path, monkeypatch):
    require_cc()
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("QUILTC_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(QuiltError, match=r"cannot write the build cache at .*a_file/cache/.*; "
                                         r"free space there or set QUILTC_CACHE_DIR to a "
                                         r"writable folder"):
        qc.build(_kernel(), name="uncached")
