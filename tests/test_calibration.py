"""Lesson 07's clinical-grade evaluation, checked on numbers that can be worked out by hand.

tlkit/decisions.py: precision-recall, a screening threshold chosen on validation data and measured on
test data, per-group metrics. tlkit/calibration.py: reliability bins, ECE, temperature scaling.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

import tlkit as tl  # noqa: E402
from tlkit.calibration import (apply_temperature, expected_calibration_error, fit_temperature,  # noqa: E402
                               negative_log_likelihood, reliability_bins)
from tlkit.decisions import (group_metrics, precision_recall_curve, screening_report,  # noqa: E402
                             threshold_for_recall)
from tlkit.evaluation import model_outputs  # noqa: E402
from tlkit.plots import plot_precision_recall, plot_reliability  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def one_vs_rest(scores, labels):
    """Three classes; class 1's probability is ``scores``, the rest is split between classes 0 and 2."""
    scores = np.asarray(scores, dtype=float)
    return np.stack([(1 - scores) / 2, scores, (1 - scores) / 2], axis=1), np.asarray(labels)


# Six validation examples, positive class 1; sorted by score: + + - - + -
VAL_PROBS, VAL_Y = one_vs_rest([0.9, 0.8, 0.8, 0.6, 0.3, 0.1], [1, 1, 0, 2, 1, 0])


def sample(rng, n, classes=4, scale=1.5):
    """Synthetic truth: logits z, the probabilities softmax(z), and labels drawn from those probabilities."""
    z = rng.normal(size=(n, classes)) * scale
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = np.minimum((rng.random((n, 1)) > p.cumsum(axis=1)).sum(axis=1), classes - 1)
    return z, p, y


# ------------------------------------------------------------------------------ precision-recall
def test_precision_recall_curve_by_hand():
    curve = precision_recall_curve(VAL_PROBS, VAL_Y, positive=1)
    # thresholds: the distinct scores, high to low; the two 0.8s are flagged together
    assert curve.thresholds.tolist() == [0.9, 0.8, 0.6, 0.3, 0.1]
    assert np.allclose(curve.precision, [1, 2 / 3, 1 / 2, 3 / 5, 1 / 2])
    assert np.allclose(curve.recall, [1 / 3, 2 / 3, 2 / 3, 1, 1])
    assert curve.average_precision == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3 + 1 / 3 * 3 / 5)  # 34/45
    assert curve.prevalence == pytest.approx(0.5)


def test_average_precision_is_one_for_a_perfect_ranking_and_the_prevalence_for_a_constant_score():
    probs, y = one_vs_rest([0.9, 0.7, 0.4, 0.2], [1, 1, 0, 0])
    assert precision_recall_curve(probs, y, 1).average_precision == pytest.approx(1.0)
    probs, y = one_vs_rest([0.5] * 4, [1, 0, 0, 0])  # no ranking at all: one threshold flags everything
    assert precision_recall_curve(probs, y, 1).average_precision == pytest.approx(0.25)


# ------------------------------------------------------------------------------------ screening
@pytest.mark.parametrize("target, threshold", [(1 / 3, 0.9), (0.5, 0.8), (2 / 3, 0.8), (0.9, 0.3), (1.0, 0.3)])
def test_threshold_for_recall_is_the_highest_that_meets_the_target(target, threshold):
    assert threshold_for_recall(VAL_PROBS, VAL_Y, 1, target) == threshold
    assert screening_report(VAL_PROBS, VAL_Y, 1, threshold).recall >= target


def test_threshold_for_recall_survives_floating_point_rounding():
    # 0.9 * 10 is 9.000000000000002: a plain ceil would demand all 10 positives and return 0.1
    probs, y = one_vs_rest(np.arange(10, 0, -1) / 10, [1] * 10)
    assert threshold_for_recall(probs, y, 1, 0.9) == pytest.approx(0.2)


