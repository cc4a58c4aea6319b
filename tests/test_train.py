"""fit() and History: real (tiny) training runs on a synthetic image task, a few seconds each."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tlkit.freezing import set_frozen_bn_eval
from tlkit.train import History, balanced_class_weights, fit, validate

CLASSES = ["red-horizontal", "red-vertical", "blue-horizontal", "blue-vertical"]


def stripes(n: int, seed: int, size: int = 12) -> TensorDataset:
    """4 classes of noisy coloured stripes: colour (red/blue) x direction (horizontal/vertical).

    Colour alone gives 50%; the direction needs a convolution to see. Chance is 25%.
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    coords = torch.arange(size)
    phase = torch.randint(0, 2, (n,), generator=g)
    images = 0.8 * torch.randn(n, 3, size, size, generator=g)
    for i in range(n):
        colour, vertical = divmod(int(labels[i]), 2)
        line = ((coords + phase[i]) % 2).float()  # 0 1 0 1 ...
        pattern = line.view(1, size) if vertical else line.view(size, 1)
        images[i, 0 if colour == 0 else 2] += pattern.expand(size, size)
    return TensorDataset(images, labels)


class TinyNet(nn.Module):
    """A two-block CNN shaped like a pretrained model: ``features`` (blocks) + ``classifier``."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
            nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(16, classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


def linear_model(classes: int = 4, size: int = 12) -> nn.Module:
    """No BatchNorm, no head attribute: a plain Sequential (fit uses one parameter group)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, classes))


class StopAfter(Dataset):
    """Wraps a data set; from the ``k``-th item fetched on, raises ``error`` or returns NaN images."""

    def __init__(self, data: Dataset, k: int, error: type[BaseException] | None = None):
        self.data, self.k, self.error, self.fetched = data, k, error, 0

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        self.fetched += 1
        image, label = self.data[i]
        if self.fetched > self.k:
            if self.error is not None:
                raise self.error()
            image = torch.full_like(image, float("nan"))
        return image, label


@pytest.fixture(scope="module")
def data():
    return stripes(160, seed=0), stripes(64, seed=1)


def quiet(**kwargs):
    return dict(progress=False, verbose=False, device="cpu", **kwargs)


def val_metrics(model, val):
    return validate(model, DataLoader(val, batch_size=64), nn.CrossEntropyLoss())


def test_tiny_cnn_learns_the_task_well_above_chance(data):
    train, val = data
    torch.manual_seed(0)
    history = fit(TinyNet(), train, val, epochs=6, lr=1e-2, batch_size=16, seed=0, **quiet())
    assert len(history) == 6
    assert history.stopped_reason == "completed"
    assert history.best["val_acc"] >= 0.8  # chance is 0.25
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert set(history[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}


def test_frozen_batchnorm_statistics_do_not_move(data):
    train, val = data
    torch.manual_seed(0)
    model = TinyNet()
    for p in model.features.parameters():
        p.requires_grad = False
    bns = [m for m in model.features.modules() if isinstance(m, nn.BatchNorm2d)]
    before = [(bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()) for bn in bns]
    body_before = {k: v.clone() for k, v in model.features.state_dict().items()}
    head_before = model.classifier.weight.clone()

    fit(model, train, val, epochs=2, lr=1e-2, **quiet())

    for bn, (mean, var, count) in zip(bns, before):
        assert torch.equal(bn.running_mean, mean)
        assert torch.equal(bn.running_var, var)
        assert torch.equal(bn.num_batches_tracked, count)
    for k, v in model.features.state_dict().items():
        assert torch.equal(v, body_before[k]), k
    assert not torch.equal(model.classifier.weight, head_before)  # the head did learn


def test_without_freezing_batchnorm_statistics_do_move(data):
    """The control for the test above: trainable BN layers update their running statistics."""
    train, _ = data
    torch.manual_seed(0)
    model = TinyNet()
    mean_before = model.features[0][1].running_mean.clone()
    fit(model, train, epochs=1, **quiet())
    assert set_frozen_bn_eval(model) == 0
    assert not torch.equal(model.features[0][1].running_mean, mean_before)


def test_nan_loss_stops_training_restores_best_weights_and_suggests_lower_lr(data):
    train, val = data
    torch.manual_seed(0)
    model = linear_model()
    poisoned = StopAfter(train, k=len(train) + 20)  # NaN images from the middle of epoch 2
    with pytest.warns(RuntimeWarning, match=r"diverged.*lower one, e\.g\. lr=0\.0001"):
        history = fit(model, poisoned, val, epochs=4, lr=1e-3, progress=False, verbose=False, device="cpu")
    assert history.stopped_reason == "diverged"
    assert len(history) == 1
    assert "epoch 1" in history.message
    assert all(torch.isfinite(p).all() for p in model.parameters())
    loss, acc = val_metrics(model, val)
    assert acc == history.best["val_acc"]
    assert loss == pytest.approx(history.best["val_loss"], rel=1e-5)


def test_nan_in_first_epoch_restores_initial_weights_and_prints_advice(data, capsys):
    train, _ = data
    torch.manual_seed(0)
    model = linear_model()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(RuntimeWarning, match="before training"):
        history = fit(model, StopAfter(train, k=40), epochs=2, lr=0.5, progress=False, device="cpu")
    assert history.stopped_reason == "diverged"
    assert len(history) == 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, initial[k])
    assert "lr=0.05" in capsys.readouterr().out


