"""The widgets (tlkit/course/widgets/), driven through their Python API, without a browser.

Most tests use a tiny CNN with the same shape as a real backbone (stem, blocks, classifier), so that
they exercise the widget machinery (threads, Stop, errors, tables, curves) in well under a second per
run. The tests marked slow use the real pretrained EfficientNet-Lite0 and check what a learner
should see. tests/test_browser.py checks the same widgets in a real JupyterLab.
"""
from __future__ import annotations

import json
import time

import pytest
import torch
from torch import nn

import tlkit as tl
from tlkit.course.widgets.questions import QuizError, load_quiz, parse_number

PNG = b"\x89PNG"
JPEG = b"\xff\xd8"  # image grids of photos are JPEG (much smaller than PNG)


class TinyNet(nn.Module):
    """A small CNN laid out like a timm/torchvision backbone; ``delay`` slows every forward pass."""

    def __init__(self, num_classes: int = 8, delay: float = 0.0):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(nn.Sequential(nn.Conv2d(8, 16, 3, stride=2), nn.BatchNorm2d(16), nn.ReLU()),
                                    nn.Sequential(nn.Conv2d(16, 16, 3), nn.ReLU()))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(16, num_classes)
        self.delay = delay
        self.tlkit_config = tl.ModelConfig(name="tiny", input_size=(32, 32), mean=(0.5,) * 3, std=(0.5,) * 3,
                                           num_classes=num_classes)

    def forward(self, x):
        if self.delay:
            time.sleep(self.delay)
        return self.classifier(10 * self.pool(self.blocks(self.stem(x))))  # features of a useful size


@pytest.fixture(scope="module")
def data():
    return tl.course_data()


@pytest.fixture(autouse=True)
def _one_thread():
    # The tiny model's matrices are too small to split over threads; on a busy CPU two threads
    # waiting for each other made these tests 10x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(delay: float = 0.0):
    torch.manual_seed(0)
    return TinyNet(delay=delay)


SMALL = {"image_size": 32, "per_class": 3, "val_per_class": 3}


# ------------------------------------------------------------------------------- LR explorer
def test_lr_explorer_overlays_runs_and_marks_them_on_the_range_test(data):
    ex = tl.lr_explorer(data, tiny(), epochs=15, **SMALL)
    slow = ex.run(lr=1e-5)
    fast = ex.run(lr=0.3, schedule="cosine")
    assert [r["lr"] for r in ex.results] == [1e-5, 0.3]
    assert [r["schedule"] for r in ex.results] == ["onecycle", "cosine"]
    assert [r["status"] for r in ex.results] == ["completed", "completed"]
    # a tiny LR barely moves the loss; a good one brings it down (the lesson of this widget)
    assert slow["train_loss"][-1] > 0.95 * slow["train_loss"][0]
    assert fast["train_loss"][-1] < 0.8 * fast["train_loss"][0]
    # head mode runs the LR range test by itself before the first run
    assert ex.lr_find_result is not None and len(ex.lr_find_result.lrs) > 10
    fig = ex.figure()
    ax_loss, ax_acc, ax_find, ax_sched = fig.axes
    assert sum("(val)" in line.get_label() for line in ax_acc.lines) == 2  # one validation curve per run
    assert len([l for l in ax_find.lines if l.get_xdata()[0] in (1e-5, 0.3)]) == 2  # each run's LR marked
    assert len(ax_sched.lines) == 1 and len(ax_sched.lines[0].get_xdata()) == len(fast.step_lrs)
    assert bytes(ex.plot.value).startswith(PNG)
    assert "<table" in ex.table.value and ex.table.value.count("<tr>") == 3  # header + 2 runs
    assert ex.model(torch.zeros(1, 3, 32, 32)).shape == (1, 8)  # body + trained head


def test_live_curves_match_fits_own_history(data):
    ex = tl.lr_explorer(data, tiny(), epochs=3, **SMALL)
    history = ex.run(lr=1e-2)
    live, final = ex.runs[0]["live"], history.records
    assert len(live) == len(final) == 3
    for mine, fits in zip(live, final):
        assert mine["val_acc"] == pytest.approx(fits["val_acc"])
        assert mine["val_loss"] == pytest.approx(fits["val_loss"], rel=1e-4)
        assert mine["train_acc"] == pytest.approx(fits["train_acc"])
        assert mine["train_loss"] == pytest.approx(fits["train_loss"], rel=1e-4)