def test_threshold_chosen_on_validation_is_measured_on_test():
    threshold = threshold_for_recall(VAL_PROBS, VAL_Y, 1, 2 / 3)
    test_probs, test_y = one_vs_rest([0.85, 0.7, 0.5, 0.82, 0.2], [1, 1, 1, 0, 2])
    report = screening_report(test_probs, test_y, 1, threshold)
    assert (report.flagged, report.found, report.positives, report.n) == (2, 1, 3, 5)
    assert report.recall == pytest.approx(1 / 3) and report.precision == pytest.approx(1 / 2)
    assert "flags 2 of 5" in repr(report) and "misses 2" in repr(report)
    nothing = screening_report(test_probs, test_y, 1, 0.99)
    assert (nothing.flagged, nothing.recall, nothing.precision) == (0, 0.0, 0.0)


def test_an_unaffordable_recall_target_raises():
    with pytest.raises(ValueError, match=r"recall of 100% on class 1 needs the threshold down at 0.3, which flags "
                                         r"83% of the validation examples, more than max_flagged=50%"):
        threshold_for_recall(VAL_PROBS, VAL_Y, 1, 1.0, max_flagged=0.5)
    assert threshold_for_recall(VAL_PROBS, VAL_Y, 1, 2 / 3, max_flagged=0.5) == 0.8  # flags 3 of 6


@pytest.mark.parametrize("target", [0, 1.5, 90, float("nan"), "high", True])
def test_threshold_for_recall_rejects_a_target_that_is_not_a_fraction(target):
    with pytest.raises(ValueError, match=r"target_recall should be a fraction in \(0, 1\]"):
        threshold_for_recall(VAL_PROBS, VAL_Y, 1, target)


def test_threshold_for_recall_rejects_a_bad_budget():
    with pytest.raises(ValueError, match=r"max_flagged should be a fraction in \(0, 1\]"):
        threshold_for_recall(VAL_PROBS, VAL_Y, 1, 0.5, max_flagged=30)


@pytest.mark.parametrize("positive", [3, -1, 1.0, "fur", True])
def test_positive_must_be_a_class_index(positive):
    with pytest.raises(ValueError, match=r"positive should be a class index from 0 to 2.*data.classes.index"):
        precision_recall_curve(VAL_PROBS, VAL_Y, positive)


def test_recall_is_undefined_without_an_example_of_the_class():
    with pytest.raises(ValueError, match="y_val has no example of class 1: recall .* is undefined"):
        threshold_for_recall(VAL_PROBS, [0, 0, 2, 2, 0, 0], 1, 0.9)
    with pytest.raises(ValueError, match="y_test has no example of class 1"):
        screening_report(VAL_PROBS, [0, 0, 2, 2, 0, 0], 1, 0.5)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan"), None])
def test_screening_report_rejects_a_threshold_outside_0_1(threshold):
    with pytest.raises(ValueError, match=r"threshold should be a probability in \[0, 1\]"):
        screening_report(VAL_PROBS, VAL_Y, 1, threshold)


# ---------------------------------------------------------------------------------- bad outputs
@pytest.mark.parametrize("probs, message", [
    (np.array([0.2, 0.8]), r"probs should be a numeric N x C array .* shape \(2,\)"),
    (np.zeros((0, 3)), r"probs should be a numeric N x C array .* shape \(0, 3\)"),
    (np.ones((6, 1)), r"at least 2 classes"),
    ([["a", "b"]] * 6, r"probs should be a numeric N x C array"),
    (np.where(np.eye(6, 3) > 0, np.nan, VAL_PROBS), r"probs holds 3 NaN or infinite values"),
    (VAL_PROBS * 4 - 1, r"probs should be probabilities .* Are these logits\?"),
])
def test_bad_probabilities_are_refused_in_words(probs, message):
    with pytest.raises(ValueError, match=message):
        precision_recall_curve(probs, VAL_Y, 1)


@pytest.mark.parametrize("labels, message", [
    ([1, 1, 0, 2, 1], r"y_true has 5 entries but there are 6 predictions"),
    ([1, 1, 0, 3, 1, 0], r"y_true holds class 3, but there are 3 classes \(0..2\)"),
    ([1, 1, 0, -1, 1, 0], r"y_true holds -1, but class indices start at 0"),
    ([1, 1, 0, 0.5, 1, 0], r"y_true should be a non-empty 1-D sequence of class indices"),
    ([["cat"]] * 6, r"y_true should be a non-empty 1-D sequence of class indices"),
])
def test_bad_labels_are_refused_in_words(labels, message):
    with pytest.raises(ValueError, match=message):
        precision_recall_curve(VAL_PROBS, labels, 1)


