"""What every benchmark shares: fixed thread counts (set before numpy loads), the
results folder, and an optional plot."""

import json
import os
import pathlib

THREADS = 2
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(THREADS)
# OpenMP threads that spin after a parallel region steal the cores from the peer timed
# next (numpy's matmul fell more than tenfold beside spinning quiltc threads).
os.environ["OMP_WAIT_POLICY"] = "passive"

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def blas_description():
    """Which BLAS numpy runs and with how many threads, via threadpoolctl when present."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "numpy BLAS (install threadpoolctl to see which)"
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            return f"{pool.get('internal_api')} {pool.get('version')} ({pool.get('architecture')}, {pool.get('num_threads')} threads)"
    return "numpy BLAS: none found"


def write_json(name, payload):
    """Write benchmarks/results/NAME.json and return its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
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