def test_lr_explorer_trains_through_the_body_when_asked(data):
    ex = tl.lr_explorer(data, tiny(), train=1, epochs=3, **SMALL)
    model_before = {k: v.clone() for k, v in ex.setup.base.state_dict().items()}
    ex.run(lr=1e-2)
    trained = ex.model.state_dict()
    assert not torch.equal(trained["blocks.1.0.weight"], model_before["blocks.1.0.weight"])  # last block learned
    assert torch.equal(trained["stem.0.weight"], model_before["stem.0.weight"])  # the stem stayed frozen
    assert all(torch.equal(v, model_before[k]) for k, v in ex.setup.base.state_dict().items())  # start untouched
    assert ex.lr_find_result is None  # in body mode the range test waits for its button
    result = ex.find_lr()
    assert result is ex.lr_find_result and "LR range test done" in ex.status.value


def test_controls_reject_bad_values_with_a_message(data):
    ex = tl.lr_explorer(data, tiny(), **SMALL)
    with pytest.raises(ValueError, match="outside the slider's range"):
        ex.set(lr=50.0)
    with pytest.raises(ValueError, match="not one of the choices"):
        ex.set(schedule="linear")
    with pytest.raises(ValueError, match="whole number"):
        ex.set(epochs=2.5)
    with pytest.raises(ValueError, match="has no control 'learning_rate'.*'epochs', 'lr', 'schedule'"):
        ex.set(learning_rate=1e-3)
    assert ex.values["lr"] == pytest.approx(1e-2)  # nothing was changed by the failed calls
    with pytest.raises(ValueError, match="train must be 'head'"):
        tl.lr_explorer(data, tiny(), train="body")


def test_errors_are_shown_inside_the_widget_and_it_stays_usable(data):
    ex = tl.lr_explorer(data, tiny(), train=0, image_size=32, per_class=61, val_per_class=3, epochs=3)
    ex.start()  # what the Run button does
    assert ex.wait(60)
    assert "fewer than 61 images" in ex.error_box.value and "DataError" in ex.error_box.value
    assert "Traceback" not in ex.error_box.value
    assert not ex.run_button.disabled and ex.stop_button.disabled
    with pytest.raises(tl.DataError, match="fewer than 61 images"):  # from code, the error is also raised
        ex.run()
    ex.setup.per_class = 3  # fix the cause: the same widget now works
    ex.run(lr=1e-3)
    assert ex.last_error is None and ex.error_box.value == "" and len(ex.results) == 1
    with pytest.raises(ValueError, match=r"needs at least 5 training steps; this run has 2 \(epochs x batches per epoch\)"):
        ex.run(epochs=1)  # 24 images in batches of 16, once: too short for a one-cycle schedule
    assert "choose the &#x27;cosine&#x27; schedule" in ex.error_box.value
    ex.run(epochs=1, schedule="cosine")
    assert len(ex.results) == 2


def test_stop_interrupts_training_and_leaves_the_widget_usable(data):
    ex = tl.freezing_explorer(data, tiny(delay=0.02), epochs=10, **SMALL)
    ex.start()
    deadline = time.monotonic() + 60
    while not (ex.runs and ex.runs[-1]["live"]) and time.monotonic() < deadline:
        time.sleep(0.01)  # wait for the first epoch
    ex.stop()
    assert ex.wait(60)
    assert ex.stopped and ex.results[0]["status"] == "interrupted"
    assert 1 <= ex.results[0]["epochs"] < 10
    assert not ex.run_button.disabled and ex.stop_button.disabled and "Stopped" in ex.status.value
    ex.controls["epochs"].value = 3
    ex.run()  # the next run works normally
    assert [r["status"] for r in ex.results] == ["interrupted", "completed"]


def test_a_second_run_while_one_is_going_is_refused(data):
    ex = tl.freezing_explorer(data, tiny(delay=0.02), epochs=5, **SMALL)
    ex.start()
    with pytest.raises(RuntimeError, match="already going"):
        ex.run()
    assert ex.start() is None and "already going" in ex.error_box.value
    ex.stop()
    assert ex.wait(60)