def test_keyboard_interrupt_returns_history_with_best_weights(data):
    train, val = data
    torch.manual_seed(0)
    model = TinyNet()
    interrupting = StopAfter(train, k=2 * len(train) + 30, error=KeyboardInterrupt)  # during epoch 3
    history = fit(model, interrupting, val, epochs=5, lr=1e-2, batch_size=16, **quiet())
    assert history.stopped_reason == "interrupted"
    assert len(history) == 2
    loss, acc = val_metrics(model, val)
    assert acc == history.best["val_acc"]
    assert loss == pytest.approx(history.best["val_loss"], rel=1e-5)


def test_early_stopping_after_patience_epochs_without_improvement(data):
    train, val = data
    torch.manual_seed(0)
    # An LR this small changes nothing visible: val_acc never improves after epoch 1.
    history = fit(linear_model(), train, val, epochs=10, lr=1e-12, early_stopping=2, **quiet())
    assert history.stopped_reason == "early_stopping"
    assert len(history) == 3
    assert history.best_epoch == 1


@pytest.mark.parametrize("restore_best", [True, False])
def test_restore_best_loads_the_best_epoch_weights(data, restore_best):
    train, val = data
    torch.manual_seed(0)
    model = TinyNet()
    history = fit(model, train, val, epochs=4, lr=3e-2, batch_size=16, schedule="constant",
                  restore_best=restore_best, **quiet())
    assert history.best_epoch < len(history)  # with this seed the best epoch is not the last one
    expected = history.best if restore_best else history[-1]
    loss, acc = val_metrics(model, val)
    assert loss == pytest.approx(expected["val_loss"], rel=1e-5)
    assert acc == expected["val_acc"]
    assert history.best["val_acc"] == max(history["val_acc"])


def test_onecycle_lr_goes_up_then_down(data):
    train, _ = data
    history = fit(linear_model(), train, epochs=2, lr=1e-2, batch_size=16, schedule="onecycle", **quiet())
    lrs = history.step_lrs
    assert len(lrs) == 20
    peak = lrs.index(max(lrs))
    assert 0 < peak < len(lrs) - 1
    assert max(lrs) == pytest.approx(1e-2, rel=0.05)
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))  # rising
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))  # falling
    assert lrs[-1] < 1e-2 / 100


def test_cosine_warms_up_then_ends_near_zero_and_constant_stays_flat(data):
    train, _ = data
    cosine = fit(linear_model(), train, epochs=2, lr=1e-2, batch_size=16, schedule="cosine", warmup=0.2, **quiet())
    lrs = cosine.step_lrs
    assert lrs[0] < lrs[3] < lrs[4] == pytest.approx(1e-2)  # 4 warm-up steps out of 20, then the peak
    assert lrs[-1] < 1e-2 * 0.02
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    constant = fit(linear_model(), train, epochs=1, lr=1e-2, batch_size=16, schedule="constant", warmup=0.0, **quiet())
    assert constant.step_lrs == [pytest.approx(1e-2)] * 10


def test_lr_mult_gives_earlier_blocks_smaller_learning_rates(data):
    train, _ = data
    history = fit(TinyNet(), train, epochs=1, lr=1e-2, lr_mult=0.5, schedule="constant", warmup=0.0, **quiet())
    distinct = sorted({round(g["lr"], 12) for g in history.groups}, reverse=True)
    assert distinct == [pytest.approx(1e-2), pytest.approx(5e-3), pytest.approx(2.5e-3)]
    head = [g for g in history.groups if g["name"].startswith("head")]
    assert head and all(g["lr"] == pytest.approx(1e-2) for g in head)
    # Within the head, the bias gets no weight decay, the weight does.
    assert sorted(g["weight_decay"] for g in head) == [0.0, 0.01]


