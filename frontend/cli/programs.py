"""`quiltc build`, `quiltc run` and `quiltc tune`: the jobs on a tensor program that a
Python file defines, named PROGRAM.py:OUTPUT."""

import pathlib
import runpy
import time

import numpy as np

from ..driver.build import build
from ..driver.export import SUFFIXES, export
from ..driver.schedule import Schedule
from ..ir.arrays import RaggedArray
from ..ir.errors import QuiltError
from ..lang.tensor import Tensor
from ..runtime_c.mcu_boards import BOARDS

TARGETS = tuple(SUFFIXES)


def add_commands(commands, common):
    """Add build, run and tune to the `quiltc` subcommands."""
    program_help = ("a Python file and the name of what it defines to build: a tensor (its "
                    "schedule is the file's qc.Schedule of it, if it has one, else the "
                    "default) or a qc.Schedule")
    build_command = commands.add_parser(
        "build", parents=[common], help="write a program's source, header and library",
        description="Build the tensor program a Python file defines for a target and write "
                    "the generated source, its header and the built binary to OUT.",
        epilog="example: quiltc build matmul.py:C --target c -o out/   (out/C.c, out/C.h, "
               "out/libC.so)")
    build_command.add_argument("program", metavar="PROGRAM.py:OUTPUT", help=program_help)
    build_command.add_argument("--target", default="c", choices=TARGETS,
                               help="what to generate for (default c)")
    build_command.add_argument("-o", "--out", required=True, metavar="OUT",
                               help="folder to write to")
    build_command.add_argument("--board", default="mps2-an386", choices=sorted(BOARDS),
                               help="the Cortex-M board an mcu object is compiled for")
    build_command.set_defaults(handler=build_program)
    run_command = commands.add_parser(
        "run", parents=[common], help="build a program and run it on arrays from files",
        description="Build the tensor program a Python file defines, call it on the input "
                    "arrays given, print each output's shape and first values, and save them.",
        epilog="example: quiltc run matmul.py:C --input A=a.npy --input B=b.npy -o c.npz")
    run_command.add_argument("program", metavar="PROGRAM.py:OUTPUT", help=program_help)
    run_command.add_argument("--input", action="append", default=[], metavar="NAME=FILE",
                             help="an input: FILE.npy (np.save of an array), or FILE.npz "
                                  "holding 'values' and 'lengths' for a ragged one; repeat "
                                  "for each input")
    run_command.add_argument("--target", default="c", choices=[t for t in TARGETS if t != "mcu"],
                             help="where to run it (default c)")
    run_command.add_argument("-o", "--out", metavar="RESULT.npz",
                             help="save the outputs (a ragged one as NAME.values, NAME.lengths)")
    run_command.set_defaults(handler=run_program)
    tune = commands.add_parser(
        "tune", parents=[common], help="auto-schedule a program for a range of dynamic sizes",
        description="Tune the output tensor OUTPUT that PROGRAM.py defines (a dense "
                    "contraction over qc.var sizes) jointly over the --shape values, record "
                    "every measurement in --db, and build one dispatcher for the whole range; "
                    "print its decision tree and write its C to OUT.",
        epilog="example: quiltc tune dense.py:Y --shape T=5,24,43,62,81,100,119,128 "
               "--db dense.db -o out/")
    tune.add_argument("program", metavar="PROGRAM.py:OUTPUT",
                      help="a Python file and the name of the tensor it defines to tune")
    tune.add_argument("--shape", action="append", required=True, metavar="SIZE=V1,V2,...",
                      help="the values of a dynamic size to tune for; repeat for others")
    tune.add_argument("--db", required=True, metavar="FILE", help="the SQLite records file")
    tune.add_argument("--trials", type=int, default=40, metavar="N",
                      help="measurements the search may spend (default 40)")
    tune.add_argument("--resume", action="store_true",
                      help="continue a tuning this database holds records of")
    tune.add_argument("--per-shape", action="store_true",
                      help="tune each shape on its own (the baseline) instead of jointly")
    tune.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                      help="a Dask scheduler to build and measure on (default: local processes)")
    tune.add_argument("--workers", type=int, metavar="N",
                      help="local build processes (default one per core; 0: build and "
                           "measure in this process)")
    tune.add_argument("-o", "--out", metavar="OUT", help="folder to write NAME.c and NAME.h to")
    tune.set_defaults(handler=tune_program)


def program_definitions(spec):
    """(what OUTPUT names, the file's namespace) for PROGRAM.py:OUTPUT."""
    path, _, name = spec.rpartition(":")
    if not (path and name):
        raise QuiltError(f"{spec!r}: write PROGRAM.py:OUTPUT, e.g. matmul.py:C")
    if not pathlib.Path(path).is_file():
        raise QuiltError(f"{path}: no such program file")
    namespace = runpy.run_path(path)
    if name not in namespace:
        defined = sorted(key for key, value in namespace.items()
                         if isinstance(value, (Tensor, Schedule)))
        raise QuiltError(f"{path} defines no {name!r}; its tensors and schedules are "
                         f"{', '.join(defined) or 'none'}")
    return namespace[name], namespace


