"""`torch.compile(model, backend="quiltc")`: PyTorch graphs fused into quiltc C modules.

TorchDynamo captures the model's Python into an FX graph; AOT autograd lowers it to ATen
ops (core decompositions applied, a forward graph apart from the backward). The forward
graph is split by what quiltc converts (torch_fx.SUPPORTED: float32 CPU tensors through
matmuls, elementwise math, reductions, softmax, layer norm, views, and the fused encoder
layer of nn.TransformerEncoderLayer): each largest supported sub-graph becomes one
`QuiltcPartition`, compiled on its first call at each input shape through the fusion
pipeline (qc.graph.compile); every other op, and a sub-graph quiltc fails to compile,
runs in eager PyTorch. The backward graph, when training, runs eagerly.

Registered through the `torch_dynamo_backends` entry point (pyproject.toml), so
`backend="quiltc"` works once quiltc is installed; `quiltc_backend` is the same function.
"""

import logging

import numpy as np

from ..ir.errors import QuiltError
from .module import compile as compile_graph
from .torch_fx import graph_from_fx, supported

log = logging.getLogger(__name__)

# Ops that move no data worth a kernel: a partition of these alone stays in PyTorch.
_VIEWS = ("aten.view.default", "aten._unsafe_view.default", "aten.reshape.default",
          "aten.unsqueeze.default", "aten.squeeze.dims", "aten.squeeze.dim",
          "aten.permute.default", "aten.t.default", "aten.transpose.int",
          "aten.expand.default", "aten.clone.default", "aten.alias.default",
          "aten.slice.Tensor", "aten.select.int")


_KERNELS = ("aten.mm.default", "aten.bmm.default", "aten.addmm.default",
            "aten._softmax.default", "aten.native_layer_norm.default",
            "aten._transformer_encoder_layer_fwd.default")


def _module_class():
    import torch

    class QuiltcPartition(torch.nn.Module):
        """One supported sub-graph: compiled by quiltc per input shapes on first use, run
        on the tensors' memory in place; falls back to its FX module if quiltc refuses."""

        def __init__(self, fx_module, name):
            super().__init__()
            self.fx_module = fx_module
            self.module_name = name
            self.compiled = {}

        def _compiled(self, inputs):
            key = tuple((tuple(tensor.shape), tensor.dtype) for tensor in inputs)
            if key not in self.compiled:
                try:
                    graph = graph_from_fx(self.fx_module, inputs)
                    self.compiled[key] = compile_graph(graph, name=self.module_name)
                    log.info("compiled %s: %d ops", self.module_name, len(graph.nodes))
                except QuiltError as error:
                    log.warning("%s runs in PyTorch: %s", self.module_name, error)
                    self.compiled[key] = None
            return self.compiled[key]

        def forward(self, *inputs):
            module = self._compiled(inputs)
            if module is None:
                return self.fx_module(*inputs)
            arrays = {f"input{i}": tensor.detach().contiguous().numpy()
                      for i, tensor in enumerate(inputs)}
            results = module(**arrays)
            several = isinstance(results, tuple)
            tensors = tuple(torch.from_numpy(np.asarray(result))
                            for result in (results if several else (results,)))
            return tensors if several else tensors[0]

    return QuiltcPartition


def partitioned(graph_module):
    """`graph_module` with each largest sub-graph quiltc supports moved into a
    QuiltcPartition; returns (the new module, the partitions)."""
    from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
    from torch.fx.passes.operator_support import OperatorSupportBase

    class Support(OperatorSupportBase):
        def is_node_supported(self, submodules, node):
            return supported(node)

    # One op makes a partition when it is a kernel's worth (a matmul, a softmax, the fused
    # encoder layer); a lone view or elementwise op stays in PyTorch.
    partitioner = CapabilityBasedPartitioner(
        graph_module, Support(), allows_single_node_partition=False,
        non_compute_ops=[f"torch.ops.{op}" for op in _VIEWS],
        allowed_single_node_partition_ops=[f"torch.ops.{op}" for op in _KERNELS])
    fused = partitioner.partition_and_fuse()
    partition_class = _module_class()
    partitions = []
    for name, child in list(fused.named_children()):
        if name.startswith("fused_"):
            partition = partition_class(child, f"torch_{name}")
            setattr(fused, name, partition)
            partitions.append(partition)
    return fused, partitions


def _forward_compiler(graph_module, example_inputs):
    from functorch.compile import make_boxed_func

    fused, partitions = partitioned(graph_module)
    log.info("quiltc backend: %d partitions of %d nodes", len(partitions),
             len(graph_module.graph.nodes))
    return make_boxed_func(fused.forward)


def _eager_compiler(graph_module, example_inputs):
    from functorch.compile import make_boxed_func

    return make_boxed_func(graph_module.forward)


def quiltc_backend(graph_module, example_inputs):
    """The torch.compile backend (see the module docstring)."""
    from torch._decomp import core_aten_decompositions
    from torch._dynamo.backends.common import aot_autograd

    backend = aot_autograd(fw_compiler=_forward_compiler, bw_compiler=_eager_compiler,
                           decompositions=core_aten_decompositions())
    return backend(graph_module, example_inputs)
