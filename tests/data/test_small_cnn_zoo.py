"""The Small CNN Zoo loader, on fixtures written in exactly the published format."""

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nfkit.nets.architectures import small_cnn_zoo
from nfkit.data import load_small_cnn_zoo
from nfkit.data.published.small_cnn_zoo import ZooFormatError
from nfkit.groups import Factor
from nfkit.spaces import load_into, spec_of

LAYOUT = """varname,start_idx,end_idx,size,shape
sequential/conv2d/bias:0,0,16,16,"(16,)"
sequential/conv2d/kernel:0,16,160,144,"(3, 3, 1, 16)"
sequential/conv2d_1/bias:0,160,176,16,"(16,)"
sequential/conv2d_1/kernel:0,176,2480,2304,"(3, 3, 16, 16)"
sequential/conv2d_2/bias:0,2480,2496,16,"(16,)"
sequential/conv2d_2/kernel:0,2496,4800,2304,"(3, 3, 16, 16)"
sequential/dense/bias:0,4800,4810,10,"(10,)"
sequential/dense/kernel:0,4810,4970,160,"(16, 10)"
"""


def _tf_row(net: nn.Sequential) -> np.ndarray:
    """One weights.npy row in TensorFlow layouts, in layout.csv's column order."""
    convs = [m for m in net if isinstance(m, nn.Conv2d)]
    dense = next(m for m in net if isinstance(m, nn.Linear))
    parts = []
    for conv in convs:
        parts += [conv.bias.detach().numpy(), conv.weight.detach().permute(2, 3, 1, 0).numpy().ravel()]
    parts += [dense.bias.detach().numpy(), dense.weight.detach().t().numpy().ravel()]
    return np.concatenate(parts).astype(np.float32)