def program_output(spec):
    """The tensor PROGRAM.py:OUTPUT names."""
    value, _ = program_definitions(spec)
    if not isinstance(value, Tensor):
        raise QuiltError(f"{spec} is a {type(value).__name__}, not a tensor of the program")
    return value


def program_schedule(spec):
    """The schedule to build for PROGRAM.py:OUTPUT: the qc.Schedule it names, or the one
    the file made of the tensor it names, or that tensor's default schedule."""
    value, namespace = program_definitions(spec)
    if isinstance(value, Schedule):
        return value
    if not isinstance(value, Tensor):
        raise QuiltError(f"{spec} is a {type(value).__name__}; name a tensor or a qc.Schedule")
    made = [item for item in namespace.values()
            if isinstance(item, Schedule) and any(out is value for out in item.outputs)]
    if len(made) > 1:
        raise QuiltError(f"{spec.rpartition(':')[0]} holds {len(made)} schedules of "
                         f"{value.name}; name the one to build instead of the tensor")
    return made[0] if made else Schedule(value, name=value.name)


def build_program(arguments):
    """Handle `quiltc build`: write the source, header and binary."""
    schedule = program_schedule(arguments.program)
    paths = export(schedule, arguments.out, arguments.target, arguments.board)
    print(f"built {schedule.kernel.name} for {arguments.target}: wrote "
          + ", ".join(str(path) for path in paths))
    return 0


def _input_array(spec):
    name, _, path = spec.partition("=")
    if not (name and path):
        raise QuiltError(f"--input {spec!r}: write NAME=FILE.npy, e.g. --input A=a.npy")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise QuiltError(f"--input {name}: cannot read {path}: {error}") from None
    if isinstance(loaded, np.ndarray):
        return name, loaded
    with loaded:
        if set(loaded.files) != {"values", "lengths"}:
            raise QuiltError(f"--input {name}: {path} holds {', '.join(loaded.files)}; a ragged "
                             "input's .npz holds exactly 'values' and 'lengths' "
                             "(np.savez(path, values=r.values, lengths=r.lengths))")
        return name, RaggedArray(loaded["values"], loaded["lengths"])


def _summary(value):
    flat = (value.values if isinstance(value, RaggedArray) else value).reshape(-1)
    head = np.array2string(flat[:6], precision=4, separator=", ")
    kind = (f"ragged, {len(value)} rows" if isinstance(value, RaggedArray)
            else f"shape {value.shape}")
    return f"{kind}, {flat.dtype}: {head}{' ...' if flat.size > 6 else ''}"


def run_program(arguments):
    """Handle `quiltc run`: build, call on the inputs, print and save the outputs."""
    schedule = program_schedule(arguments.program)
    inputs = dict(_input_array(spec) for spec in arguments.input)
    function = build(schedule, target=arguments.target)
    start = time.perf_counter()
    result = function(**inputs)
    seconds = time.perf_counter() - start
    outputs = result if isinstance(result, dict) else {function.outputs[0]: result}
    print(f"ran {schedule.kernel.name} on {arguments.target} in {seconds * 1e3:.2f} ms")
    for name, value in outputs.items():
        print(f"  {name}: {_summary(value)}")
    if arguments.out:
        saved = {}
        for name, value in outputs.items():
            if isinstance(value, RaggedArray):
                saved[f"{name}.values"], saved[f"{name}.lengths"] = value.values, value.lengths
            else:
                saved[name] = value
        np.savez(arguments.out, **saved)
        print(f"wrote {arguments.out}")
    return 0


def _tuning_shapes(specs):
    shapes = {}
    for spec in specs:
        name, _, values = spec.partition("=")
        if not (name and values and all(v.isdigit() for v in values.split(","))):
            raise QuiltError(f"--shape {spec!r}: write SIZE=V1,V2,..., e.g. --shape T=5,24,128")
        shapes[name] = [int(v) for v in values.split(",")]
    return shapes


def tune_program(arguments):
    """Handle `quiltc tune`: tune (or resume), print the tree, write the dispatcher."""
    from .. import autotune
    from ..autotune.executor import executor_for

    workload = autotune.Workload(program_output(arguments.program),
                                 _tuning_shapes(arguments.shape))
    executor = (executor_for(arguments.scheduler) if arguments.workers is None
                else autotune.LocalExecutor(arguments.workers))
    with autotune.Database(arguments.db) as database, executor:
        earlier = database.count(workload.hash)
        if earlier and not arguments.resume:
            raise QuiltError(f"{arguments.db} already holds {earlier} measurements of this "
                             "program; pass --resume to continue that tuning, or another --db")
        dispatcher = autotune.tune(workload, database, trials=arguments.trials,
                                   per_shape=arguments.per_shape, executor=executor,
                                   progress=False if arguments.quiet else None)
    tuning = dispatcher.tuning
    print(f"{tuning.measurements} measurements in {tuning.seconds:.1f} s "
          f"({earlier} recorded before)")
    print(dispatcher)
    if arguments.out:
        out = pathlib.Path(arguments.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{workload.name}.c").write_text(dispatcher.source)
        (out / f"{workload.name}.h").write_text(dispatcher.declarations + "\n")
        print(f"wrote {out / (workload.name + '.c')}, {out / (workload.name + '.h')}")
    return 0


