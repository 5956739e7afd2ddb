"""A minimal reader for the 32-bit little-endian ELF files arm-none-eabi-gcc writes: the
loadable segments (what an emulator puts in memory) and the function and data symbols
(where to call in). Just enough for emulated runs; no dependency beyond the standard
library."""

import pathlib
import struct
from dataclasses import dataclass

from ..ir.errors import QuiltError

_PT_LOAD = 1
_SHT_SYMTAB = 2


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD segment: `data` (file bytes, zero-filled to memsz) lives at `address` when
    the program runs and is stored at `load_address` (they differ for initialised data)."""

    address: int
    load_address: int
    data: bytes


@dataclass(frozen=True)
class ElfImage:
    """The loadable contents of an ELF file and its symbol addresses (Thumb bit cleared)."""

    path: str
    entry: int
    segments: tuple
    symbols: dict

    def symbol(self, name):
        """The address of symbol `name`, or a QuiltError listing what the file defines."""
        if name not in self.symbols:
            functions = ", ".join(sorted(n for n in self.symbols if not n.startswith("_"))[:20])
            raise QuiltError(f"{self.path} defines no symbol {name!r} (it has: {functions})")
        return self.symbols[name]

    def end_above(self, floor):
        """The first address past every segment placed at or above `floor` (else `floor`)."""
        return max([floor] + [segment.address + len(segment.data)
                              for segment in self.segments if segment.address >= floor])


def read_elf(path):
    """Parse the ELF file at `path` into an ElfImage."""
    raw = pathlib.Path(path).read_bytes()
    if raw[:4] != b"\x7fELF" or raw[4] != 1 or raw[5] != 1:
        raise QuiltError(f"{path} is not a 32-bit little-endian ELF file")
    (entry, phoff, shoff) = struct.unpack_from("<III", raw, 24)
    (phentsize, phnum, shentsize, shnum) = struct.unpack_from("<HHHH", raw, 42)
    segments = []
    for n in range(phnum):
        kind, offset, vaddr, paddr, filesz, memsz = struct.unpack_from(
            "<IIIIII", raw, phoff + n * phentsize)
        if kind == _PT_LOAD and memsz:
            data = raw[offset:offset + filesz] + bytes(memsz - filesz)
            segments.append(Segment(vaddr, paddr, data))
    sections = [struct.unpack_from("<IIIIIIIIII", raw, shoff + n * shentsize)
                for n in range(shnum)]
    symbols = {}
    for section in sections:
        if section[1] != _SHT_SYMTAB:
            continue
        strings = sections[section[6]]
        string_table = raw[strings[4]:strings[4] + strings[5]]
        for offset in range(section[4], section[4] + section[5], 16):
            name_at, value = struct.unpack_from("<II", raw, offset)
            name = string_table[name_at:string_table.index(b"\0", name_at)].decode()
            if name and not name.startswith("$"):
                symbols[name] = value & ~1
    return ElfImage(str(path), entry & ~1, tuple(segments), symbols)
