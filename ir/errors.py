"""The error classes every layer raises; `quiltc` re-exports them.

Each error says what was asked, what stood in the way, and what would work, so a
user can act on the message without reading quiltc's source.
"""


class QuiltError(Exception):
    """Base of every error a user of quiltc can cause."""


class LanguageError(QuiltError):
    """A tensor-language expression is malformed (mixed dtypes, unknown names, ...)."""


class ShapeError(QuiltError):
    """An argument's dtype, rank, shape or symbolic size does not fit the kernel."""


class VerifyError(QuiltError):
    """A kernel breaks an IR invariant (unbound variable, out-of-bounds index, ...)."""


class ScheduleError(QuiltError):
    """A schedule primitive's precondition does not hold.

    `primitive` names the primitive, `asked` what the call wanted, `obstacle` what stood
    in the way, `hint` what would be legal instead, and `context` (optional) the
    pseudo-code of the loop nest around the problem.
    """

    def __init__(self, primitive, asked, obstacle, hint, context=None):
        self.primitive = primitive
        self.asked = asked
        self.obstacle = obstacle
        self.hint = hint
        self.context = context
        message = f"{primitive}: asked to {asked}, but {obstacle}. {hint}"
        if context:
            message += "\n" + context
        super().__init__(message)


class AllocationError(QuiltError, MemoryError):
    """A kernel would allocate more memory than the machine has, for these sizes."""


class BuildError(QuiltError):
    """The C (or CUDA) compiler rejected generated source.

    Carries the first lines of the compiler's errors and the path where the source was kept.
    """

    def __init__(self, compiler, first_lines, source_path):
        self.compiler = compiler
        self.first_lines = first_lines
        self.source_path = source_path
        super().__init__(
            f"{compiler} failed on {source_path}:\n{first_lines}\n"
            f"The generated source is kept at {source_path} for inspection."
        )


class ToolchainMissing(QuiltError):
    """A compiler or emulator that a target needs is not installed."""

    def __init__(self, tool, install):
        self.tool = tool
        self.install = install
        super().__init__(f"{tool} was not found on PATH. Install it with: {install}")