def test_tensors_work_too_even_with_gradients():
    probs = torch.tensor(VAL_PROBS, requires_grad=True)
    curve = precision_recall_curve(probs, torch.tensor(VAL_Y), 1)
    assert curve.average_precision == pytest.approx(34 / 45)
    assert threshold_for_recall(probs, torch.tensor(VAL_Y, dtype=torch.float32), 1, 0.5) == pytest.approx(0.8)


# ------------------------------------------------------------------------------------ subgroups
def test_group_metrics_by_hand():
    y_true = [0, 0, 1, 1, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 0, 1, 1, 0, 2]
    groups = ["brick"] * 4 + ["moon"] * 4
    report = group_metrics(y_true, y_pred, groups, classes=["a", "b", "c"])
    assert report.groups == ["brick", "moon"] and report.support.tolist() == [4, 4]
    assert report.accuracy.tolist() == [0.75, 0.5]
    assert report.recall[0, :2].tolist() == [1.0, 0.5] and np.isnan(report.recall[0, 2])  # no "c" in brick
    assert report.recall[1].tolist() == [0.0, 0.5, 1.0]
    assert report.gap == pytest.approx(0.25) and report.worst == "moon"
    text = repr(report)
    assert "recall c" in text and "gap (best - worst accuracy) 0.250; worst group: moon" in text
    assert text.splitlines()[1].split() == ["brick", "4", "0.750", "1.00", "0.50", "-"]
    assert "<table>" in report._repr_html_() and "<td>moon</td><td>4</td><td>0.500</td>" in report._repr_html_()


def test_group_metrics_takes_tensors_and_numbered_groups_and_names_classes_by_index():
    report = group_metrics(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]), torch.tensor([7, 7, 3, 3]))
    assert report.groups == ["3", "7"] and report.accuracy.tolist() == [0.5, 1.0]
    assert report.classes == ["0", "1"] and report.gap == 0.5 and report.worst == "3"


def test_group_metrics_refuses_bad_groups_and_labels():
    with pytest.raises(ValueError, match="groups has 3 entries but there are 4 predictions"):
        group_metrics([0, 1, 1, 0], [0, 1, 0, 0], ["a", "a", "b"])
    with pytest.raises(ValueError, match="Every example is in a group of its own"):
        group_metrics([0, 1, 1, 0], [0, 1, 0, 0], ["id0", "id1", "id2", "id3"])
    with pytest.raises(ValueError, match="y_pred has 3 entries but there are 4 predictions"):
        group_metrics([0, 1, 1, 0], [0, 1, 0], ["a", "a", "b", "b"])
    with pytest.raises(ValueError, match=r"y_pred holds class 2, but there are 2 classes"):
        group_metrics([0, 1, 1, 0], [0, 1, 2, 0], ["a", "a", "b", "b"], classes=["cat", "dog"])


# ---------------------------------------------------------------------------------- calibration
def test_reliability_bins_by_hand():
    probs = np.array([[0.95, 0.05], [0.05, 0.95], [0.9, 0.1], [0.4, 0.6], [0.5, 0.5]])
    bins = reliability_bins(probs, [0, 0, 0, 1, 1], n_bins=4)  # bins (0, .25] (.25, .5] (.5, .75] (.75, 1]
    assert bins.count.tolist() == [0, 1, 1, 3]  # 0.5 sits in (.25, .5]: bins are closed on the right
    assert np.isnan(bins.accuracy[0]) and np.isnan(bins.confidence[0])
    assert bins.accuracy[1:].tolist() == [0.0, 1.0, pytest.approx(2 / 3)]  # 0.5 ties: argmax is class 0, wrong
    assert bins.confidence[1:] == pytest.approx([0.5, 0.6, (0.95 + 0.95 + 0.9) / 3])
    expected = (1 * 0.5 + 1 * 0.4 + 3 * abs(2 / 3 - 2.8 / 3)) / 5
    assert bins.ece == pytest.approx(expected)
    assert expected_calibration_error(probs, [0, 0, 0, 1, 1], n_bins=4) == pytest.approx(expected)
    assert "ECE 0.3400" in repr(bins) and "(0.75, 1.00]" in repr(bins)


