"""The `quiltc` command (also `python -m quiltc.cli`): one subcommand per job.

    quiltc build PROGRAM.py:OUTPUT --target c|cuda|cuda-emu|mcu -o OUT
    quiltc run PROGRAM.py:OUTPUT --input NAME=FILE.npy ... [-o RESULT.npz]
    quiltc fuse MODEL.onnx -o OUT
    quiltc tune PROGRAM.py:OUTPUT --shape T=5,24,128 --db FILE
    quiltc compress MODEL.onnx|WEIGHTS.npz -o POOLED.npz
    quiltc emit-mcu [MODEL.onnx] OUT
    quiltc bench [matmul|ragged|mcu|fusion|dynamic]
    quiltc cache info|clear

`quiltc COMMAND --help` explains each, with an example. A failure prints one line (the
error's message) and exits with status 2; `--debug` shows the traceback instead, `--quiet`
hides the progress bars. QUILTC_LOG=info prints each compiler command and cache hit.

Built on argparse: the standard library's parser does all this needs (subcommands,
help, choices), so the command adds no dependency.
"""

import argparse
import sys
import traceback

from ..ir.errors import QuiltError
from ..progress import quiet
from . import models, programs, tools


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: the message and where help is."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser():
    """The `quiltc` argument parser with every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of its one line")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    top = _Parser(prog="quiltc", description=__doc__.splitlines()[0],
                  formatter_class=argparse.RawDescriptionHelpFormatter,
                  epilog="example: quiltc build matmul.py:C --target c -o out/")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                  parser_class=_Parser)
    for module in (programs, models, tools):
        module.add_commands(commands, common)
    return top


def main(argv=None):
    """Entry point of the `quiltc` command; returns the exit status."""
    arguments = parser().parse_args(argv)
    if arguments.quiet:
        quiet()
    try:
        return arguments.handler(arguments)
    except KeyboardInterrupt:
        print("quiltc: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if arguments.debug:
            traceback.print_exc()
        else:
            print(f"quiltc: error: {_one_line(error)}", file=sys.stderr)
        return 2


def _one_line(error):
    """The error's message on one line; a bug that is not a QuiltError says how to see it."""
    message = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, (QuiltError, OSError)):
        return message
    return f"{type(error).__name__}: {message} (rerun with --debug for the traceback)"

