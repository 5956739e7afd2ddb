"""The build cache: in-memory hits, reuse across processes, atomic concurrent builds,
and detection of corrupt entries."""

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import quiltc as qc
from quiltc.codegen import c_signature, render_c
from quiltc.runtime_c.cache import LibraryCache, cache_key
from quiltc.runtime_c.toolchain import find_toolchain

from support.helpers import require_cc


@pytest.fixture(autouse=True)
def _compiler():
    require_cc()


def _scale_kernel(name):
    n = qc.var("n", 1, 64)
    x = qc.placeholder((n,), "float32", "x")
    y = qc.compute((n,), lambda i: x[i] * 2.0 + 1.0, "y")
    return qc.lower(y, name=name)


# Builds _scale_kernel(NAME) in a fresh interpreter, checks it, prints the library path.
_BUILD_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import quiltc as qc
    start_at = float(sys.argv[2])
    n = qc.var("n", 1, 64)
    x = qc.placeholder((n,), "float32", "x")
    y = qc.compute((n,), lambda i: x[i] * 2.0 + 1.0, "y")
    kernel = qc.lower(y, name=sys.argv[1])
    time.sleep(max(0.0, start_at - time.time()))
    fn = qc.build(kernel)
    values = np.arange(5, dtype=np.float32)
    assert np.array_equal(fn(x=values), values * 2 + 1)
    print(fn.library_path)
""")


def _start_build(name, cache_directory, start_at=0.0):
    environment = dict(os.environ, QUILTC_CACHE_DIR=str(cache_directory))
    return subprocess.Popen([sys.executable, "-c", _BUILD_SCRIPT, name, str(start_at)],
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _finish(process):
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    return Path(stdout.strip())


def _checksum_holds(path):
    recorded = path.with_name(path.name + ".sha256").read_text().strip()
    return recorded == hashlib.sha256(path.read_bytes()).hexdigest()


def _load(kernel, directory):
    return LibraryCache(directory).load(render_c(kernel), c_signature(kernel), find_toolchain())


def _run(library, kernel):
    values = np.arange(5, dtype=np.float32)
    out = np.empty(5, np.float32)
    ffi = library.ffi
    getattr(library.handle, kernel.name)(ffi.cast("float *", values.ctypes.data),
                                         ffi.cast("float *", out.ctypes.data), 5)
    np.testing.assert_array_equal(out, values * 2 + 1)


def test_a_second_build_of_the_same_kernel_is_a_memory_hit(tmp_path, monkeypatch, c_compiles):
    monkeypatch.setenv("QUILTC_CACHE_DIR", str(tmp_path))
    kernel = _scale_kernel("memory_hit")
    first = qc.build(kernel)
    assert len(c_compiles) == 1
    # with the disk entry gone, only the library kept in memory can serve the second build
    for entry in tmp_path.rglob("*"):
        if entry.is_file():
            entry.unlink()
    second = qc.build(kernel)
    assert len(c_compiles) == 1, "the second build compiled the kernel again"
    assert second.library_path == first.library_path
    values = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(second(x=values), values * 2 + 1)


def test_entries_are_source_object_and_checksum_under_the_key(tmp_path):
    kernel = _scale_kernel("layout")
    library = _load(kernel, tmp_path)
    key = cache_key(render_c(kernel), find_toolchain())
    assert library.path == tmp_path / key[:2] / f"{key}.so"
    assert library.path.with_suffix(".c").read_text() == render_c(kernel)
    assert _checksum_holds(library.path)
    assert not list(tmp_path.rglob("*.tmp")), "temporary files were left behind"


def test_the_key_covers_source_and_flags():
    toolchain = find_toolchain()
    source = render_c(_scale_kernel("keyed"))
    assert cache_key(source, toolchain) != cache_key(source + "\n", toolchain)
    assert cache_key(source, toolchain) != cache_key(source, find_toolchain(sanitize=True))


def test_changing_the_cache_directory_builds_there(tmp_path, monkeypatch):
    kernel = _scale_kernel("moved")
    qc.build(kernel)
    monkeypatch.setenv("QUILTC_CACHE_DIR", str(tmp_path))
    assert Path(qc.build(kernel).library_path).parent.parent == tmp_path


@pytest.mark.slow
def test_a_fresh_process_reuses_the_disk_entry(tmp_path):
    path = _finish(_start_build("reused", tmp_path))
    inode = path.stat().st_ino
    assert _finish(_start_build("reused", tmp_path)) == path
    assert path.stat().st_ino == inode, "the second process rebuilt the object"


@pytest.mark.slow
def test_processes_building_the_same_new_kernel_at_once_all_succeed(tmp_path):
    start_at = time.time() + 2.0  # after every interpreter has started
    processes = [_start_build("raced", tmp_path, start_at) for _ in range(3)]
    paths = {_finish(process) for process in processes}
    assert len(paths) == 1
    assert _checksum_holds(paths.pop())
    assert not list(tmp_path.rglob("*.tmp"))


def _replace_with(path, data):
    """Swap in new bytes under `path` (a new file: objects already mapped stay intact)."""
    fresh = path.with_name("corrupt.bytes")
    fresh.write_bytes(data)
    os.replace(fresh, path)


def test_a_corrupt_or_truncated_object_fails_its_checksum_and_is_rebuilt(tmp_path):
    kernel = _scale_kernel("corrupted")
    path = _load(kernel, tmp_path).path
    good = path.read_bytes()
    for damaged in (good[: len(good) // 2], b"\0" * len(good)):
        _replace_with(path, damaged)
        assert not _checksum_holds(path)
        library = _load(kernel, tmp_path)
        assert library.path == path and path.read_bytes() != damaged and _checksum_holds(path)
        _run(library, kernel)


def test_an_object_that_will_not_load_is_rebuilt_even_with_a_matching_checksum(tmp_path):
    kernel = _scale_kernel("unloadable")
    path = _finish(_start_build("unloadable", tmp_path))  # never mapped by this process
    garbage = b"not an ELF object"
    _replace_with(path, garbage)
    path.with_name(path.name + ".sha256").write_text(hashlib.sha256(garbage).hexdigest())
    library = _load(kernel, tmp_path)
    assert path.read_bytes() != garbage and _checksum_holds(path)
    _run(library, kernel)
