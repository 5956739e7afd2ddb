"""What every benchmark shares: fixed thread counts and OpenBLAS's own kernel choice (both
set before numpy loads), a record of the host and the libraries loaded, and where results
and plots go. Each contender's block of timed calls follows a quiet gap
(quiltc.driver.timing.measure_after_quiet).

Every script starts with

    import common
    common.unpin_openblas()

before anything that imports numpy (quiltc included).
"""

import json
import os
import pathlib
import sys
import tempfile

THREADS = 2
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(THREADS)
# OpenMP's wait policy stays at its default, what users run: threads spin a few
# milliseconds after a parallel region, then sleep. Every contender is timed in its own
# block after a quiet gap (quiltc.driver.timing.measure_after_quiet), so no spinning
# thread reaches the next library's block (interleaved single calls had slowed numpy's
# matmul tenfold beside spinning quiltc threads); "passive", which made them sleep at
# once, cost every call of an OpenMP library (quiltc, PyTorch) a wake-up: 90
# microseconds on this 2-core host.

# This environment sets OPENBLAS_CORETYPE=Haswell and OPENBLAS_L2_SIZE=512, which hold
# numpy to OpenBLAS's AVX2 kernel at about half speed on AVX-512 machines. OpenBLAS reads
# them once, when it loads, so benchmarks drop them before numpy is imported; tests and CI
# keep them.
OPENBLAS_PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def unpin_openblas():
    """Drop OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE so OpenBLAS picks the kernel for this
    CPU; re-executes the script with the cleaned environment when numpy is already loaded."""
    pinned = [name for name in OPENBLAS_PINS if name in os.environ]
    for name in pinned:
        del os.environ[name]
    if pinned and "numpy" in sys.modules:
        sys.stdout.flush()
        os.execve(sys.executable, sys.orig_argv, os.environ)


def limit_threads():
    """Hold every thread pool loaded so far (OpenBLAS, OpenMP, and torch's) to THREADS."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("threadpoolctl is not installed: thread counts rest on the environment only")
    else:
        threadpool_limits(limits=THREADS)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(THREADS)


def cpu_description():
    """The CPU model and the vector ISA flags that decide which kernels a library picks."""
    # imported here: quiltc loads numpy, which must wait for unpin_openblas
    from quiltc.runtime_c.host import cpu_flags

    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.partition(":")[2].strip() for line in cpuinfo
                          if line.startswith("model name")), model)
    except OSError:
        pass
    flags = cpu_flags()
    isa = {flag: flag in flags for flag in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl")}
    return {"model": model, "logical_cpus": os.cpu_count(), "isa": isa}


def thread_pools():
    """The BLAS and OpenMP libraries loaded in this process, with the kernel (OpenBLAS's
    architecture) and thread count each runs, from threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl is not installed"
    keys = ("user_api", "internal_api", "prefix", "filepath", "version", "architecture",
            "num_threads", "threading_layer")
    return [{key: pool[key] for key in keys if key in pool} for pool in threadpool_info()]


def torch_description():
    """torch's version, the CPU kernels it dispatches to and its threads (it links MKL and
    oneDNN statically, out of threadpoolctl's sight); None when torch is not loaded."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    libraries = [line.strip() for line in torch.__config__.parallel_info().splitlines()
                 if "Math Kernel Library" in line or "MKL-DNN" in line]
    return {"version": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "num_threads": torch.get_num_threads(), "libraries": libraries}


def host_report():
    """What ran where: CPU and ISA, the OpenBLAS pins as this process sees them (None:
    unset), the thread pools and torch's kernels. Call it after every library has run."""
    return {"cpu": cpu_description(), "threads": THREADS,
            "openblas_env": {name: os.environ.get(name) for name in OPENBLAS_PINS},
            "thread_pools": thread_pools(), "torch": torch_description()}


def blas_description():
    """One line saying which BLAS numpy runs, its kernel and its threads."""
    pools = thread_pools()
    if isinstance(pools, str):
        return f"numpy BLAS ({pools})"
    for pool in pools:
        if pool.get("user_api") == "blas":
            return (f"{pool.get('internal_api')} {pool.get('version')} "
                    f"({pool.get('architecture')}, {pool.get('num_threads')} threads)")
    return "numpy BLAS: none found"


def output_folder(quick):
    """Where JSON and plots go: benchmarks/results/, or a fresh temporary folder for a
    --quick smoke run, which must never replace the committed results."""
    if quick:
        return pathlib.Path(tempfile.mkdtemp(prefix="quiltc-bench-"))
    RESULTS.mkdir(exist_ok=True)
    return RESULTS


def write_json(name, payload, folder):
    """Write FOLDER/NAME.json (FOLDER from output_folder) and return its path."""
    path = folder / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def pyplot():
    """matplotlib.pyplot, or None (with one line saying how to add it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install -e '.[bench]' adds it)")
        return None
    return plt


def ratio_axis(axis, labels, ylabel, title, rotation=30):
    """Label bar chart `axis` of ratios over `labels`, with the line at 1.0 (parity)."""
    axis.axhline(1.0, color="black", linewidth=0.8)
    axis.set_xticks(range(len(labels)), labels, rotation=rotation)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend()
