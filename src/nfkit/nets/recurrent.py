"""A recurrent sequence classifier: embedding or linear input, a GRU or LSTM, a linear read-out."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

__all__ = ["RecurrentClassifier"]


class RecurrentClassifier(nn.Module):
    """Reads a sequence and classifies it from the last hidden state.

    Args:
        inputs: vocabulary size (token sequences, through an ``nn.Embedding`` of ``embedding`` dims)
            or, with ``tokens=False``, features per step (real-valued sequences, read directly).
        hidden: the recurrent layer's hidden units.
        classes: outputs.
        cell: ``"gru"`` or ``"lstm"``.
        tokens: whether inputs are token ids.
        embedding: embedding width for token inputs.

    Shapes:
        input ``(B, T)`` token ids or ``(B, T, inputs)``; output ``(B, classes)``.

    Example:
        >>> RecurrentClassifier(8, 16, 10, tokens=False)(torch.randn(2, 5, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self, inputs: int, hidden: int, classes: int, cell: Literal["gru", "lstm"] = "gru", *,
        tokens: bool = True, embedding: int = 16,
    ) -> None:
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}")
        self.embedding: nn.Module = nn.Embedding(inputs, embedding) if tokens else nn.Identity()
        width = embedding if tokens else inputs
        self.recurrent: nn.GRU | nn.LSTM = (nn.GRU if cell == "gru" else nn.LSTM)(width, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.recurrent(self.embedding(x))
        return self.readout(out[:, -1])
