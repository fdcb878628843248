"""Generate an INR zoo: one SIREN per image, fitted many at once.

Each net is the SIREN 2 → 32 → 32 → 1 with ``sin(30 · (W x + b))`` (Sitzmann et al. 2020; the
NFN/DWS INR architecture), SIREN-initialised, fitted by full-batch Adam to the image's pixels in
``[-1, 1]`` on a coordinate grid over ``[-1, 1]²``. A chunk's nets are batched matrix products, so
one step fits them all. Each net is labelled with the image's class, its index and the fit
quality (MSE and PSNR with peak-to-peak 2).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nfkit.data.generators.runner import ZooRecipe, generate_zoo
from nfkit.data.generators.sources import IMAGE_DATASETS, ImageSplit, load_images
from nfkit.data.published.inr_sets import siren_spec
from nfkit.errors import InvalidOptionError
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.render import W0, coordinate_grid, render_sirens
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["INRZooConfig", "INRRecipe", "generate_inr_zoo", "coordinate_grid", "fit_sirens", "render_sirens", "W0"]



@dataclass(frozen=True)
class INRZooConfig:
    """Settings of a generated INR zoo (stored in its manifest).

    ``size`` images of ``dataset`` (``digits``: 8×8, at most 1,797; ``mnist``: 28×28, at most 5,000),
    each fitted ``views`` times from independent initialisations (the NFN paper's augmented copies);
    splits are by image, so no image is in two splits.
    """

    size: int = 1797
    seed: int = 0
    steps: int = 500
    learning_rate: float = 1e-3
    hidden: int = 32
    chunk: int = 200
    dataset: str = "digits"
    #: every SIREN starts from one common initialisation (drawn from ``seed``), so that weight
    #: differences encode the images; otherwise each draws its own, as in the NFN and DWS sets
    shared_init: bool = False
    views: int = 1
    #: ``"siren"``: Sitzmann et al.'s initialisation (first layer U(±1/fan_in): a random high-frequency
    #: basis that fitting barely moves); ``"narrow"``: every layer U(±√(6/fan_in)/ω₀) and zero biases, as
    #: the DWSNets INR sets (a low-frequency start that fitting must reshape, so the weights carry the image)
    init: str = "siren"

    def __post_init__(self) -> None:
        for name in ("size", "steps", "hidden", "chunk", "views"):
            if getattr(self, name) <= 0:
                raise InvalidOptionError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.dataset not in IMAGE_DATASETS:
            raise InvalidOptionError(f"unknown dataset {self.dataset!r}; available: {', '.join(IMAGE_DATASETS)}")
        if self.init not in INITS:
            raise InvalidOptionError(f"unknown init {self.init!r}; available: {', '.join(INITS)}")
        if self.size > IMAGE_DATASETS[self.dataset]:
            raise InvalidOptionError(f"{self.dataset} has {IMAGE_DATASETS[self.dataset]} images; size {self.size} is larger")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready settings (``views`` only when not 1, so earlier zoos keep their settings)."""
        d = asdict(self)
        if self.views == 1:
            del d["views"]
        if self.init == "siren":
            del d["init"]
        return d


INITS = ("siren", "narrow")


def _siren_init(n: int, hidden: int, generator: torch.Generator, init: str = "siren") -> list[torch.Tensor]:
    """``siren``: first layer U(±1/fan_in), others U(±√(6/fan_in)/ω₀), biases U(±1/√fan_in) (Sitzmann et al.
    2020, Sec. 3.2); ``narrow``: every layer U(±√(6/fan_in)/ω₀), biases 0 (DWSNets' INRs)."""
    shapes = [(hidden, 2), (hidden, hidden), (1, hidden)]
    params = []
    for i, (n_out, n_in) in enumerate(shapes):
        bound = 1.0 / n_in if i == 0 and init == "siren" else math.sqrt(6.0 / n_in) / W0
        params.append((torch.rand(n, n_out, n_in, generator=generator) * 2 - 1) * bound)
        bias = (torch.rand(n, n_out, generator=generator) * 2 - 1) / math.sqrt(n_in)
        params.append(bias if init == "siren" else torch.zeros_like(bias))
    return params


def fit_sirens(images: torch.Tensor, config: INRZooConfig, generator: torch.Generator) -> tuple[WeightSpaceFeatures, torch.Tensor]:
    """Fit one SIREN per image ``(N, 1, H, W)`` in ``[-1, 1]``; return features (batch N) and per-net MSE."""
    n, _, height, width = images.shape
    coords = coordinate_grid(height, width)
    target = images.reshape(n, -1, 1)
    spec = siren_spec(1, config.hidden, W0)
    if config.shared_init:
        common = _siren_init(1, config.hidden, torch.Generator().manual_seed(config.seed), config.init)
        params = [p.expand(n, *p.shape[1:]).clone().requires_grad_() for p in common]
    else:
        params = [p.requires_grad_() for p in _siren_init(n, config.hidden, generator, config.init)]
    optimizer = torch.optim.Adam(params, lr=config.learning_rate)

    def features() -> WeightSpaceFeatures:
        return WeightSpaceFeatures(spec, [params[0][:, None], params[2][:, None], params[4][:, None]],
                                   [params[1][:, None], params[3][:, None], params[5][:, None]])

    for _ in range(config.steps):
        optimizer.zero_grad(set_to_none=True)
        # the sum of per-net means: each net's gradient is its own, and Adam is elementwise
        loss = (render_sirens(features(), coords) - target).square().mean(dim=(1, 2)).sum()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        fitted = features().detach().clone()
        mse = (render_sirens(fitted, coords) - target).square().mean(dim=(1, 2))
    return fitted, mse


class INRRecipe(ZooRecipe):
    """The INR zoo as a :class:`~nfkit.data.generators.runner.ZooRecipe`: net ``i`` fits image ``order[i]``."""

    kind = "inr"

    def __init__(self, config: INRZooConfig) -> None:
        self.config = config

    def load_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        data: ImageSplit = load_images(self.config.dataset, test_fraction=0.0)
        return data.train_images, data.train_labels

    def num_nets(self) -> int:
        return self.config.size * self.config.views

    def split_units(self, table: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        return table["image"].astype(np.int64), self.config.size

    def run_chunk(self, k: int, data: object, generator: torch.Generator) -> tuple[np.ndarray, dict[str, list[object]]]:
        assert isinstance(data, tuple)
        images, labels = data
        first = k * self.config.chunk
        ids = np.arange(first, min(first + self.config.chunk, self.num_nets()))
        image = ids % self.config.size  # net n fits image n mod size, its view n // size
        fitted, mse = fit_sirens(images[image], self.config, generator)
        psnr = 10 * torch.log10(4.0 / mse.clamp_min(1e-30))
        table: dict[str, list[object]] = {
            "net_id": ids.tolist(),
            "image": image.tolist(),
            "label": labels[image].tolist(),
            "mse": mse.tolist(),
            "psnr": psnr.tolist(),
        }
        if self.config.views > 1:
            table["view"] = (ids // self.config.size).tolist()
        return fitted.flatten()[:, 0].numpy(), table

    def spec(self, table: dict[str, np.ndarray]) -> WeightSpaceSpec:
        return siren_spec(1, self.config.hidden, W0)


def generate_inr_zoo(out: str | Path, config: INRZooConfig = INRZooConfig(), **options: Any) -> Path | None:
    """Generate (or resume) a INR zoo into ``out``; ``options`` are :func:`~nfkit.data.generators.runner.generate_zoo`'s
    (``shard``, ``workers``, ``overwrite``, ``progress``)."""
    return generate_zoo(out, INRRecipe(config), **options)