def write_zoo(root: Path, nets: list[tuple[nn.Sequential, str, int, float]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "weights.npy", np.stack([_tf_row(net) for net, *_ in nets]))
    (root / "layout.csv").write_text(LAYOUT)
    with gzip.open(root / "metrics.csv.gz", "wt", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["modeldir", "step", "test_accuracy", "train_accuracy", "config.activation", "config.learning_rate"])
        for k, (_, act, step, acc) in enumerate(nets):
            writer.writerow([f"run{k // 2}", step, acc, acc + 0.05, act, 1e-3 * (k + 1)])


@pytest.fixture
def zoo_nets() -> list[tuple[nn.Sequential, str, int, float]]:
    nets = []
    for k in range(12):
        act = "relu" if k % 3 else "tanh"
        net = small_cnn_zoo(nn.ReLU if act == "relu" else nn.Tanh)
        nets.append((net, act, 86 if k % 4 else 20, 0.1 + 0.07 * k))
    return nets


def test_round_trip_reproduces_every_network(tmp_path, zoo_nets):
    write_zoo(tmp_path, zoo_nets)
    zoo = load_small_cnn_zoo(tmp_path, step=None, activation="relu")
    assert zoo.spec.shape_key == spec_of(small_cnn_zoo()).shape_key
    assert Factor.POSITIVE_SCALING in zoo.spec.symmetry_group().factors
    x = torch.randn(5, 1, 28, 28)
    for i, row in enumerate(zoo.table["row"].astype(int)):
        original = zoo_nets[row][0]
        twin = load_into(small_cnn_zoo(nn.ReLU), zoo.features, index=i)  # fresh weights, overwritten
        assert torch.allclose(twin(x), original(x), atol=1e-6)
        assert zoo.table["test_accuracy"][i] == pytest.approx(zoo_nets[row][3])


def test_filters_and_mixed_activations(tmp_path, zoo_nets):
    write_zoo(tmp_path, zoo_nets)
    final = load_small_cnn_zoo(tmp_path)
    assert set(final.table["step"]) == {86.0} and len(final) == 9
    assert str(final.spec.layers[0].activation) == "mixed"
    assert final.spec.symmetry_group().factors == {Factor.PERMUTATION}
    tanh = load_small_cnn_zoo(tmp_path, activation="tanh")
    assert set(tanh.table["config.activation"]) == {"tanh"}
    assert Factor.SIGN_FLIP in tanh.spec.symmetry_group().factors
    assert tanh.column("test_accuracy").dtype == torch.float32


def test_splits_follow_the_published_protocol(tmp_path, zoo_nets):
    write_zoo(tmp_path, zoo_nets)
    order = np.random.default_rng(0).permutation(12)
    (tmp_path / "split.csv").write_text("0\n" + "\n".join(map(str, order)) + "\n")
    zoo = load_small_cnn_zoo(tmp_path, step=None, order_file=tmp_path / "split.csv")
    assert list(zoo.table["row"].astype(int)) == list(order)
    n = len(zoo)
    assert list(zoo.splits["test"]) == list(range(n - n // 2, n))
    together = sorted(np.concatenate([zoo.splits["train"], zoo.splits["val"]]).tolist())
    assert together == list(range(n - n // 2)) and len(zoo.splits["train"]) == int(0.8 * (n - n // 2))


def test_bad_files_name_the_file(tmp_path, zoo_nets):
    write_zoo(tmp_path, zoo_nets)
    raw = (tmp_path / "weights.npy").read_bytes()
    (tmp_path / "weights.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ZooFormatError, match=r"weights.npy .*truncated"):
        load_small_cnn_zoo(tmp_path)
    np.save(tmp_path / "weights.npy", np.zeros((12, 4000), dtype=np.float32))
    with pytest.raises(ZooFormatError, match="4970 columns"):
        load_small_cnn_zoo(tmp_path)
    np.save(tmp_path / "weights.npy", np.zeros((11, 4970), dtype=np.float32))
    with pytest.raises(ZooFormatError, match="12 rows but weights.npy has 11"):
        load_small_cnn_zoo(tmp_path)
    bad = np.stack([_tf_row(net) for net, *_ in zoo_nets])
    bad[5, 100] = np.nan
    np.save(tmp_path / "weights.npy", bad)
    with pytest.raises(ZooFormatError, match="row 5 contains NaN"):
        load_small_cnn_zoo(tmp_path, step=None)
    (tmp_path / "metrics.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(ZooFormatError, match="metrics.csv.gz is not a readable gzip"):
        load_small_cnn_zoo(tmp_path)
    (tmp_path / "layout.csv").write_text(LAYOUT.replace('"(3, 3, 1, 16)"', '"(3, 3, 2, 16)"'))
    with pytest.raises(ZooFormatError, match="layout.csv, line 3"):
        load_small_cnn_zoo(tmp_path)
    (tmp_path / "layout.csv").unlink()
    with pytest.raises(ZooFormatError, match="layout.csv is missing"):
        load_small_cnn_zoo(tmp_path)


def test_empty_selection_is_an_error(tmp_path, zoo_nets):
    write_zoo(tmp_path, zoo_nets)
    with pytest.raises(ZooFormatError, match="no rows"):
        load_small_cnn_zoo(tmp_path, activation="gelu")


def test_rebuilt_networks_reproduce_their_recorded_accuracies(tmp_path):
    """module_from_spec of a loaded zoo is the published stride-2 network, not a stride-1 one."""
    from nfkit.spaces import module_from_spec

    torch.manual_seed(0)
    images = torch.randn(300, 1, 28, 28)
    teacher = small_cnn_zoo()
    with torch.no_grad():
        labels = teacher(images).argmax(-1)
    nets = []
    for k in range(6):
        net = small_cnn_zoo()
        with torch.no_grad():  # students between the teacher and a random net, so accuracies spread
            for p, q in zip(net.parameters(), teacher.parameters()):
                p.mul_(k / 5).add_(q, alpha=1 - k / 5)
            accuracy = (net(images).argmax(-1) == labels).double().mean().item()
        nets.append((net, "relu", 86, accuracy))
    write_zoo(tmp_path, nets)
    zoo = load_small_cnn_zoo(tmp_path, step=None)
    assert [layer.stride for layer in zoo.spec.layers[:3]] == [(2, 2)] * 3
    recorded = zoo.table["test_accuracy"].astype(float)
    assert recorded.max() - recorded.min() > 0.3
    for row in range(len(zoo)):
        net = load_into(module_from_spec(zoo.spec), zoo.features, index=row)
        with torch.no_grad():
            accuracy = (net(images).argmax(-1) == labels).double().mean().item()
        assert accuracy == pytest.approx(recorded[row], abs=1e-9)