def test_ece_is_near_zero_when_calibrated_and_large_when_over_confident():
    rng = np.random.default_rng(0)
    z, p, y = sample(rng, 20_000)
    assert expected_calibration_error(p, y) < 0.015  # labels drawn from the stated probabilities
    over = apply_temperature(z * 3, 1.0)  # the same ranking, claimed three times as sharply
    assert expected_calibration_error(over, y) > 0.15
    assert (over.argmax(dim=1).numpy() == p.argmax(axis=1)).all()


def test_temperature_scaling_recovers_the_temperature_and_helps_on_held_out_data():
    rng = np.random.default_rng(1)
    z_val, _, y_val = sample(rng, 5_000)
    z_test, _, y_test = sample(rng, 5_000)
    temperature = fit_temperature(z_val * 3, y_val)  # over-confident logits: the truth times 3
    assert temperature == pytest.approx(3.0, rel=0.1)
    before, after = apply_temperature(z_test * 3, 1.0), apply_temperature(z_test * 3, temperature)
    assert expected_calibration_error(after, y_test) < expected_calibration_error(before, y_test) / 4
    assert negative_log_likelihood(z_test * 3, y_test, temperature) < negative_log_likelihood(z_test * 3, y_test) - 0.2
    assert (after.argmax(dim=1) == before.argmax(dim=1)).all()  # the predictions, and accuracy, do not change
    assert fit_temperature(z_val * 3, y_val) == temperature  # deterministic


def test_fit_temperature_takes_model_outputs_logits():
    torch.manual_seed(0)
    x = torch.randn(200, 5)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()  # three classes
    model = nn.Linear(5, 3)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-8.0, -8, 0, 0, 0], [0, 0, 0, 0, 0], [8, 8, 0, 0, 0]]))
        model.bias.zero_()
    logits, labels = model_outputs(model, TensorDataset(x, y), device="cpu")  # inference-mode tensors
    temperature = fit_temperature(logits, labels)
    assert temperature > 1  # logits this large are over-confident on the middle class's mistakes
    assert temperature == fit_temperature(logits.numpy().copy(), labels.numpy())
    probs = apply_temperature(logits, temperature)
    assert probs.dtype == torch.float32 and torch.allclose(probs.sum(dim=1), torch.ones(200))


def test_apply_temperature_is_a_softmax_of_the_divided_logits():
    logits = torch.tensor([[2.0, 0.0, -2.0]])
    assert torch.allclose(apply_temperature(logits, 2.0), torch.softmax(logits / 2, dim=1))
    assert negative_log_likelihood(logits, [0], 2.0) == pytest.approx(-torch.log_softmax(logits / 2, 1)[0, 0].item())


def test_fit_temperature_refuses_data_it_cannot_calibrate_on():
    always_right = np.array([[3.0, 0.0], [0.0, 3.0], [2.0, 0.0], [0.0, 2.0]])
    with pytest.raises(ValueError, match="Every validation prediction is right, .* no mistakes to calibrate against"):
        fit_temperature(always_right, [0, 1, 0, 1])
    barely_wrong = np.array([[0.01, 0.0]] * 100 + [[0.0, 1e-6]])  # best T about 0.0007
    with pytest.raises(ValueError, match="The best temperature is below 0.01: the model is right on almost every"):
        fit_temperature(barely_wrong, [0] * 101)
    with pytest.raises(ValueError, match="keeps falling as T grows: the logits say .* nothing about the labels"):
        fit_temperature(np.zeros((4, 3)), [0, 1, 2, 0])  # identical logits, whatever the label


