"""Named networks: the small ones ``nfkit check`` runs on, and the reference ones from the literature."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nfkit.nets.lora import LoRALinear
from nfkit.nets.recurrent import RecurrentClassifier
from nfkit.nets.resnet import SmallResNet
from nfkit.nets.sine import Sine
from nfkit.nets.transformer import SmallTransformer

__all__ = [
    "EncoderClassifier",
    "ViTBlock",
    "ViTClassifier",
    "small_cnn_zoo",
    "siren",
    "mlp",
    "torch_encoder",
    "small_transformer_zoo",
    "CHECK_ARCHITECTURES",
    "REFERENCE_ARCHITECTURES",
]


def small_cnn_zoo(activation: Callable[[], nn.Module] = nn.ReLU, in_channels: int = 1, padding: int = 0) -> nn.Sequential:
    """The Small CNN Zoo network (Unterthiner et al. 2020): 3 × conv 16 (3×3, stride 2), GAP, dense 10.

    4,970 parameters for grayscale inputs. ``padding=1`` fits 8×8 images (8 → 4 → 2 → 1) with the
    same weight space.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, stride=2, padding=padding),
        activation(),
        nn.Conv2d(16, 16, 3, stride=2, padding=padding),
        activation(),
        nn.Conv2d(16, 16, 3, stride=2, padding=padding),
        activation(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


def siren(in_features: int = 2, hidden: int = 32, out_features: int = 1, w0: float = 30.0) -> nn.Sequential:
    """A SIREN ``in → hidden → hidden → out`` with sine activations (1,185 parameters by default)."""
    return nn.Sequential(
        nn.Linear(in_features, hidden), Sine(w0), nn.Linear(hidden, hidden), Sine(w0), nn.Linear(hidden, out_features)
    )


def mlp(sizes: tuple[int, ...], activation: Callable[[], nn.Module] = nn.ReLU, bias: bool = True) -> nn.Sequential:
    """An MLP with one activation after every hidden layer."""
    modules: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        modules.append(nn.Linear(sizes[i], sizes[i + 1], bias=bias))
        if i < len(sizes) - 2:
            modules.append(activation())
    return nn.Sequential(*modules)


def _small_cnn(activation: Callable[[], nn.Module]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2),
        activation(),
        nn.Conv2d(4, 5, 3, stride=2),
        activation(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 3),
    )


def torch_encoder(d_model: int = 8, heads: int = 2, d_ff: int = 16, layers: int = 2, norm_first: bool = True) -> nn.TransformerEncoder:
    """PyTorch's encoder (residuals, affine LayerNorms, packed in-projection with biases)."""
    layer = nn.TransformerEncoderLayer(d_model, heads, d_ff, dropout=0.0, batch_first=True, norm_first=norm_first)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class EncoderClassifier(nn.Module):
    """Token features → a linear embedding → PyTorch encoder layers → the mean token → a linear classifier.

    Shapes:
        input ``(B, T, inputs)``, output ``(B, classes)``.

    Example:
        >>> import torch
        >>> EncoderClassifier(4, 6, 2, 8, 3)(torch.randn(2, 5, 4)).shape
        torch.Size([2, 3])
    """

    def __init__(self, inputs: int, d_model: int, heads: int, d_ff: int, classes: int, *, layers: int = 1,
                 norm_first: bool = True) -> None:
        super().__init__()
        self.embed = nn.Linear(inputs, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, d_ff, dropout=0.0, batch_first=True, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


class ViTBlock(nn.Module):
    """A pre-norm transformer block written out by hand, as ViT code does: ``x + MHA(LN₁ x)``, then
    ``x + fc₂(GELU(fc₁(LN₂ x)))`` (``nn.MultiheadAttention`` and two ``nn.Linear``, not an encoder layer).

    Shapes:
        ``(B, T, d_model)`` → the same.
    """

    def __init__(self, d_model: int, heads: int, d_ff: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.fc1, self.fc2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm1(x)
        x = x + self.attn(n, n, n, need_weights=False)[0]
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class ViTClassifier(nn.Module):
    """Token features → a linear embedding → :class:`ViTBlock` s → a final LayerNorm → the mean token → a
    linear classifier.

    Shapes:
        input ``(B, T, inputs)``, output ``(B, classes)``.

    Example:
        >>> import torch
        >>> ViTClassifier(4, 6, 2, 8, 3)(torch.randn(2, 5, 4)).shape
        torch.Size([2, 3])
    """

    def __init__(self, inputs: int, d_model: int, heads: int, d_ff: int, classes: int, *, layers: int = 1) -> None:
        super().__init__()
        self.embed = nn.Linear(inputs, d_model)
        self.blocks = nn.Sequential(*(ViTBlock(d_model, heads, d_ff) for _ in range(layers)))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.blocks(self.embed(x))).mean(dim=1))


