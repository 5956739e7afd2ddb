"""The Cortex-M boards quiltc builds for: the MPS2 FPGA images QEMU emulates, each with
its core, compiler flags, memory sizes, and the unicorn CPU model that counts its
instructions. Projects are checked against a board's flash and RAM before they are built."""

from dataclasses import dataclass

from ..ir.errors import QuiltError

FLASH_ORIGIN = 0x00000000
RAM_ORIGIN = 0x20000000
_MIB = 1 << 20


@dataclass(frozen=True)
class Board:
    """One emulated board: `machine` is QEMU's -M name, `cpu` gcc's -mcpu name, `dsp`
    whether the core has the DSP extension (dual 16-bit MACs such as SMLAD)."""

    machine: str
    cpu: str
    dsp: bool
    float_flags: tuple
    flash_bytes: int
    ram_bytes: int
    stack_bytes: int = 8192

    @property
    def core(self):
        """The short core name used in reports: "m3", "m4", "m7"."""
        return self.cpu.removeprefix("cortex-")

    @property
    def compile_flags(self):
        """The flags that select this board's core and floating-point ABI."""
        return (f"-mcpu={self.cpu}", "-mthumb", *self.float_flags)


BOARDS = {
    board.machine: board
    for board in (
        Board("mps2-an385", "cortex-m3", False, ("-mfloat-abi=soft",), 4 * _MIB, 4 * _MIB),
        Board("mps2-an386", "cortex-m4", True, ("-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
              4 * _MIB, 4 * _MIB),
        Board("mps2-an500", "cortex-m7", True, ("-mfloat-abi=hard", "-mfpu=fpv5-d16"),
              4 * _MIB, 4 * _MIB),
    )
}


def find_board(name):
    """The board QEMU calls `name`, or a QuiltError listing the boards quiltc knows."""
    if name not in BOARDS:
        known = ", ".join(f"{b.machine} ({b.cpu})" for b in BOARDS.values())
        raise QuiltError(f"unknown board {name!r}: quiltc builds for {known}")
    return BOARDS[name]


def board_for_core(core):
    """The board whose core is `core` ("m3", "m4" or "m7")."""
    for board in BOARDS.values():
        if board.core == core:
            return board
    raise QuiltError(f"unknown core {core!r}: use one of "
                     + ", ".join(b.core for b in BOARDS.values()))


def check_fits(board, flash_bytes, ram_bytes, what="the model"):
    """Raise a QuiltError naming the sizes when `what` needs more flash or RAM than `board`
    has (the RAM side keeps the board's stack reserve free)."""
    ram_free = board.ram_bytes - board.stack_bytes
    problems = []
    if flash_bytes > board.flash_bytes:
        problems.append(f"{flash_bytes} bytes of flash (the board has {board.flash_bytes})")
    if ram_bytes > ram_free:
        problems.append(f"{ram_bytes} bytes of RAM (the board has {ram_free} besides "
                        f"its {board.stack_bytes}-byte stack)")
    if problems:
        raise QuiltError(
            f"{what} does not fit {board.machine} ({board.cpu}): it needs "
            + " and ".join(problems)
            + "; use a smaller model (fewer or narrower layers, more of them pooled) or a "
            "board with more memory")