@pytest.mark.parametrize("temperature", [0, -1.0, float("inf"), float("nan"), "2", None])
def test_a_temperature_must_be_a_positive_number(temperature):
    with pytest.raises(ValueError, match=r"The temperature should be a number > 0"):
        apply_temperature(np.zeros((2, 3)), temperature)
    with pytest.raises(ValueError, match=r"The temperature should be a number > 0"):
        negative_log_likelihood(np.zeros((2, 3)), [0, 1], temperature)


def test_calibration_refuses_bad_inputs_in_words():
    with pytest.raises(ValueError, match=r"logits_val holds 1 NaN or infinite values"):
        fit_temperature(np.array([[1.0, np.inf], [0.0, 1.0]]), [0, 1])
    with pytest.raises(ValueError, match=r"logits_val should be a numeric N x C array .* shape \(0, 3\)"):
        fit_temperature(np.zeros((0, 3)), [])
    with pytest.raises(ValueError, match=r"y_val holds class 3, but there are 3 classes"):
        fit_temperature(np.zeros((2, 3)), [0, 3])
    with pytest.raises(ValueError, match=r"y_val has 1 entries but there are 2 predictions"):
        fit_temperature(np.zeros((2, 3)), [0])
    with pytest.raises(ValueError, match=r"probs should be probabilities .* Are these logits\?"):
        expected_calibration_error(np.array([[2.0, -1.0], [0.5, 0.3]]), [0, 1])
    for n_bins in (0, 2.5, True):
        with pytest.raises(ValueError, match="n_bins should be a whole number of bins, at least 1"):
            reliability_bins(VAL_PROBS, VAL_Y, n_bins=n_bins)


# ---------------------------------------------------------------------------------------- plots
def test_plot_reliability_draws_bars_per_bin_the_diagonal_and_the_counts():
    probs = np.array([[0.95, 0.05], [0.05, 0.95], [0.9, 0.1], [0.4, 0.6], [0.5, 0.5]])
    bins = reliability_bins(probs, [0, 0, 0, 1, 1], n_bins=4)
    fig = plot_reliability(bins)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    top, bottom = fig.axes
    assert len(top.patches) == 3 and len(top.lines) == 1  # one bar per non-empty bin, the diagonal
    assert [bar.get_height() for bar in top.patches] == [0.0, 1.0, pytest.approx(2 / 3)]
    assert top.lines[0].get_xydata().tolist() == [[0, 0], [1, 1]]
    assert [bar.get_height() for bar in bottom.patches] == [0, 1, 1, 3]  # every bin's count
    assert top.get_title() == "ECE 0.340"
    fig = plot_reliability([bins, bins], titles=["before", "after"])
    assert len(fig.axes) == 4 and fig.axes[1].get_title() == "after: ECE 0.340"
    with pytest.raises(ValueError, match="one title per set of bins; got 2 sets of bins and 1 titles"):
        plot_reliability([bins, bins], titles=["before"])


def test_plot_precision_recall_draws_steps_the_floor_and_the_operating_point():
    curve = precision_recall_curve(VAL_PROBS, VAL_Y, 1)
    report = screening_report(VAL_PROBS, VAL_Y, 1, 0.8)
    fig = plot_precision_recall(curve.precision, curve.recall, curve.average_precision, curve.prevalence,
                                operating_point=report)
    ax = fig.axes[0]
    steps, floor, point = ax.lines
    assert steps.get_drawstyle() == "steps-pre" and steps.get_xdata()[0] == 0.0
    assert "AP 0.756" in steps.get_label() and floor.get_ydata()[0] == 0.5
    assert point.get_xydata().tolist() == [[pytest.approx(2 / 3), pytest.approx(2 / 3)]]
    assert len(plot_precision_recall(curve.precision, curve.recall, operating_point=(0.5, 0.9)).axes[0].lines) == 2
    assert len(plot_precision_recall(curve.precision, curve.recall).axes[0].lines) == 1
    with pytest.raises(ValueError, match="precision and recall should be 1-D arrays of the same length"):
        plot_precision_recall(curve.precision, curve.recall[:-1])


def test_the_names_are_exported_flat():
    assert tl.fit_temperature is fit_temperature and tl.group_metrics is group_metrics
    assert tl.plot_reliability is plot_reliability and tl.ReliabilityBins.__name__ == "ReliabilityBins"
