"""Small transformers in the layout of the Small Transformer Zoo (Transformer-NFN, ICLR 2025, App. F).

State-dict keys follow the zoo's checkpoints: ``embedding.*``,
``encoder.{l}.attention.{queries,keys,values,out_projection}.weight``, ``encoder.{l}.fc{1,2}.*``,
``classifier.fc{1,2}.*``. As in the zoo, the default block has **no residual connections** and
LayerNorms **without** affine parameters, so the D index between attention output and FFN input
is a real symmetry (:attr:`nfkit.spaces.AttentionBlockSpec.stream_permutable`); both can be
switched on, and ``nfkit.spaces.spec_of`` reads which from the module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import final

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SelfAttention", "EncoderBlock", "Classifier", "SmallTransformer", "sinusoidal_positions", "add_positions"]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"relu": F.relu, "gelu": F.gelu}


def sinusoidal_positions(length: int, width: int) -> torch.Tensor:
    """Fixed sinusoidal position encodings (Vaswani et al. 2017): ``(length, width)``."""
    position = torch.arange(length, dtype=torch.float64)[:, None]
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float64) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : width // 2]
    return table.float()


def add_positions(tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``tokens + positions[:T]`` for tokens ``(B, T, D)`` and a table ``(max_len, D)``; a clear error past ``max_len``.

    A leaf of ``torch.fx`` graphs (``torch.fx.wrap``), so that tracing a :class:`SmallTransformer` records one
    addition of a fixed table rather than the length check.
    """
    if tokens.shape[1] > positions.shape[0]:
        raise ValueError(f"sequences of length {tokens.shape[1]} exceed max_len {positions.shape[0]}")
    return tokens + positions[: tokens.shape[1]].to(tokens.dtype)


torch.fx.wrap("add_positions")


@final
class SelfAttention(nn.Module):
    """Multi-head self-attention with separate query/key/value/output projections.

    Shapes:
        ``(B, T, D) → (B, T, D)``.
    """

    def __init__(self, d_model: int, heads: int, d_k: int, d_v: int, bias: bool = False) -> None:
        super().__init__()
        self.heads, self.d_k, self.d_v = heads, d_k, d_v
        self.queries = nn.Linear(d_model, heads * d_k, bias=bias)
        self.keys = nn.Linear(d_model, heads * d_k, bias=bias)
        self.values = nn.Linear(d_model, heads * d_v, bias=bias)
        self.out_projection = nn.Linear(heads * d_v, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.queries(x).view(b, t, self.heads, self.d_k).transpose(1, 2)
        k = self.keys(x).view(b, t, self.heads, self.d_k).transpose(1, 2)
        v = self.values(x).view(b, t, self.heads, self.d_v).transpose(1, 2)
        # written out rather than F.scaled_dot_product_attention, which has no vmap batching rule on CPU
        attended = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.d_k), dim=-1) @ v
        return self.out_projection(attended.transpose(1, 2).reshape(b, t, self.heads * self.d_v))


@final
class EncoderBlock(nn.Module):
    """``x ↦ x' = [x +] Dropout(MHA(LN₁(x)))``, then ``[x' +] Dropout(fc2(act(fc1(LN₂(x')))))`` (pre-norm).

    With ``norm_first=False``: ``LN₁([x +] MHA(x))`` and ``LN₂([x' +] FFN(x'))``.

    Shapes:
        ``(B, T, D) → (B, T, D)``.
    """

    def __init__(
        self,
        d_model: int,
        heads: int,
        d_ff: int,
        *,
        residual: bool = False,
        norm_affine: bool = False,
        norm_first: bool = True,
        attention_bias: bool = False,
        dropout: float = 0.0,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by {heads} heads")
        self.residual, self.norm_first, self.activation = residual, norm_first, activation
        self.attention = SelfAttention(d_model, heads, d_model // heads, d_model // heads, bias=attention_bias)
        self.norm1 = nn.LayerNorm(d_model, elementwise_affine=norm_affine)
        self.norm2 = nn.LayerNorm(d_model, elementwise_affine=norm_affine)
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(ACTIVATIONS[self.activation](self.fc1(x))))

    def _skip(self, x: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        return x + update if self.residual else update

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = self._skip(x, self.dropout(self.attention(self.norm1(x))))
            return self._skip(x, self.dropout(self._ffn(self.norm2(x))))
        x = self.norm1(self._skip(x, self.dropout(self.attention(x))))
        return self.norm2(self._skip(x, self.dropout(self._ffn(x))))


@final
class Classifier(nn.Module):
    """``fc2(ReLU(fc1(x)))``. Shapes: ``(B, D) → (B, classes)``."""

    def __init__(self, d_model: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


@final
class SmallTransformer(nn.Module):
    """A ViT-style (``patch``) or text (``vocab``) encoder classifier: embed, add sinusoidal positions,
    encoder blocks, a plain LayerNorm, mean over tokens, :class:`Classifier`.

    Args:
        d_model, heads, d_ff, blocks: encoder sizes (``d_k = d_v = d_model / heads``).
        classes: outputs of the classifier; ``classifier_hidden`` its hidden width (default ``d_model``).
        patch, image, in_channels: image inputs ``(B, in_channels, image, image)`` cut into
            ``(image / patch)²`` tokens by a stride-``patch`` convolution.
        vocab, max_len: token inputs ``(B, T)`` of ids below ``vocab`` (set ``vocab`` for text).
        residual, norm_affine, norm_first, attention_bias, dropout, activation: see :class:`EncoderBlock`.

    Shapes:
        images ``(B, in_channels, image, image)`` or tokens ``(B, T)`` → logits ``(B, classes)``.

    Example:
        >>> net = SmallTransformer(d_model=16, heads=2, d_ff=32, patch=7, image=28)
        >>> net(torch.zeros(3, 1, 28, 28)).shape, sum(p.numel() for p in net.parameters())
        (torch.Size([3, 10]), 3338)
    """

    def __init__(
        self,
        *,
        d_model: int = 16,
        heads: int = 2,
        d_ff: int = 32,
        blocks: int = 1,
        classes: int = 10,
        classifier_hidden: int | None = None,
        patch: int = 7,
        image: int = 28,
        in_channels: int = 1,
        vocab: int | None = None,
        max_len: int = 64,
        residual: bool = False,
        norm_affine: bool = False,
        norm_first: bool = True,
        attention_bias: bool = False,
        dropout: float = 0.0,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.vocab = vocab
        if vocab is None:
            if image % patch:
                raise ValueError(f"image size {image} is not a multiple of the patch size {patch}")
            self.embedding: nn.Module = nn.Conv2d(in_channels, d_model, patch, stride=patch)
            length = (image // patch) ** 2
        else:
            self.embedding = nn.Embedding(vocab, d_model)
            length = max_len
        self.positions: torch.Tensor
        self.register_buffer("positions", sinusoidal_positions(length, d_model), persistent=False)
        self.encoder = nn.ModuleList(
            EncoderBlock(
                d_model, heads, d_ff, residual=residual, norm_affine=norm_affine, norm_first=norm_first,
                attention_bias=attention_bias, dropout=dropout, activation=activation,
            )
            for _ in range(blocks)
        )
        self.norm = nn.LayerNorm(d_model, elementwise_affine=False)
        self.classifier = Classifier(d_model, classifier_hidden or d_model, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embedding(x).flatten(2).transpose(1, 2) if self.vocab is None else self.embedding(x)
        tokens = add_positions(tokens, self.positions)
        for block in self.encoder:
            tokens = block(tokens)
        return self.classifier(self.norm(tokens).mean(dim=1))
