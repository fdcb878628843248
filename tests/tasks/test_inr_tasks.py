"""INR classification and editing: every registered model trains on them, with augmentation on and off."""

import pytest

from nfkit.errors import UnsupportedArchitectureError
import torch

import nfkit.models as models
from nfkit.nets.architectures import siren
from nfkit.data.generators.inr_zoo import INRZooConfig, coordinate_grid, generate_inr_zoo, render_sirens
from nfkit.data.zoo_format import load_zoo
from nfkit.groups import permutations, positive_scalings
from nfkit.tasks.runs import evaluate_run, run_task
from nfkit.spaces import load_into
from nfkit.tasks import TASKS, dilate
from nfkit.testing import assert_equivariant, assert_not_equivariant
from nfkit.tasks.loop import TrainConfig


@pytest.fixture(scope="module")
def inr_zoo(tmp_path_factory):
    out = tmp_path_factory.mktemp("inr") / "zoo"
    generate_inr_zoo(out, INRZooConfig(size=30, chunk=30, steps=40, shared_init=True), progress=False)
    return out


def test_dilation_grows_bright_strokes():
    image = -torch.ones(1, 1, 5, 5)
    image[0, 0, 2, 2] = 1.0
    grown = dilate(image)
    assert grown[0, 0, 1:4, 1:4].eq(1).all() and grown.eq(1).sum() == 9


@pytest.mark.parametrize("task", ["inr-classification", "inr-editing"])
@pytest.mark.parametrize("name", models.available())
@pytest.mark.parametrize("augment", [False, True])
def test_every_model_trains_on_every_inr_task(inr_zoo, tmp_path, task, name, augment):
    form = "invariant" if task == "inr-classification" else "equivariant"
    if "dense" not in models.family(name).spaces:
        with pytest.raises(UnsupportedArchitectureError, match="not dense ones"):
            TASKS[task]().setup(load_zoo(inr_zoo), name, {}, augment=augment)
        return
    if form not in models.family(name).forms():
        with pytest.raises(ValueError, match=f"no {form} form"):
            TASKS[task]().setup(load_zoo(inr_zoo), name, {}, augment=augment)
        return
    metrics = run_task(task, inr_zoo, name, tmp_path / "run", options={"hidden_channels": [4, 4]},
                       train=TrainConfig(epochs=1, batch_size=8), augment=augment, progress=None)
    primary = "test_accuracy" if task == "inr-classification" else "test_mse"
    assert metrics[primary] == metrics[primary]  # not NaN
    assert evaluate_run(tmp_path / "run")[primary] == pytest.approx(metrics[primary])


def test_the_editor_is_equivariant_and_its_edits_render_in_a_real_siren(inr_zoo, tmp_path):
    zoo = load_zoo(inr_zoo)
    task = TASKS["inr-editing"]()
    editor, data = task.setup(zoo, "np", {"hidden_channels": [4]})
    with torch.no_grad():
        editor.scale.fill_(0.5)  # a visible edit
    assert_equivariant(editor)
    assert_not_equivariant(editor, editor.group * positive_scalings(zoo.spec.hidden_sizes))
    edited = editor(data["test"].features[:3])
    coords = coordinate_grid(8, 8)
    for i in range(3):
        net = load_into(siren(), edited.detach(), index=i)
        with torch.no_grad():
            assert torch.allclose(net(coords)[:, 0], render_sirens(edited.detach()[i], coords)[0, :, 0], atol=1e-5)
    assert editor.group == permutations(zoo.spec.hidden_sizes)


def test_training_the_editor_lowers_the_error(inr_zoo, tmp_path):
    metrics = run_task("inr-editing", inr_zoo, "np", tmp_path / "run", options={"hidden_channels": [8, 8]},
                       train=TrainConfig(epochs=8, batch_size=8, learning_rate=3e-3, patience=None), progress=None)
    assert metrics["test_mse"] < 0.8 * metrics["test_mse_unedited"]
    assert (tmp_path / "run" / "edits.png").exists()


def test_classification_canonicalises_sign_symmetric_inrs_by_default_and_records_it(inr_zoo, tmp_path):
    import json

    zoo = load_zoo(inr_zoo)
    task = TASKS["inr-classification"]()
    assert task.model_defaults(zoo, "np") == {"canonical": True, "hidden_channels": [32, 32, 32]}
    assert task.model_defaults(zoo, "hnp") == {"canonical": True}
    # sign-equivariant already: its canonical front sits between its layers and an HNP trunk
    assert task.model_defaults(zoo, "monomial") == {"canonical": True, "trunk_channels": [32, 32, 32]}
    assert task.model_defaults(zoo, "magep") == {}
    run_task("inr-classification", inr_zoo, "np", tmp_path / "run", options={"hidden_channels": [4]},
             train=TrainConfig(epochs=1, batch_size=8), progress=None)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["options"] == {"canonical": True, "hidden_channels": [4]}
    # the user's choice wins
    run_task("inr-classification", inr_zoo, "np", tmp_path / "off", options={"hidden_channels": [4], "canonical": False},
             train=TrainConfig(epochs=1, batch_size=8), progress=None)
    assert json.loads((tmp_path / "off" / "config.json").read_text())["options"]["canonical"] is False
