"""The build cache: shared objects stored under a key that hashes the source, the flags,
the compiler version and the host, so an entry is only ever reused where it is valid.

Layout, under $QUILTC_CACHE_DIR (default ~/.cache/quiltc):

    ab/abcd...ef.c             the source the object was built from (kept for reading)
    ab/abcd...ef.so            the shared object
    ab/abcd...ef.so.sha256     the object's sha256, written after it

Every file is written to a temporary name in the same folder and renamed into place, so
a reader never sees half a file and two processes building the same kernel at once both
succeed. An entry whose object does not match its checksum, or fails to load, is rebuilt.
Loaded libraries are also kept in memory, so building the same kernel again is a lookup.
"""

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cffi

from ..ir.errors import BuildError, QuiltError


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


def write_atomically(path, data):
    """Write `data` (bytes) to `path` through a temporary file renamed into place."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
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
            return self.loaded[memory_key]
        path = directory / key[:2] / f"{key}.so"
        library = self._open_checked(path, signature)
        if library is None:
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
            if checksum.read_text().strip() != file_digest(path):
                return None
            return _open(path, signature)
        except OSError:
            return None

    @staticmethod
    def _build(source, path, toolchain):
        source_path = path.with_suffix(".c")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(source_path, source.encode())
        except OSError as error:
            raise QuiltError(f"cannot write the build cache at {path.parent}: {error}; set "
                             "QUILTC_CACHE_DIR to a writable folder") from None
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(descriptor)
        temporary = Path(temporary)
        try:
            toolchain.compile(source_path, temporary)
            digest = file_digest(temporary)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        write_atomically(path.with_name(path.name + ".sha256"), digest.encode())


DEFAULT_CACHE = LibraryCache()
