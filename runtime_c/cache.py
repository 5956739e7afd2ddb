"""The build cache: shared objects stored under a key that hashes the source, the flags,
the compiler version and the host, so an entry is only ever reused where it is valid.

Layout, under $QUILTC_CACHE_DIR (default ~/.cache/quiltc):

    ab/abcd...ef.c             the source the object was built from (kept for reading)
    ab/abcd...ef.so            the shared object
    ab/abcd...ef.so.sha256     the object's sha256, written after it

Every file is written to a temporary name in the same folder (`NAME.PID.RANDOM.tmp`) and
renamed into place, so a reader never sees half a file and two processes building the
same kernel at once both succeed; the temporaries of a writer that died (kill -9) are
swept by the next build in that folder. An entry whose object does not match its
checksum, whose ELF segments run past the end of the file (dlopen would map pages that do
not exist: SIGBUS), or that fails to load, is rebuilt. Loaded libraries are also kept in
memory, so building the same kernel again is a lookup.
"""

import hashlib
import logging
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cffi

from ..ir.errors import BuildError, QuiltError

log = logging.getLogger(__name__)


def cache_directory():
    """Where compiled kernels are kept: $QUILTC_CACHE_DIR, else ~/.cache/quiltc."""
    configured = os.environ.get("QUILTC_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "quiltc"


def cache_key(source, toolchain):
    """The sha256 naming the object built from `source` by `toolchain` on this host."""
    text = "\0".join([source, toolchain.identity()])
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Library:
    """A loaded shared object: its path, the cffi instance that declares its functions,
    and the handle to call them through."""

    path: Path
    ffi: cffi.FFI
    handle: object


def file_digest(path):
    """The sha256 of the file at `path`, in hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def temporary_beside(path):
    """(descriptor, path) of a new temporary file in `path`'s folder, named after `path`
    and this process so that `sweep_stale_temporaries` can tell when its writer is gone."""
    return tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.{os.getpid()}.", suffix=".tmp")


def _writer_gone(temporary):
    """Whether the process that created `temporary` (its name carries the pid) has ended,
    or the file is a day old (a pid reused since)."""
    try:
        pid = int(temporary.name.split(".")[-3])
        if time.time() - temporary.stat().st_mtime > 24 * 3600:
            return True
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (ValueError, IndexError, OSError):
        return False
    return False


def sweep_stale_temporaries(folder):
    """Remove the temporaries in `folder` whose writers died before renaming them."""
    for temporary in Path(folder).glob("*.tmp"):
        if _writer_gone(temporary):
            temporary.unlink(missing_ok=True)


def write_atomically(path, data):
    """Write `data` (bytes) to `path` through a temporary file renamed into place."""
    descriptor, temporary = temporary_beside(path)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _open(path, signature):
    ffi = cffi.FFI()
    ffi.cdef(signature)
    return Library(path, ffi, ffi.dlopen(str(path)))


def _elf_complete(raw):
    """Whether every segment of the 64-bit ELF image `raw` lies inside it."""
    if len(raw) < 64 or raw[:4] != b"\x7fELF" or raw[4] != 2:
        return False
    program_headers, = struct.unpack_from("<Q", raw, 32)
    entry_size, count = struct.unpack_from("<HH", raw, 54)
    if program_headers + entry_size * count > len(raw):
        return False
    for n in range(count):
        offset, = struct.unpack_from("<Q", raw, program_headers + n * entry_size + 8)
        file_size, = struct.unpack_from("<Q", raw, program_headers + n * entry_size + 32)
        if offset + file_size > len(raw):
            return False
    return True


def _remove_damaged(path):
    """Clear whatever stands at `path` where an entry's file belongs (a folder, a link)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.is_symlink():
        path.unlink(missing_ok=True)


class LibraryCache:
    """Compiled kernels on disk (in `directory`, default `cache_directory()`) and in memory."""

    def __init__(self, directory=None):
        self.directory = directory
        self.loaded = {}

    def load(self, source, signature, toolchain):
        """The library built from `source` (declared to cffi by `signature`), built on a miss."""
        toolchain.check_loadable()
        directory = Path(self.directory or cache_directory())
        key = cache_key(source, toolchain)
        memory_key = (str(directory), key, signature)
        if memory_key in self.loaded:
            log.debug("cache hit in memory: %s", key)
            return self.loaded[memory_key]
        path = directory / key[:2] / f"{key}.so"
        library = self._open_checked(path, signature)
        if library is not None:
            log.info("cache hit: %s", path)
        else:
            log.debug("cache miss: building %s", path)
            self._build(source, path, toolchain)
            try:
                library = _open(path, signature)
            except OSError as error:
                raise BuildError(toolchain.name, f"loading the built object failed: {error}",
                                 str(path.with_suffix(".c"))) from None
        self.loaded[memory_key] = library
        return library

    @staticmethod
    def _open_checked(path, signature):
        """The library at `path` if it is complete and loads, else None (rebuild it)."""
        checksum = path.with_name(path.name + ".sha256")
        try:
            raw = path.read_bytes()
            if (checksum.read_text().strip() != hashlib.sha256(raw).hexdigest()
                    or not _elf_complete(raw)):
                return None
            # Opened by its own path: dlopen tells loaded objects apart by name, so a
            # shared name (such as /proc/self/fd/3) would hand back another library.
            return _open(path, signature)
        except (OSError, UnicodeDecodeError):
            return None

    @staticmethod
    def _build(source, path, toolchain):
        source_path = path.with_suffix(".c")
        checksum = path.with_name(path.name + ".sha256")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            sweep_stale_temporaries(path.parent)
            for entry_file in (source_path, path, checksum):
                _remove_damaged(entry_file)
            write_atomically(source_path, source.encode())
            descriptor, temporary = temporary_beside(path)
            os.close(descriptor)
        except OSError as error:
            raise QuiltError(f"cannot write the build cache at {path.parent}: {error}; free "
                             "space there or set QUILTC_CACHE_DIR to a writable folder") from None
        temporary = Path(temporary)
        try:
            toolchain.compile(source_path, temporary)
            digest = file_digest(temporary)
            os.replace(temporary, path)
            write_atomically(checksum, digest.encode())
        except OSError as error:
            raise QuiltError(f"cannot write the build cache at {path.parent}: {error}; free "
                             "space there or set QUILTC_CACHE_DIR to a writable folder") from None
        finally:
            temporary.unlink(missing_ok=True)


# What quiltc keeps in the cache folder, by kind: {kind: glob patterns under it}.
CACHE_KINDS = {
    "compiled kernels": ("[0-9a-f][0-9a-f]/*.so",),
    "CUDA builds": ("cuda/*/*.json",),
    "fused graphs": ("graphs/*.json",),
    "trained models": ("digits_cnn_*.npz",),
    "fusion rule overrides": ("fusion_overrides.json",),
}
_CACHE_TREES = ("[0-9a-f][0-9a-f]", "cuda", "graphs")
_CACHE_FILES = ("digits_cnn_*.npz", "fusion_overrides.json")


def _quiltc_paths(directory):
    """Every file and folder of `directory` that quiltc wrote (its entries' folders whole)."""
    trees = [path for pattern in _CACHE_TREES for path in directory.glob(pattern)
             if path.is_dir()]
    files = [path for pattern in _CACHE_FILES for path in directory.glob(pattern)]
    return trees, files


def cache_contents(directory=None):
    """(folder, {kind: entries}, bytes): what the cache at `directory` (default
    `cache_directory()`) holds, counted by kind, and the bytes of all of it."""
    directory = Path(directory or cache_directory())
    counts = {kind: sum(len(list(directory.glob(pattern))) for pattern in patterns)
              for kind, patterns in CACHE_KINDS.items()}
    trees, files = _quiltc_paths(directory)
    size = sum(path.stat().st_size for tree in trees for path in tree.rglob("*")
               if path.is_file())
    size += sum(path.stat().st_size for path in files)
    return directory, counts, size


def clear_cache(directory=None):
    """Remove what quiltc wrote in the cache folder (other files there stay) and forget
    the libraries loaded from it; returns the bytes freed."""
    directory = Path(directory or cache_directory())
    _, _, size = cache_contents(directory)
    trees, files = _quiltc_paths(directory)
    for tree in trees:
        shutil.rmtree(tree, ignore_errors=True)
    for path in files:
        path.unlink(missing_ok=True)
    DEFAULT_CACHE.loaded.clear()
    return size


DEFAULT_CACHE = LibraryCache()