# -------------------------------------------------------------------------- freezing explorer
def test_freezing_explorer_shows_the_plan_and_records_each_configuration(data):
    ex = tl.freezing_explorer(data, tiny(), epochs=3, **SMALL)
    assert ex.part_names == ["stem", "blocks.0", "blocks.1", "head"]
    assert ex.controls["trainable"].max == 3
    head_only = ex.plan()["trainable_params"]
    assert head_only == 16 * 8 + 8 and "Trains <b>head</b>" in ex.plan_text.value
    ex.set(trainable=1, freeze_bn=False)  # the text follows the slider, without training
    assert "head + blocks.1" in ex.plan_text.value and "BatchNorm learning" in ex.plan_text.value
    ex.run(trainable=0)
    ex.run(trainable=3, freeze_bn=True)
    rows = ex.results
    assert [r["parts trained"] for r in rows] == [0, 3]
    assert rows[0]["trainable params"] == "136"
    everything_but_bn = tl.count_parameters(ex.setup.base) - sum(
        p.numel() for m in ex.setup.base.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert rows[1]["trainable params"] == f"{everything_but_bn:,}"
    assert all(isinstance(r["best val acc"], float) for r in rows)
    assert ex.table.value.count("<tr>") == 3


# ---------------------------------------------------------------------- overfitting explorer
def test_overfitting_explorer_measures_the_gap(data):
    ex = tl.overfitting_explorer(data, tiny(), image_size=32, max_per_class=6, val_per_class=3, epochs=30)
    ex.run(per_class=1)
    ex.run(per_class=6, dropout=0.5, weight_decay=0.1, label_smoothing=0.1)
    first, second = ex.results
    assert first["images/class"] == 1 and ex.runs[0]["settings"]["images"] == 8
    assert ex.runs[1]["settings"]["images"] == 48
    assert (second["dropout"], second["weight decay"], second["label smoothing"]) == (0.5, 0.1, 0.1)
    for row, run in zip(ex.results, ex.runs):
        last = run["history"].records[-1]
        assert row["gap"] == pytest.approx(last["train_acc"] - last["val_acc"], abs=1e-4)
        assert row["epochs"] == 30  # no early stopping, no restoring: the curves show all 30 epochs
    fig = ex.figure()
    assert len(fig.axes[0].collections) == 1  # the shaded gap of the current run
    with pytest.raises(ValueError, match="outside the slider's range"):
        ex.set(per_class=7)
    with pytest.raises(ValueError, match="not one of the choices"):
        ex.set(weight_decay=0.5)


def test_first_per_class_only_grows():
    from tlkit.course.widgets.overfitting import first_per_class

    feats = torch.utils.data.TensorDataset(torch.arange(12.0)[:, None], torch.tensor([0, 1, 2] * 4))
    two = first_per_class(feats, 2)
    assert two.tensors[1].tolist() == [0, 1, 2, 0, 1, 2]
    assert set(two.tensors[0].flatten().tolist()) <= set(first_per_class(feats, 3).tensors[0].flatten().tolist())


# ----------------------------------------------------------------------- augmentation explorer
def test_augmentation_explorer_shows_versions_and_warns_about_label_breaking_flips(data):
    ex = tl.augmentation_explorer(data, classes=["brick", "arrow_left"], n_versions=3, image_size=48)
    assert ex.augment == ["crop"] and ex.warnings() == []
    grid = ex.samples()
    assert grid.shape == (2, 4, 3, 48, 48)
    assert not torch.allclose(grid[0, 1], grid[0, 2])  # random crops differ
    assert torch.equal(ex.samples(), grid)  # same settings, same draw: the same grid
    ex.resample()
    assert not torch.equal(ex.samples(), grid)
    png = ex.plot.value
    ex.set(augment=["flip"], strength=1.0)
    assert bytes(ex.plot.value) != bytes(png) and bytes(ex.plot.value).startswith(JPEG)
    assert ex.augment == ["flip"] and "arrow_left" in ex.warnings()[0] and "&#9888;" in ex.note.value
    flipped = ex.samples()[1]  # flips only: every version is the original or its mirror image
    for version in flipped[1:]:
        assert torch.equal(version, flipped[0]) or torch.equal(version, flipped[0].flip(-1))
    ex.set(augment=[])
    same = ex.samples()
    assert all(torch.equal(same[0, k], same[0, 0]) for k in range(4))  # no augmentation: copies
    with pytest.raises(ValueError, match="Unknown augmentation"):
        ex.set(augment=["mirror"])
    with pytest.raises(ValueError, match="No class"):
        tl.augmentation_explorer(data, classes=["dog"])


# ------------------------------------------------------------------------- prediction explorer
def test_prediction_explorer_filters_sorts_and_pages(data):
    model = tiny()
    val = data.val.subset(list(range(0, 240, 6)))  # 40 images, 5 per class
    ex = tl.prediction_explorer(model, val, image_size=32, per_page=6)
    report = ex.report
    wrong = int((report.y_pred != report.y_true).sum())
    assert len(ex.selection()) == wrong > 0
    assert all(not s["right"] for s in ex.selection())
    conf = [s["confidence"] for s in ex.selection()]
    assert conf == sorted(conf, reverse=True)
    assert len(ex.shown) == min(6, wrong) and bytes(ex.plot.value).startswith(JPEG)
    ex.set(show="true: brick", sort="data order")
    assert [s["true"] for s in ex.selection()] == ["brick"] * 5
    assert [s["index"] for s in ex.selection()] == sorted(s["index"] for s in ex.selection())
    ex.set(show="all")
    assert ex.pages == 7 and ex.page == 0 and ex.prev_button.disabled
    ex.turn(+1)
    assert [s["index"] for s in ex.shown] == list(range(6, 12))
    ex.turn(+100)
    assert ex.page == 6 and len(ex.shown) == 4 and ex.next_button.disabled
    with pytest.raises(ValueError, match="page must be 0 to 6"):
        ex.set_page(7)
    with pytest.raises(ValueError, match="not one of the choices"):
        ex.set(show="wrong ones")
    with pytest.raises(ValueError, match="report covers 40 examples but the data has 240"):
        tl.prediction_explorer(None, data.val.with_transform(ex.dataset.transform), report=report)


# ------------------------------------------------------------------- fallback without a frontend
def test_static_readers_get_html_and_text_instead_of_loading_widget(data):
    ex = tl.lr_explorer(data, tiny(), epochs=3, **SMALL)
    ex.run(lr=1e-2)
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # the live view for JupyterLab
    assert "<table" in bundle["text/html"] and "data:image/png;base64," in bundle["text/html"]
    assert "1 run(s)" in bundle["text/plain"] and "onecycle" in bundle["text/plain"]
    aug = tl.augmentation_explorer(data, n_images=2, n_versions=2, image_size=32)
    assert "data:image/jpeg;base64," in aug._repr_mimebundle_()["text/html"]


# --------------------------------------------------------------------------------------- quizzes
def test_every_lesson_from_01_to_07_has_a_quiz_of_3_to_5_questions():
    quizzes = tl.available_quizzes()
    for number in ("01", "02", "03", "04", "05", "06", "07"):
        stems = [s for s in quizzes if s.startswith(number + "_")]
        assert len(stems) == 1, f"lesson {number} needs exactly one quiz in tlkit/course/quizzes/"
        quiz = tl.quiz(number)
        assert 3 <= len(quiz.questions) <= 5
        assert {q.type for q in quiz.questions} <= {"choice", "number"}


@pytest.mark.parametrize("stem", sorted(tl.available_quizzes()))
def test_the_right_answers_pass_and_wrong_ones_explain(stem):
    quiz = tl.quiz(stem)
    for q in quiz.questions:
        right = q.answer
        assert str(quiz.answer(q.id, right)) == f"{q.id}: passed"
        if q.type == "choice":
            for letter in "abcdefghij"[:len(q.options)]:
                if letter != right:
                    result = quiz.answer(q.id, letter)
                    assert not result.passed and len(result.feedback) > 10
        else:
            assert not quiz.answer(q.id, float(right) + q.tolerance + abs(float(right)) * 0.5 + 1).passed
    assert quiz.score == (0, len(quiz.questions))  # the last answers given were all wrong


def test_quiz_answers_from_code_and_from_the_widget_agree():
    quiz = tl.quiz("07")
    quiz.ui  # build the widget
    q1, q3 = quiz._views["q1"], quiz._views["q3"]
    assert str(quiz.answer("q1", "60%")) == "q1: passed"  # percentages are read as fractions
    assert q1["entry"].value == "60%" and "Right." in q1["verdict"].value
    q1["entry"].value = "0.5"
    q1["check"].click()  # what a learner does in the browser
    assert quiz.results["q1"].passed is False and "Not yet" in q1["verdict"].value
    q3["entry"].value = "b"
    q3["check"].click()
    assert quiz.results["q3"].passed and "row" in q3["verdict"].value
    assert "Score: 1 of 5 right" in quiz._score.value
    print_line = str(quiz.check({"q2": "0.75", "q4": "nineteen"})[1])
    assert print_line == "q4: not yet — 'nineteen' is not a number; type e.g. 0.25, 1e-3 or 25%."


def test_answers_given_before_the_quiz_is_shown_appear_in_it():
    quiz = tl.quiz("06")
    quiz.answer("q1", "b")
    quiz.ui
    assert quiz._views["q1"]["entry"].value == "b" and "Right." in quiz._views["q1"]["verdict"].value
    assert "Score: 1 of 4 right" in quiz._score.value


def test_quiz_fallback_shows_questions_but_not_answers():
    quiz = tl.quiz("03")
    html = quiz._repr_mimebundle_()["text/html"]
    for q in quiz.questions:
        assert q.explanation[:40] not in html
    assert "BatchNorm" in html and "quiz.answer" in html


def test_number_parsing():
    assert parse_number("0,25") == 0.25 and parse_number("10,248") == 10248 and parse_number("25%") == 0.25
    with pytest.raises(ValueError):
        parse_number(True)


QUESTION = {"id": "x", "type": "choice", "text": "Pick", "options": ["one", "two"], "answer": "a",
            "explanation": "because"}


@pytest.mark.parametrize("change, message", [
    ({"answer": "c"}, r"answer must be one of the option letters \['a', 'b'\]"),
    ({"explaination": "typo"}, r"unknown key\(s\) \['explaination'\]"),
    ({"type": "essay"}, r"type must be one of \('choice', 'number'\)"),
    ({"options": ["only one"]}, "options must be a list of 2 to 10 answers"),
    ({"explanation": ""}, r"missing \['explanation'\]"),
    ({"feedback": {True: "yes"}}, "quote letters such as 'n' or 'y'"),
    ({"type": "number", "options": None, "answer": "ten"}, "must be a number, got 'ten'"),
    ({"type": "number", "answer": 1, "tolerance": -1}, "tolerance must be a number >= 0"),
])
def test_malformed_quiz_files_fail_with_the_place_and_the_fix(tmp_path, change, message):
    question = {**QUESTION, **change}
    question = {k: v for k, v in question.items() if v is not None}
    if question["type"] == "number":
        question.pop("options", None)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"title": "t", "questions": [question]}))
    with pytest.raises(QuizError, match=message) as err:
        load_quiz(path)
    assert str(path) in str(err.value) and "question 1 ('x')" in str(err.value)