def small_transformer_zoo(vision: bool = True) -> SmallTransformer:
    """The Small Transformer Zoo's network (Transformer-NFN, App. F): D = 32, 2 heads, FFN 64, 2 blocks,
    no residuals, plain LayerNorms; MNIST 4×4 patches, or 32-d token embeddings (vocabulary 1000 here)."""
    if vision:
        return SmallTransformer(d_model=32, heads=2, d_ff=64, blocks=2, patch=4, image=28)
    return SmallTransformer(d_model=32, heads=2, d_ff=64, blocks=2, vocab=1000, classes=4)


#: Small real networks whose specs ``nfkit check`` runs on (fast in float64).
CHECK_ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "mlp-relu": lambda: mlp((3, 6, 5, 2), nn.ReLU),
    "mlp-tanh": lambda: mlp((3, 6, 5, 2), nn.Tanh),
    "siren": lambda: siren(2, 8, 1),
    "mlp-gelu-nobias": lambda: mlp((3, 6, 5, 2), nn.GELU, bias=False),
    # 784 inputs: HNP, Monomial-NFN and MAGEP-NFN factorise their folded blocks here by default
    "mlp-784-relu": lambda: mlp((784, 6, 5, 3), nn.ReLU),
    "cnn-relu": lambda: _small_cnn(nn.ReLU),
    "cnn-tanh": lambda: _small_cnn(nn.Tanh),
    "transformer-torch": lambda: torch_encoder(6, 2, 8, 2),
    "transformer-zoo": lambda: SmallTransformer(d_model=6, heads=2, d_ff=8, blocks=2, patch=4, image=8, classes=3),
    # traced into universal weight spaces (nfkit.spaces.universal_spec_of)
    "resnet-bn": lambda: SmallResNet(width=3),
    "gru-embedding": lambda: RecurrentClassifier(7, 4, 3, "gru", embedding=3),
    "lstm": lambda: RecurrentClassifier(3, 4, 2, "lstm", tokens=False),
    "lora-mlp": lambda: nn.Sequential(LoRALinear(3, 5, rank=2), nn.ReLU(), nn.Linear(5, 2)),
    "encoder-classifier": lambda: EncoderClassifier(3, 4, 2, 6, 2, layers=2),
    "vit-classifier": lambda: ViTClassifier(3, 4, 2, 6, 2, layers=2),
    # the zoo's transformer inside a container, so spec_of gives its traced description, not the transformer view
    "transformer-zoo-traced": lambda: nn.Sequential(
        SmallTransformer(d_model=6, heads=2, d_ff=8, blocks=2, patch=4, image=8, classes=3)),
}

#: Architectures of the published benchmarks.
REFERENCE_ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "small-cnn-zoo": small_cnn_zoo,
    "small-cnn-zoo-tanh": lambda: small_cnn_zoo(nn.Tanh),
    "siren-mnist": siren,
    "mnist-mlp": lambda: mlp((784, 64, 64, 10)),
    "small-transformer-zoo": small_transformer_zoo,
    "resnet-small": lambda: SmallResNet(1, 8, 10),
    "gru-sequence": lambda: RecurrentClassifier(16, 32, 10, "gru", embedding=16),
    "encoder-rows": lambda: EncoderClassifier(28, 32, 4, 64, 10, layers=2),
    "lora-mlp": lambda: nn.Sequential(LoRALinear(784, 64, rank=4), nn.ReLU(), LoRALinear(64, 64, rank=4), nn.ReLU(), nn.Linear(64, 10)),
}
