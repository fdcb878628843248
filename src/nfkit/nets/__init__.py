"""The source networks nfkit ships: the SIREN activation, the Small-Transformer-Zoo layout, and the
named architectures (the small ones ``nfkit check`` runs on, the reference ones of the literature).

The bottom of the stack: plain ``torch.nn`` modules that know nothing of weight spaces.
"""

from nfkit.nets.architectures import (
    CHECK_ARCHITECTURES,
    REFERENCE_ARCHITECTURES,
    mlp,
    siren,
    small_cnn_zoo,
    small_transformer_zoo,
    torch_encoder,
)
from nfkit.nets.lora import LoRALinear
from nfkit.nets.recurrent import RecurrentClassifier
from nfkit.nets.resnet import ResidualBlock, SmallResNet
from nfkit.nets.sine import Sine
from nfkit.nets.transformer import EncoderBlock, SmallTransformer

__all__ = [
    "CHECK_ARCHITECTURES",
    "REFERENCE_ARCHITECTURES",
    "EncoderBlock",
    "LoRALinear",
    "RecurrentClassifier",
    "ResidualBlock",
    "Sine",
    "SmallResNet",
    "SmallTransformer",
    "mlp",
    "siren",
    "small_cnn_zoo",
    "small_transformer_zoo",
    "torch_encoder",
]
