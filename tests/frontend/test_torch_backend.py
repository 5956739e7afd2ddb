"""torch.compile(model, backend="quiltc"), found through the torch_dynamo_backends entry
point: nn.TransformerEncoderLayer in inference (its fused encoder op opened into
primitives) and with autograd on (the ATen graph split around the ops quiltc leaves to
PyTorch) matches eager, and a model with an op quiltc lacks runs it in PyTorch."""

import logging

import pytest

from support.helpers import require_cc

torch = pytest.importorskip("torch", reason="install it with: pip install torch "
                            "(or the bench extra: pip install -e '.[bench]')")

pytestmark = pytest.mark.slow  # dynamo tracing and a fused build per test


@pytest.fixture
def compiled_partitions(caplog):
    """The names of the sub-graphs quiltc compiled during the test."""
    require_cc()
    torch._dynamo.reset()
    caplog.set_level(logging.INFO, logger="quiltc.graph.torch_backend")
    yield lambda: [record.getMessage().split(":")[0].removeprefix("compiled ")
                   for record in caplog.records if record.getMessage().startswith("compiled ")]
    torch._dynamo.reset()


def test_the_backend_is_registered_by_name():
    from torch._dynamo.backends.registry import list_backends, lookup_backend

    from quiltc.graph.torch_backend import quiltc_backend

    assert "quiltc" in list_backends(exclude_tags=())
    assert lookup_backend("quiltc") is quiltc_backend


@pytest.mark.parametrize("norm_first", [False, True])
def test_an_encoder_layer_in_inference_fuses_whole_and_matches_eager(compiled_partitions,
                                                                     norm_first):
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(64, 4, dim_feedforward=128, batch_first=True,
                                             norm_first=norm_first, activation="gelu").eval()
    x = torch.randn(3, 12, 64)
    compiled = torch.compile(layer, backend="quiltc")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), layer(x), rtol=1e-4, atol=1e-4)
    assert compiled_partitions() == ["torch_fused_0"]


def test_an_encoder_layer_with_autograd_on_splits_around_pytorch_ops(compiled_partitions):
    torch.manual_seed(1)
    layer = torch.nn.TransformerEncoderLayer(32, 2, dim_feedforward=64, batch_first=True).eval()
    x = torch.randn(2, 9, 32)
    compiled = torch.compile(layer, backend="quiltc")
    result = compiled(x)
    torch.testing.assert_close(result, layer(x), rtol=1e-4, atol=1e-4)
    assert len(compiled_partitions()) >= 2
    result.sum().backward()  # the backward graph runs eagerly
    assert layer.linear1.weight.grad is not None


class WithCumsum(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.first = torch.nn.Linear(16, 16)
        self.second = torch.nn.Linear(16, 8)

    def forward(self, x):
        return torch.softmax(self.second(torch.cumsum(self.first(x).relu(), dim=0)), dim=-1)


def test_an_op_quiltc_lacks_runs_in_pytorch_between_compiled_parts(compiled_partitions):
    torch.manual_seed(2)
    model = WithCumsum().eval()
    x = torch.randn(5, 16)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, backend="quiltc")(x), model(x),
                                   rtol=1e-5, atol=1e-5)
    assert len(compiled_partitions()) == 2