def test_dataloader_input_grad_clip_and_label_smoothing_train_without_val(data):
    train, _ = data
    loader = DataLoader(train, batch_size=32, shuffle=True)
    history = fit(TinyNet(), loader, epochs=2, lr=1e-2, grad_clip=1.0, label_smoothing=0.1, **quiet())
    assert history.monitor == "train_loss"
    assert history[0]["val_acc"] is None and history["val_loss"] == [None, None]
    assert history.best_epoch in (1, 2)
    assert all(math.isfinite(x) for x in history.step_losses)


def test_batch_size_larger_than_dataset_warns_and_clips():
    small = stripes(10, seed=3)
    with pytest.warns(UserWarning, match="batch_size=32 is larger than the 10 train examples"):
        history = fit(linear_model(), small, epochs=1, schedule="constant", **quiet())
    assert len(history.step_lrs) == 1  # one batch of 10


def test_bad_arguments_say_what_is_allowed(data):
    train, _ = data
    with pytest.raises(ValueError, match="schedule must be one of"):
        fit(linear_model(), train, schedule="linear", **quiet())
    with pytest.raises(ValueError, match="monitor must be one of"):
        fit(linear_model(), train, monitor="accuracy", **quiet())
    frozen = linear_model().requires_grad_(False)
    with pytest.raises(ValueError, match="every parameter is frozen"):
        fit(frozen, train, **quiet())


def test_progress_goes_to_stderr_and_can_be_silenced(data, capsys):
    train, val = data
    fit(linear_model(), train, val, epochs=1, device="cpu", progress=False, verbose=False)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    fit(linear_model(), train, val, epochs=2, device="cpu", progress=True, verbose=True, live_plot=True)
    out = capsys.readouterr()
    assert "epochs" in out.err  # the tqdm bar
    assert "epoch 2/2" in out.out and "Finished after 2 epoch(s)" in out.out
    assert len(out.out.splitlines()) == 3  # one line per epoch plus one at the end


def test_history_json_round_trip_and_readable_repr(data, tmp_path):
    train, val = data
    history = fit(linear_model(), train, val, epochs=2, **quiet())
    path = history.to_json(tmp_path / "history.json")
    loaded = History.from_json(path)
    assert loaded.to_dict() == history.to_dict()
    assert loaded.best_epoch == history.best_epoch
    text = repr(loaded)
    for column in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"):
        assert column in text
    assert "stopped: completed" in text
    assert "<table>" in loaded._repr_html_()
    assert loaded["epoch"] == [1, 2]
    with pytest.raises(KeyError, match="columns"):
        loaded["accuracy"]


def test_history_best_follows_the_monitor():
    records = [{"epoch": e, "train_loss": 1.0, "train_acc": 0.5, "val_loss": vl, "val_acc": va,
                "lr": 0.1, "seconds": 1.0} for e, vl, va in [(1, 0.9, 0.6), (2, 0.7, 0.6), (3, 0.8, 0.7)]]
    assert History(records, monitor="val_acc").best_epoch == 3
    assert History(records[:2], monitor="val_acc").best_epoch == 2  # equal accuracy: lower loss wins
    assert History(records, monitor="val_loss").best_epoch == 2
    assert History([], monitor="val_acc").best is None
    assert History(records).total_seconds == 3.0


def test_no_warnings_in_a_normal_run(data):
    train, val = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(linear_model(), train, val, epochs=1, **quiet())


# ------------------------------------------------------------- hooks: batch_transform, penalty
def test_batch_transform_mixes_every_training_batch_and_the_model_still_learns(data):
    from tlkit.data.transforms import mixup_cutmix

    train, val = data
    mix = mixup_cutmix(num_classes=4)
    seen_targets = []

    def counting_mix(images, labels):
        images, targets = mix(images, labels)
        seen_targets.append(targets)
        return images, targets

    torch.manual_seed(0)
    history = fit(TinyNet(), train, val, epochs=6, lr=1e-2, batch_size=16, seed=0,
                  batch_transform=counting_mix, **quiet())
    assert len(seen_targets) == 6 * 10  # every training batch, never a validation batch
    assert all(t.shape == (16, 4) for t in seen_targets)  # soft labels, one row per image
    assert any((t.max(dim=1).values < 1).any() for t in seen_targets)  # really mixed
    assert history.best["val_acc"] >= 0.8  # chance is 0.25
    assert all(0.0 <= acc <= 1.0 for acc in history["train_acc"])


