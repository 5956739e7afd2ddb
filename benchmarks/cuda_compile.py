"""Question: what does building quiltc's CUDA kernels cost, and what comes out?

For each CUDA test kernel (shared-tile matmul, tree-reduction softmax, ragged elementwise by
rows and over the flat token table, ragged masked attention) it times nvcc turning the .cu
into PTX for sm_80 and sm_90 (median of 3 uncached runs) and ptxas turning that PTX into
cubin, and reports the PTX and cubin sizes, the launches and the shared memory per block.
It also times the g++ build of the same source under the CPU emulation. Where a GPU is
present it times each dense kernel against torch on the GPU (both including the host
copies, since quiltc's launcher copies in and out), each in its own block after a quiet
gap. Prints a table and writes benchmarks/results/cuda_compile.json (with the host and the
libraries loaded) and cuda_compile.png.

    python benchmarks/cuda_compile.py [--quick]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

common.unpin_openblas()  # OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE go before numpy loads

import numpy as np  # noqa: E402

import quiltc as qc  # noqa: E402
from quiltc import recipes, recipes_cuda  # noqa: E402
from quiltc.codegen.cuda import render_cuda  # noqa: E402
from quiltc.driver.timing import measure_after_quiet  # noqa: E402
from quiltc.ir.verify_gpu import block_shared_bytes  # noqa: E402
from quiltc.runtime_c.cuda_call import emulation_toolchain, gpu_unavailable_reason  # noqa: E402
from quiltc.runtime_c.nvcc import ARCHITECTURES, DEVICE_FLAGS, find_nvcc, ptxas_command  # noqa: E402

REPEATS = 3


def kernels():
    """{name: kernel} of the CUDA test kernels, sizes symbolic where the program allows."""
    _, _, c = recipes.matmul_program(*(qc.var(n, 1, 4096) for n in "MNK"))
    found = {"matmul 16x16 tiles": recipes_cuda.schedule_matmul_cuda(c).kernel,
             "softmax tree, 128 threads": recipes_cuda.schedule_softmax_cuda(
                 qc.var("R", 1, 1 << 16), qc.var("C", 1, 1 << 16), 128).kernel}
    for flat in (False, True):
        batch = qc.var("B", 0, 4096)
        length = qc.ragged_dim("L", batch, 512)
        x = qc.placeholder((batch, length, 64), "float32", "X")
        y = qc.compute((batch, length, 64), lambda b, l, f: x[b, l, f] * np.float32(2.0), "Y")
        sch = recipes_cuda.schedule_ragged_cuda(qc.Schedule(y, name="ragged_scale"), y,
                                                threads=16, flat=flat)
        found[f"ragged scale, {'flat tokens' if flat else 'rows longest first'}"] = sch.kernel
    found["ragged masked attention"] = recipes_cuda.schedule_attention_cuda(
        8, 64, 128, causal=True).kernel
    return found


def _median_seconds(arguments, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(arguments, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_build(name, kernel, folder, repeats):
    """nvcc and ptxas times (median of `repeats`) and output sizes per architecture, and
    the emulation build."""
    source = render_cuda(kernel)
    path = folder / f"{kernel.name}.cu"
    path.write_text(source)
    nvcc, row = find_nvcc(), {"kernel": name, "launches": source.count("__global__ void"),
                              "shared_bytes": max(block_shared_bytes(kernel), default=0),
                              "source_lines": source.count("\n")}
    for arch in ARCHITECTURES:
        ptx, cubin = folder / f"{kernel.name}.{arch}.ptx", folder / f"{kernel.name}.{arch}.cubin"
        row[f"nvcc_ptx_{arch}_s"] = round(_median_seconds(
            [*nvcc, *DEVICE_FLAGS, "-ptx", f"-arch={arch}", "-o", str(ptx), str(path)],
            repeats), 3)
        row[f"ptxas_{arch}_s"] = round(_median_seconds(
            [ptxas_command(nvcc), f"-arch={arch}", "-o", str(cubin), str(ptx)], repeats), 3)
        row[f"ptx_{arch}_bytes"] = ptx.stat().st_size
        row[f"cubin_{arch}_bytes"] = cubin.stat().st_size
    toolchain = emulation_toolchain()
    row["emulation_build_s"] = round(_median_seconds(
        [*toolchain.command, *toolchain.flags, "-o", str(folder / "emulated.so"), str(path)],
        repeats), 3)
    return row


def gpu_times():
    """Seconds per call of quiltc's matmul and softmax on the GPU against torch's."""
    import torch

    common.limit_threads()
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((1024, 1024)).astype(np.float32) for _ in range(2))
    _, _, c = recipes.matmul_program(1024, 1024, 1024)
    matmul = qc.build(recipes_cuda.schedule_matmul_cuda(c), target="cuda")
    x = rng.standard_normal((4096, 1024)).astype(np.float32)
    softmax = qc.build(recipes_cuda.schedule_softmax_cuda(4096, 1024, 128), target="cuda")
    device = torch.device("cuda")

    def torch_matmul():
        (torch.from_numpy(a).to(device) @ torch.from_numpy(b).to(device)).cpu()

    def torch_softmax():
        torch.softmax(torch.from_numpy(x).to(device), dim=1).cpu()

    timed = measure_after_quiet
    return {
        "matmul 1024^3": {"quiltc_s": timed(lambda: matmul(A=a, B=b), repeats=9),
                          "torch_s": timed(torch_matmul, repeats=9)},
        "softmax 4096x1024": {"quiltc_s": timed(lambda: softmax(X=x), repeats=9),
                              "torch_s": timed(torch_softmax, repeats=9)},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one run per compile instead of 3, results to a temporary folder")
    arguments = parser.parse_args()
    repeats = 1 if arguments.quick else REPEATS
    folder = common.output_folder(arguments.quick)
    with tempfile.TemporaryDirectory() as scratch:
        rows = [measure_build(name, kernel, Path(scratch), repeats)
                for name, kernel in kernels().items()]
    header = f"{'kernel':<32} {'launches':>8} {'shared B':>8}"
    for arch in ARCHITECTURES:
        header += f" {'nvcc ' + arch + ' s':>13} {'PTX ' + arch + ' B':>13}"
    print(header + f" {'g++ emu s':>10}")
    for row in rows:
        line = f"{row['kernel']:<32} {row['launches']:>8} {row['shared_bytes']:>8}"
        for arch in ARCHITECTURES:
            line += f" {row[f'nvcc_ptx_{arch}_s']:>13.2f} {row[f'ptx_{arch}_bytes']:>13}"
        print(line + f" {row['emulation_build_s']:>10.2f}")
    reason = gpu_unavailable_reason()
    gpu = gpu_times() if not reason else {"skipped": reason}
    print(f"\nGPU kernel times: {gpu}")
    version = subprocess.run([*find_nvcc(), "--version"], capture_output=True,
                             text=True).stdout.strip().splitlines()[-1]
    path = common.write_json("cuda_compile", {"nvcc": version, "repeats": repeats,
                                              "kernels": rows, "gpu": gpu,
                                              "host": common.host_report()}, folder)
    print(f"wrote {path}")
    plt = common.pyplot()
    if plt is not None:
        x = np.arange(len(rows))
        figure, (times, sizes) = plt.subplots(1, 2, figsize=(11, 4))
        for offset, arch in zip((-0.2, 0.2), ARCHITECTURES):
            times.bar(x + offset, [r[f"nvcc_ptx_{arch}_s"] for r in rows], 0.4, label=arch)
            sizes.bar(x + offset, [r[f"ptx_{arch}_bytes"] / 1024 for r in rows], 0.4, label=arch)
        for axes, label in ((times, "nvcc -ptx seconds"), (sizes, "PTX KiB")):
            axes.set_xticks(x, [r["kernel"] for r in rows], rotation=30, ha="right", fontsize=7)
            axes.set_ylabel(label)
            axes.legend(loc="upper left")
        figure.suptitle("CUDA kernels: nvcc compile time and PTX size")
        figure.tight_layout()
        figure.savefig(folder / "cuda_compile.png", dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