def test_malformed_files_as_a_whole(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("title: t\nquestions:\n  - text: Why: because\n")
    with pytest.raises(QuizError, match="(?s)is not valid YAML.*line 3"):
        load_quiz(bad_yaml)
    twice = tmp_path / "twice.yaml"
    twice.write_text(json.dumps({"title": "t", "questions": [QUESTION, QUESTION]}))  # JSON is valid YAML
    with pytest.raises(QuizError, match=r"id\(s\) \['x'\] appear more than once"):
        load_quiz(twice)
    empty = tmp_path / "empty.yaml"
    empty.write_text("title: t\nquestions: []\n")
    with pytest.raises(QuizError, match="'questions' must be a non-empty list"):
        load_quiz(empty)
    with pytest.raises(QuizError, match="No quiz matches '99'; the course has: 01_"):
        tl.quiz("99")
    good = tmp_path / "good.yaml"
    good.write_text("title: Mine\nquestions:\n  - text: 2 + 2?\n    type: number\n    answer: 4\n"
                    "    explanation: Counting.\n")
    assert str(load_quiz(good).answer("q1", "4")) == "q1: passed"  # ids default to q1, q2, ...


# ------------------------------------------------------------------------ with the real backbone
@pytest.mark.slow
def test_real_backbone_head_learns_at_a_good_lr_and_not_at_a_tiny_one(data):
    ex = tl.lr_explorer(data, image_size=64, per_class=4, val_per_class=4, epochs=6)
    tiny_lr = ex.run(lr=1e-5)
    good_lr = ex.run(lr=1e-2)
    assert good_lr.best["val_acc"] > 0.5
    assert good_lr.best["val_acc"] > tiny_lr.best["val_acc"] + 0.2
    assert good_lr["train_loss"][-1] < 0.5 * tiny_lr["train_loss"][-1]
    assert ex.lr_find_result.suggestion is not None
    preds = tl.prediction_explorer(ex.model, data.val.subset(list(range(0, 240, 8))), image_size=64)
    assert preds.report.accuracy > 0.4 and len(preds.selection()) == int((preds.report.y_pred !=
                                                                           preds.report.y_true).sum())