def test_penalty_is_added_to_each_step_but_not_to_the_reported_train_loss(data):
    train, val = data
    torch.manual_seed(0)
    plain = fit(linear_model(), train, val, epochs=2, lr=1e-2, seed=0, **quiet())
    # A constant adds nothing to the gradients: training is unchanged, and so is train_loss.
    torch.manual_seed(0)
    constant = fit(linear_model(), train, val, epochs=2, lr=1e-2, seed=0,
                   penalty=lambda: torch.tensor(100.0), **quiet())
    assert constant["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-6)
    # A penalty on the weights' size does change training: the weights end up smaller.
    torch.manual_seed(0)
    free, pulled = linear_model(), linear_model()
    pulled.load_state_dict(free.state_dict())
    fit(free, train, epochs=2, lr=1e-2, weight_decay=0.0, seed=0, **quiet())
    weight = pulled[1].weight
    fit(pulled, train, epochs=2, lr=1e-2, weight_decay=0.0, seed=0,
        penalty=lambda: 1.0 * weight.pow(2).sum(), **quiet())
    assert pulled[1].weight.norm() < 0.8 * free[1].weight.norm()


@pytest.mark.parametrize("steps", [1, 4])
def test_one_cycle_with_fewer_than_5_steps_says_why(steps):
    # PyTorch's OneCycleLR trains at ~0 with 1-3 steps and divides by zero with exactly 4
    with pytest.raises(ValueError, match=f"one-cycle schedule needs at least 5 training steps; this run has {steps} "):
        fit(linear_model(), stripes(16 * steps, seed=1), epochs=1, batch_size=16, **quiet())
    history = fit(linear_model(), stripes(16 * steps, seed=1), epochs=1, batch_size=16, schedule="cosine", **quiet())
    assert len(history.step_lrs) == steps


def test_balanced_class_weights_make_a_rare_class_count_as_much_as_a_common_one():
    labels = torch.tensor([0] * 90 + [1] * 10)
    weights = balanced_class_weights(labels)
    assert torch.allclose(weights, torch.tensor([100 / (2 * 90), 100 / (2 * 10)]))
    assert torch.allclose(weights * torch.bincount(labels), torch.tensor([50.0, 50.0]))  # equal totals
    with pytest.raises(ValueError, match=r"Classes \[2\] have no training examples"):
        balanced_class_weights(labels, num_classes=3)


def test_class_weights_in_fit_raise_the_recall_of_a_rare_class():
    # Two overlapping clouds, the second 15 times rarer; unweighted, the model learns to say "common".
    g = torch.Generator().manual_seed(0)
    def clouds(n_common, n_rare):
        x = torch.cat([torch.randn(n_common, 2, generator=g), torch.randn(n_rare, 2, generator=g) + 1.2])
        return TensorDataset(x, torch.tensor([0] * n_common + [1] * n_rare))
    train, test = clouds(300, 20), clouds(400, 400)
    recall = {}
    for weights in (None, "balanced"):
        torch.manual_seed(0)
        model = nn.Linear(2, 2)
        fit(model, train, epochs=15, lr=0.05, batch_size=32, class_weights=weights, seed=0, **quiet())
        with torch.no_grad():
            pred = model(test.tensors[0]).argmax(1)
        recall[weights] = (pred[test.tensors[1] == 1] == 1).float().mean().item()
    assert recall[None] < 0.3
    assert recall["balanced"] > recall[None] + 0.3


def test_class_weights_that_do_not_fit_the_data_say_what_to_give(data):
    train, _ = data  # 4 classes
    with pytest.raises(ValueError, match="has 3 numbers but the training data has 4 classes"):
        fit(linear_model(), train, epochs=1, class_weights=[1.0, 2.0, 1.0], **quiet())
    with pytest.raises(ValueError, match="'balanced' or one number per class"):
        fit(linear_model(), train, epochs=1, class_weights="rare", **quiet())
    with pytest.raises(ValueError, match="non-negative"):
        fit(linear_model(), train, epochs=1, class_weights=[1.0, -1.0, 1.0, 1.0], **quiet())
