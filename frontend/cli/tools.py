"""`quiltc bench` and `quiltc cache`: the benchmarks of the source checkout, and the
build cache."""

import pathlib
import subprocess
import sys

from ..ir.errors import QuiltError
from ..progress import progress_bar
from ..runtime_c.cache import cache_contents, clear_cache

# The question each benchmark answers is in its script's docstring (benchmarks/*.py).
BENCHMARKS = {"matmul": "matmul.py", "ragged": "ragged_encoder.py",
              "mcu": "mcu_weightpool.py", "fusion": "fusion.py", "dynamic": "dynamic_gemm.py"}
BENCHMARK_FOLDER = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


def add_commands(commands, common):
    """Add bench and cache to the `quiltc` subcommands."""
    bench = commands.add_parser(
        "bench", parents=[common], help="run benchmarks against numpy, PyTorch, CMSIS-NN, ...",
        description="Run quiltc's benchmarks (benchmarks/*.py of the source checkout): each "
                    "times quiltc and its peers on the same inputs, prints a table of ratios "
                    "and writes benchmarks/results/NAME.json and a plot.",
        epilog="example: quiltc bench matmul --quick   (one small case; results to a "
               "temporary folder)")
    bench.add_argument("names", nargs="*", metavar="NAME",
                       help=f"which: {', '.join(BENCHMARKS)} (default: all)")
    bench.add_argument("--quick", action="store_true",
                       help="a smoke run: small cases, few repeats, results to a temporary "
                            "folder instead of benchmarks/results/")
    bench.set_defaults(handler=run_benchmarks)
    cache = commands.add_parser(
        "cache", parents=[common], help="show or clear the build cache",
        description="The build cache holds compiled kernels, CUDA builds, fused graphs and "
                    "the trained digits CNN, under $QUILTC_CACHE_DIR (default "
                    "~/.cache/quiltc). info says where it is and what it holds; clear "
                    "removes what quiltc wrote there.",
        epilog="example: quiltc cache info")
    cache.add_argument("action", choices=("info", "clear"), help="info or clear")
    cache.set_defaults(handler=cache_command)


def run_benchmarks(arguments):
    """Handle `quiltc bench`: run each chosen benchmark script in turn."""
    if not BENCHMARK_FOLDER.is_dir():
        raise QuiltError(f"the benchmarks come with the source checkout ({BENCHMARK_FOLDER} "
                         "is missing): clone quiltc and install it with pip install -e "
                         "'.[bench]'")
    unknown = [name for name in arguments.names if name not in BENCHMARKS]
    if unknown:
        raise QuiltError(f"no benchmark {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(BENCHMARKS)}")
    names = arguments.names or list(BENCHMARKS)
    failed = []
    for name in progress_bar(names, description="benchmarks", unit="benchmark"):
        command = [sys.executable, str(BENCHMARK_FOLDER / BENCHMARKS[name])]
        if arguments.quick:
            command.append("--quick")
        print(f"== quiltc bench {name}: {' '.join(command[1:])}", flush=True)
        if subprocess.run(command).returncode != 0:
            failed.append(name)
    if failed:
        raise QuiltError(f"benchmark {', '.join(failed)} failed (its output is above)")
    return 0


def _size_text(size):
    for unit in ("bytes", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def cache_command(arguments):
    """Handle `quiltc cache info|clear`."""
    if arguments.action == "clear":
        directory, _, _ = cache_contents()
        print(f"cleared {directory}: freed {_size_text(clear_cache(directory))}")
        return 0
    directory, counts, size = cache_contents()
    print(f"cache: {directory} ({'present' if directory.is_dir() else 'not created yet'}; "
          "set QUILTC_CACHE_DIR to move it)")
    print(f"size: {_size_text(size)}")
    for kind, count in counts.items():
        print(f"  {kind}: {count}")
    return 0
