"""The nvcc driver: compiles generated CUDA C++ to PTX and cubin for each GPU architecture,
and, where a GPU runs it, to a shared object whose host launcher cffi calls.

    binaries = compile_cuda(source)        # CudaBinaries: ptx/cubin per architecture
    binaries.ptx["sm_90"]                  # PTX text

`NVCC` picks the compiler (default `nvcc`); PTX becomes cubin through `ptxas` beside it.
Results are cached like the C target's objects (runtime_c/cache.py): under a key hashing
the source, the flags and nvcc's version, written atomically, checked against their
digests and rebuilt when an entry is incomplete or corrupt.
"""

import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..ir.errors import BuildError, QuiltError, ToolchainMissing
from .cache import cache_directory, file_digest, write_atomically
from .toolchain import Toolchain, compiler_version, first_error_lines

INSTALL_HINT = ("install the CUDA toolkit (https://developer.nvidia.com/cuda-downloads, or "
                "apt-get install -y nvidia-cuda-toolkit) and put nvcc on PATH or in NVCC")
ARCHITECTURES = ("sm_80", "sm_90")
log = logging.getLogger(__name__)
DEVICE_FLAGS = ("-O3", "-std=c++17", "-x", "cu")
# The shared object for a real GPU: device code for both architectures plus PTX of the
# newest for later GPUs to JIT, and the host launcher position-independent for dlopen.
SHARED_FLAGS = DEVICE_FLAGS + ("-shared", "-Xcompiler", "-fPIC") + tuple(
    flag for arch in ARCHITECTURES
    for flag in ("-gencode", f"arch=compute_{arch[3:]},code={arch}")) + (
    "-gencode", f"arch=compute_{ARCHITECTURES[-1][3:]},code=compute_{ARCHITECTURES[-1][3:]}")


@dataclass(frozen=True)
class CudaBinaries:
    """What nvcc made of one source: {architecture: PTX text} and {architecture: cubin}."""

    ptx: dict
    cubin: dict


def find_nvcc():
    """The nvcc command `NVCC` names (default `nvcc`); ToolchainMissing when absent."""
    command = tuple(shlex.split(os.environ.get("NVCC") or "nvcc"))
    if not command or shutil.which(command[0]) is None:
        raise ToolchainMissing(command[0] if command else "nvcc", INSTALL_HINT)
    return command


def ptxas_command(nvcc):
    """ptxas from nvcc's folder (else from PATH)."""
    beside = Path(shutil.which(nvcc[0])).parent / "ptxas"
    found = str(beside) if beside.exists() else shutil.which("ptxas")
    if found is None:
        raise ToolchainMissing("ptxas", INSTALL_HINT)
    return found


def shared_toolchain():
    """The toolchain that builds a .cu into a shared object for a real GPU."""
    return Toolchain(find_nvcc(), SHARED_FLAGS)


def _key(source, nvcc):
    text = "\0".join([source, " ".join(DEVICE_FLAGS), " ".join(ARCHITECTURES),
                      compiler_version(nvcc)])
    return hashlib.sha256(text.encode()).hexdigest()


def _run(arguments, name, source_path):
    log.info("%s", shlex.join(arguments))
    try:
        result = subprocess.run(arguments, capture_output=True, text=True)
    except FileNotFoundError:
        raise ToolchainMissing(arguments[0], INSTALL_HINT) from None
    if result.returncode != 0:
        raise BuildError(name, first_error_lines(result.stderr or result.stdout), str(source_path))


def _compile(nvcc, source_path, folder):
    """nvcc -ptx for every architecture at once (one process each), then ptxas to cubin."""
    processes = {}
    for arch in ARCHITECTURES:
        arguments = [*nvcc, *DEVICE_FLAGS, "-ptx", f"-arch={arch}", "-o",
                     str(folder / f"{arch}.ptx"), str(source_path)]
        log.info("%s", shlex.join(arguments))
        try:
            processes[arch] = subprocess.Popen(arguments, stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE, text=True)
        except FileNotFoundError:
            raise ToolchainMissing(nvcc[0], INSTALL_HINT) from None
    for _arch, process in processes.items():
        output, errors = process.communicate()
        if process.returncode != 0:
            raise BuildError(" ".join(nvcc), first_error_lines(errors or output), str(source_path))
    ptxas = ptxas_command(nvcc)
    for arch in ARCHITECTURES:
        _run([ptxas, f"-arch={arch}", "-o", str(folder / f"{arch}.cubin"),
              str(folder / f"{arch}.ptx")], ptxas, source_path)


def _load(manifest_path):
    """The cached binaries named by `manifest_path`, or None when any is missing or corrupt."""
    try:
        manifest = json.loads(manifest_path.read_text())
        files = {name: manifest_path.with_name(name) for name in manifest}
        if any(file_digest(path) != manifest[name] for name, path in files.items()):
            return None
        return CudaBinaries(
            {arch: files[f"{manifest_path.stem}.{arch}.ptx"].read_text() for arch in ARCHITECTURES},
            {arch: files[f"{manifest_path.stem}.{arch}.cubin"].read_bytes()
             for arch in ARCHITECTURES})
    except (OSError, ValueError, KeyError):
        return None


def compile_cuda(source, directory=None):
    """PTX and cubin of `source` for every architecture in ARCHITECTURES, from the cache
    under `directory` (default: cache_directory()/cuda) or built by nvcc on a miss."""
    nvcc = find_nvcc()
    key = _key(source, nvcc)
    folder = Path(directory or cache_directory() / "cuda") / key[:2]
    manifest_path = folder / f"{key}.json"
    cached = _load(manifest_path)
    if cached is not None:
        log.info("cache hit: %s", manifest_path)
        return cached
    try:
        folder.mkdir(parents=True, exist_ok=True)
        source_path = folder / f"{key}.cu"
        write_atomically(source_path, source.encode())
    except OSError as error:
        raise QuiltError(f"cannot write the build cache at {folder}: {error}; set "
                         "QUILTC_CACHE_DIR to a writable folder") from None
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        scratch = Path(scratch)
        _compile(nvcc, source_path, scratch)
        digests = {}
        for built in sorted(scratch.iterdir()):
            name = f"{key}.{built.name}"
            write_atomically(folder / name, built.read_bytes())
            digests[name] = file_digest(folder / name)
    write_atomically(manifest_path, json.dumps(digests, sort_keys=True).encode())
    return _load(manifest_path)
