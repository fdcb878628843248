from nfkit.nets.architectures import REFERENCE_ARCHITECTURES
from nfkit.cli import main
from nfkit.models import available
from nfkit.cli.params import parameter_rows
from nfkit.spaces import spec_of


def test_small_cnn_zoo_has_the_published_size():
    assert spec_of(REFERENCE_ARCHITECTURES["small-cnn-zoo"]()).num_parameters == 4970
    assert spec_of(REFERENCE_ARCHITECTURES["siren-mnist"]()).num_parameters == 1185


def test_every_model_is_counted_and_close_to_the_reference_configs():
    rows = {(r[0], r[1]): r for r in parameter_rows("small-cnn-zoo")}
    assert {name for name, _ in rows} == set(available())
    count = lambda key: int(rows[key][2].replace(",", ""))  # noqa: E731
    # monomial-magep.md §3.5: Monomial-NFN ReLU (hidden [16, 16, 5], head 200) has 254,619 parameters
    assert abs(count(("monomial", "invariant")) - 254_619) / 254_619 < 0.01
    # MAGEP ([20, 20], head 500): the same head (261,501); the trunk leaves out the redundant τ_WW terms
    assert rows[("magep", "invariant")][3] == "261,501"
    assert abs(count(("magep", "invariant")) - 1_008_521) / 1_008_521 < 0.05


def test_params_command(capsys):
    assert main(["params", "--hidden-channels", "8", "8"]) == 0
    out = capsys.readouterr().out
    assert "4,970 parameters" in out and "hidden_channels=[8, 8]" in out
    for name in available():
        assert f"\n{name} " in out
