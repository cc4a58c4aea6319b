"""evaluate / predict on a fixed set of predictions whose metrics can be checked by hand."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tlkit.evaluation import EvalReport, evaluate, predict

# Six examples, three classes. The model below predicts exactly these probabilities.
Y_TRUE = [0, 0, 1, 1, 2, 2]
PROBS = [[0.8, 0.1, 0.1],   # 0 -> 0 right
         [0.05, 0.9, 0.05],  # 0 -> 1 wrong, confidence 0.9
         [0.2, 0.7, 0.1],   # 1 -> 1 right
         [0.3, 0.4, 0.3],   # 1 -> 1 right
         [0.1, 0.1, 0.8],   # 2 -> 2 right
         [0.6, 0.1, 0.3]]   # 2 -> 0 wrong, confidence 0.6
# confusion (rows true, columns predicted): [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


class FixedLogits(nn.Module):
    """A real module whose input is an example's index and whose output is that example's logits."""

    def __init__(self, probs):
        super().__init__()
        self.register_buffer("logits", torch.log(torch.tensor(probs)))
        self.dummy = nn.Parameter(torch.zeros(()))  # so that the model has a device

    def forward(self, index):
        return self.logits[index.long().view(-1)] + self.dummy


class Indexed(Dataset):
    """(index, label) pairs, with class names, like a real image data set's ``classes``."""

    classes = ["cat", "dog", "fox"]

    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return torch.tensor([float(i)]), self.labels[i]


@pytest.fixture
def report() -> EvalReport:
    return evaluate(FixedLogits(PROBS), Indexed(Y_TRUE), batch_size=4)


def test_confusion_matrix_and_accuracy_by_hand(report):
    assert report.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert report.confusion.dtype.kind == "i"
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.y_true.tolist() == Y_TRUE
    assert report.y_pred.tolist() == [0, 1, 1, 1, 2, 0]
    assert np.allclose(report.probs, PROBS, atol=1e-6)


def test_precision_recall_f1_by_hand(report):
    rows = {r["class"]: r for r in report.per_class}
    # precision = diagonal / column sum, recall = diagonal / row sum
    assert rows["cat"]["precision"] == pytest.approx(1 / 2) and rows["cat"]["recall"] == pytest.approx(1 / 2)
    assert rows["dog"]["precision"] == pytest.approx(2 / 3) and rows["dog"]["recall"] == pytest.approx(1.0)
    assert rows["fox"]["precision"] == pytest.approx(1.0) and rows["fox"]["recall"] == pytest.approx(1 / 2)
    assert rows["cat"]["f1"] == pytest.approx(0.5)
    assert rows["dog"]["f1"] == pytest.approx(0.8)
    assert rows["fox"]["f1"] == pytest.approx(2 / 3)
    assert [r["support"] for r in report.per_class] == [2, 2, 2]
    assert report.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_most_wrong_lists_confident_mistakes_first(report):
    assert [m["index"] for m in report.most_wrong] == [1, 5]
    assert report.most_wrong[0] == {"index": 1, "true": "cat", "pred": "dog", "confidence": pytest.approx(0.9)}
    assert report.most_wrong[1]["confidence"] == pytest.approx(0.6)
    short = evaluate(FixedLogits(PROBS), Indexed(Y_TRUE), top_k_wrong=1)
    assert [m["index"] for m in short.most_wrong] == [1]


def test_a_class_never_seen_nor_predicted_scores_zero_not_nan():
    probs = [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]]
    result = evaluate(FixedLogits(probs), Indexed([0, 0]), classes=["a", "b", "c"])
    rows = {r["class"]: r for r in result.per_class}
    assert rows["c"] == {"class": "c", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert rows["b"]["precision"] == 0.0 and rows["b"]["support"] == 0  # predicted once, never right
    assert rows["a"]["precision"] == 1.0 and rows["a"]["recall"] == 0.5


def test_class_names_come_from_the_dataset_or_default_to_numbers():
    from_dataset = evaluate(FixedLogits(PROBS), DataLoader(Indexed(Y_TRUE), batch_size=3))
    assert from_dataset.classes == ["cat", "dog", "fox"]  # via loader.dataset.classes
    plain = torch.utils.data.TensorDataset(torch.arange(6.0).view(6, 1), torch.tensor(Y_TRUE))
    assert evaluate(FixedLogits(PROBS), plain).classes == ["0", "1", "2"]
    with pytest.raises(ValueError, match="predicts 3 classes but 2 class names"):
        evaluate(FixedLogits(PROBS), plain, classes=["a", "b"])


def test_report_is_json_serialisable_and_readable(report):
    data = json.loads(json.dumps(report.to_dict()))
    assert data["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert data["accuracy"] == pytest.approx(4 / 6)
    text = repr(report)
    assert "accuracy 0.6667 on 6 examples" in text
    for word in ("precision", "recall", "f1", "support", "cat", "dog", "fox"):
        assert word in text


def test_predict_accepts_tensors_datasets_and_single_images_and_keeps_modes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 5))
    model.train()
    mean_before = model[1].running_mean.clone()
    images = torch.randn(7, 3, 8, 8)
    probs = predict(model, images, batch_size=3)
    assert probs.shape == (7, 5)
    assert torch.allclose(probs.sum(dim=1), torch.ones(7))
    assert predict(model, images[0]).shape == (1, 5)
    from_dataset = predict(model, torch.utils.data.TensorDataset(images, torch.zeros(7, dtype=torch.long)))
    assert torch.allclose(from_dataset, probs)
    assert model.training  # put back as it was
    assert torch.equal(model[1].running_mean, mean_before)  # evaluated in eval mode


def test_evaluate_without_labels_says_to_use_predict():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="tlkit.predict"):
        evaluate(model, torch.randn(3, 1, 2, 2))
