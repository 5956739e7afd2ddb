"""The build cache survives what goes wrong around it: a builder killed mid-build, a
folder where an entry's file belongs, an object truncated under a checksum rewritten to
match, a full disk. Each leaves a cache that rebuilds, loads and computes correctly, with
no stale temporaries after the next build."""

import errno
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import quiltc as qc
from quiltc.codegen import c_signature, render_c
from quiltc.runtime_c import cache
from quiltc.runtime_c.cache import LibraryCache, cache_key
from quiltc.runtime_c.toolchain import find_toolchain

from support.helpers import require_cc


@pytest.fixture(autouse=True)
def _compiler():
    require_cc()


def _kernel():
    x = qc.placeholder((5,), "float32", "x")
    return qc.lower(qc.compute((5,), lambda i: x[i] * np.float32(2.0), "y"), name="faulted")


def _entry(directory):
    kernel = _kernel()
    key = cache_key(render_c(kernel), find_toolchain())
    return kernel, Path(directory) / key[:2] / f"{key}.so"


def _load_and_run(directory):
    kernel = _kernel()
    library = LibraryCache(directory).load(render_c(kernel), c_signature(kernel),
                                           find_toolchain())
    values = np.arange(5, dtype=np.float32)
    out = np.empty(5, np.float32)
    library.handle.faulted(library.ffi.cast("float *", values.ctypes.data),
                           library.ffi.cast("float *", out.ctypes.data))
    np.testing.assert_array_equal(out, values * 2)
    return library


BUILD = textwrap.dedent("""
    import numpy as np, quiltc as qc
    x = qc.placeholder((5,), "float32", "x")
    qc.build(qc.lower(qc.compute((5,), lambda i: x[i] * np.float32(2.0), "y"), name="faulted"))
""")


def test_a_builder_killed_mid_build_leaves_nothing_after_the_next_build(tmp_path):
    compiler = tmp_path / "slow-cc"
    # The same compiler, slowed down: its --version (and so the cache key) is cc's.
    compiler.write_text('#!/bin/sh\ncase "$1" in --version) exec cc --version;; esac\n'
                        'sleep 60\nexec cc "$@"\n')
    compiler.chmod(0o755)
    directory = tmp_path / "cache"
    builder = subprocess.Popen([sys.executable, "-c", BUILD], env=dict(
        os.environ, CC=str(compiler), QUILTC_CACHE_DIR=str(directory)))
    deadline = time.time() + 60
    while not list(directory.rglob("*.so.*.tmp")) and time.time() < deadline:
        time.sleep(0.1)
    assert list(directory.rglob("*.so.*.tmp")), "the builder never started compiling"
    builder.send_signal(signal.SIGKILL)
    builder.wait(timeout=30)
    assert list(directory.rglob("*.tmp")), "the killed build left no temporary to sweep"
    _load_and_run(directory)
    assert not list(directory.rglob("*.tmp"))


def _dead_pid():
    """The pid of a process that has exited: the writer of a killed build's temporaries."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _killed_build(stage, path, pid):
    """Leave in the cache what a build killed at `stage` leaves (see cache._build: the
    source, then the object compiled to a temporary and renamed in, then its checksum)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    source, checksum = path.with_suffix(".c"), path.with_name(path.name + ".sha256")

    def partial(target, data):
        target.with_name(f"{target.name}.{pid}.x1y2.tmp").write_bytes(data)

    whole = _whole_entry(path)
    if stage == "writing the source":
        partial(source, whole["source"][:40])
        return
    source.write_bytes(whole["source"])
    if stage == "before compiling":
        partial(path, b"")
    elif stage == "while compiling":
        partial(path, whole["object"][:1000])
    else:
        path.write_bytes(whole["object"])
        if stage == "writing the checksum":
            partial(checksum, whole["checksum"][:10])


_WHOLE = {}


def _whole_entry(path):
    """The bytes of a complete entry for the test kernel, built once in a side folder."""
    if not _WHOLE:
        side = path.parents[2] / "complete"
        _load_and_run(side)
        _, built = _entry(side)
        _WHOLE.update(source=built.with_suffix(".c").read_bytes(), object=built.read_bytes(),
                      checksum=built.with_name(built.name + ".sha256").read_bytes())
    return _WHOLE


@pytest.mark.parametrize("stage", ["writing the source", "before compiling", "while compiling",
                                   "after renaming the object", "writing the checksum"])
def test_a_build_killed_at_any_stage_rebuilds_loads_and_sweeps(tmp_path, stage):
    directory = tmp_path / "cache"
    _, path = _entry(directory)
    _killed_build(stage, path, _dead_pid())
    library = _load_and_run(directory)
    assert library.path == path
    assert not list(directory.rglob("*.tmp"))
    assert path.with_name(path.name + ".sha256").read_bytes() == _whole_entry(path)["checksum"]


def test_a_temporary_whose_writer_still_runs_is_kept(tmp_path):
    _, path = _entry(tmp_path)
    path.parent.mkdir(parents=True)
    alive = path.parent / f"{path.name}.{os.getpid()}.abc.tmp"
    alive.write_bytes(b"half an object")
    _load_and_run(tmp_path)
    assert alive.exists()


def test_a_folder_where_the_object_belongs_is_replaced(tmp_path):
    _, path = _entry(tmp_path)
    (path / "inside").mkdir(parents=True)
    library = _load_and_run(tmp_path)
    assert library.path == path and path.is_file()


def test_a_truncated_object_under_a_matching_checksum_is_rebuilt_not_mapped(tmp_path):
    _, path = _entry(tmp_path)
    _load_and_run(tmp_path)
    whole = path.read_bytes()
    truncated = whole[: len(whole) * 3 // 4]
    fresh = path.with_name("truncated.bytes")
    fresh.write_bytes(truncated)
    os.replace(fresh, path)  # a new file: the mapped object stays intact
    path.with_name(path.name + ".sha256").write_text(hashlib.sha256(truncated).hexdigest())
    _load_and_run(tmp_path)
    assert path.read_bytes() != truncated


def test_a_full_disk_while_writing_the_checksum_is_a_quilt_error(tmp_path, monkeypatch):
    real_write = cache.write_atomically

    def disk_full_for_checksums(path, data):
        if path.name.endswith(".sha256"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(cache, "write_atomically", disk_full_for_checksums)
    with pytest.raises(qc.QuiltError, match=r"cannot write the build cache at .*No space left "
                       r"on device; free space there or set QUILTC_CACHE_DIR"):
        _load_and_run(tmp_path)
    monkeypatch.undo()
    _load_and_run(tmp_path)
    assert not list(tmp_path.rglob("*.tmp"))


TWO_KERNELS = textwrap.dedent("""
    import numpy as np, quiltc as qc
    x = qc.placeholder((4,), "float32", "x")
    doubled = qc.build(qc.lower(qc.compute((4,), lambda i: x[i] * np.float32(2.0), "y"),
                                name="doubled"))
    tripled = qc.build(qc.lower(qc.compute((4,), lambda i: x[i] * np.float32(3.0), "y"),
                                name="tripled"))
    values = np.arange(4, dtype=np.float32)
    assert np.array_equal(doubled(x=values), values * 2)
    assert np.array_equal(tripled(x=values), values * 3)
""")


def test_several_kernels_load_from_disk_in_a_fresh_process(tmp_path):
    environment = dict(os.environ, QUILTC_CACHE_DIR=str(tmp_path))
    for run in ("builds them", "loads both from disk"):
        result = subprocess.run([sys.executable, "-c", TWO_KERNELS], env=environment,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"the run that {run}: {result.stderr[-2000:]}"
