"""AttentionView: encoder layers inside traced networks read as transformer weight spaces, the rest with
the stream fixed; its group moves the real module's weights without changing its function."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import EncoderWithMLPHead, ViTWithMLPHead
from nfkit.errors import UnsupportedArchitectureError
from nfkit.nets.architectures import EncoderClassifier, torch_encoder
from nfkit.spaces import universal_spec_of
from nfkit.spaces.attention_view import AttentionView
from nfkit.spaces.trace import universal_load_into, universal_weights_of
from nfkit.spaces.transformer_convert import transformer_weights_of


@pytest.mark.parametrize("norm_first", [False, True])
def test_split_gives_the_transformer_layouts_features(norm_first: bool) -> None:
    torch.manual_seed(0)
    encoder = torch_encoder(6, 2, 8, 2, norm_first=norm_first)
    view = AttentionView(universal_spec_of(encoder))
    blocks, rest = view.split(universal_weights_of(encoder))
    reference = transformer_weights_of(encoder)
    assert rest is None and len(blocks) == 2
    for l, block in enumerate(blocks):
        for name, tensor in block.named.items():
            torch.testing.assert_close(tensor, reference.named[f"blocks.{l}.{name.removeprefix('blocks.0.')}"], rtol=0, atol=0)


def test_the_rest_holds_the_stream_fixed_and_keeps_its_own_sets() -> None:
    spec = universal_spec_of(EncoderWithMLPHead(), torch.randn(2, 5, 3))
    view = AttentionView(spec)
    assert [l.path for l in view.layers] == ["layer"]
    assert view.rest is not None
    assert [t.name for t in view.rest.tensors] == ["embed.weight", "embed.bias", "head.0.weight", "head.0.bias",
                                                   "head.2.weight", "head.2.bias"]
    assert view.rest.tensor("embed.weight").axes == (None, None)  # embed's outputs are the stream: fixed
    assert [s.name for s in view.rest.sets] == ["head.0"]
    assert {s.name for s in view.group().sets} == {*view.layers[0].sets, "head.0"}


def test_hand_written_blocks_give_their_attention_and_feed_forward() -> None:
    torch.manual_seed(0)
    module = ViTWithMLPHead()
    view = AttentionView(universal_spec_of(module, torch.randn(2, 5, 3)))
    assert [l.path for l in view.layers] == ["blocks.0", "blocks.1"]
    assert [l.spec.blocks[0].d_ff for l in view.layers] == [6, 5]
    assert not view.layers[0].spec.blocks[0].norm_affine  # a hand-written block's norms stay with the rest
    assert view.rest is not None
    assert [t.name for t in view.rest.tensors] == [
        "embed.weight", "embed.bias", "blocks.0.norm1.weight", "blocks.0.norm1.bias", "blocks.0.norm2.weight",
        "blocks.0.norm2.bias", "blocks.1.norm1.weight", "blocks.1.norm1.bias", "blocks.1.norm2.weight",
        "blocks.1.norm2.bias", "norm.weight", "norm.bias", "head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias"]
    blocks, _ = view.split(universal_weights_of(module, view.spec))
    attention, mlp = module.blocks[1].attn, module.blocks[1].mlp
    w_q = attention.in_proj_weight[:4].reshape(2, 2, 4).transpose(1, 2)  # per head (D, d_k): the paper's X W_Q
    torch.testing.assert_close(blocks[1].named["blocks.0.query"][0, 0], w_q.detach(), rtol=0, atol=0)
    torch.testing.assert_close(blocks[1].named["blocks.0.ffn_out"][0, 0], mlp[2].weight.detach(), rtol=0, atol=0)
    torch.testing.assert_close(blocks[1].named["blocks.0.ffn_in_bias"][0, 0], mlp[0].bias.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("net", ["encoder-classifier", "mlp-head", "vit"])
def test_the_views_group_preserves_the_function_of_the_network(net: str) -> None:
    torch.manual_seed(1)
    modules = {"encoder-classifier": lambda: EncoderClassifier(3, 4, 2, 6, 2, layers=2), "mlp-head": EncoderWithMLPHead,
               "vit": ViTWithMLPHead}
    module = modules[net]().double().eval()
    spec = universal_spec_of(module, torch.randn(2, 5, 3, dtype=torch.float64))
    x = torch.randn(5, 7, 3, dtype=torch.float64)
    before = module(x)
    g = AttentionView(spec).group().sample(torch.Generator().manual_seed(3))
    moved = universal_load_into(module, universal_weights_of(module, spec).transform(g))
    torch.testing.assert_close(moved(x), before, rtol=1e-9, atol=1e-9)


def test_refused_without_encoder_layers() -> None:
    with pytest.raises(UnsupportedArchitectureError, match="has none"):
        AttentionView(universal_spec_of(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))))

    class BareAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(4, 2, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.attn(x, x, x, need_weights=False)[0]

    with pytest.raises(UnsupportedArchitectureError, match="attn has no such pair"):
        AttentionView(universal_spec_of(BareAttention()))
