"""INR zoo generation: fit quality, labels, round trip into a real SIREN module, symmetry."""

import pytest
import torch

from nfkit.nets.architectures import siren
from nfkit.cli import main
from nfkit.data.generators.inr_zoo import INRZooConfig, coordinate_grid, generate_inr_zoo, render_sirens
from nfkit.data.generators.sources import load_digits
from nfkit.data.zoo_format import load_zoo
from nfkit.groups import Factor
from nfkit.spaces import load_into, weights_of

SMALL = INRZooConfig(size=10, chunk=4, steps=150, seed=1)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    out = tmp_path_factory.mktemp("inr") / "zoo"
    generate_inr_zoo(out, SMALL, progress=False)
    return load_zoo(out)


def test_labels_and_fit_quality(zoo):
    images = load_digits(test_fraction=0.0)
    assert len(zoo) == 10 and zoo.kind == "inr"
    assert zoo.table["label"].tolist() == images.train_labels[:10].tolist()
    assert (zoo.table["psnr"] > 25).all()
    assert zoo.spec.symmetry_group().factors == {Factor.PERMUTATION, Factor.SIGN_FLIP}


def test_stored_sirens_render_their_images_as_real_modules(zoo):
    images = load_digits(test_fraction=0.0).train_images
    coords = coordinate_grid(8, 8)
    for i in range(len(zoo)):
        net = load_into(siren(), zoo.features, index=i)
        with torch.no_grad():
            rendered = net(coords).view(1, 8, 8)
        mse = (rendered - images[int(zoo.table["image"][i])]).square().mean().item()
        assert mse == pytest.approx(zoo.table["mse"][i], rel=1e-3, abs=1e-9)
        assert torch.allclose(render_sirens(weights_of(net), coords)[0, :, 0], rendered.flatten(), atol=1e-6)


def test_sign_flips_keep_the_rendering(zoo):
    coords = coordinate_grid(8, 8)
    g = zoo.spec.symmetry_group().sample(torch.Generator().manual_seed(0))
    one = zoo.features[0]
    assert torch.allclose(render_sirens(g.act(one), coords), render_sirens(one, coords), atol=1e-5)


def test_cli(tmp_path):
    assert main(["zoo", "generate", "inr", "--out", str(tmp_path / "z"), "--size", "3", "--steps", "5", "--workers", "1"]) == 0
    assert len(load_zoo(tmp_path / "z")) == 3
    assert main(["zoo", "generate", "graph", "--out", str(tmp_path / "t")]) == 2


def test_narrow_initialisation_is_the_dws_one_and_is_recorded(tmp_path):
    import math

    from nfkit.data.generators.inr_zoo import _siren_init
    from nfkit.errors import InvalidOptionError

    g = torch.Generator().manual_seed(0)
    w1, b1, w2, b2, w3, b3 = _siren_init(4, 32, g, "narrow")
    assert float(w1.abs().max()) <= math.sqrt(6 / 2) / 30 and float(w2.abs().max()) <= math.sqrt(6 / 32) / 30
    assert all(float(b.abs().max()) == 0 for b in (b1, b2, b3))
    assert float(_siren_init(4, 32, g, "siren")[0].abs().max()) > math.sqrt(6 / 2) / 30  # U(±1/2): much wider
    assert "init" not in INRZooConfig().to_dict() and INRZooConfig(init="narrow").to_dict()["init"] == "narrow"
    with pytest.raises(InvalidOptionError, match="unknown init"):
        INRZooConfig(init="wide")
    out = generate_inr_zoo(tmp_path / "z", INRZooConfig(size=4, steps=3, chunk=4, init="narrow"), workers=1, progress=None)
    assert out is not None and load_zoo(out).metadata["generator"]["init"] == "narrow"
