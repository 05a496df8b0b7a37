import math

import matplotlib.image
import matplotlib.pyplot as plt
import pandas
import pytest
import torch
from torch import nn

from tests.learning_rates import LearningRates
from trainwell import Model
from trainwell.tools.plotting import history_frame, metric_names, plot_history, plot_metric

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def history():
    torch.manual_seed(0)
    x = torch.randn(96, 4)
    y = (x.sum(dim=1) > 0).long()
    model = Model(nn.Linear(4, 2), "sgd", "cross_entropy", batch_metrics=["accuracy"])
    rates = LearningRates()
    fitted = model.fit(
        x[:64], y[:64], validation_data=(x[64:], y[64:]), epochs=4, batch_size=16, verbose=False, callbacks=[rates]
    )
    # fit's history carries no lr (Poutyne's contract); a user who plots it adds the recorded rates.
    return rates.beside(fitted)


def _series(figure):
    return {line.get_label(): line.get_ydata().tolist() for line in figure.axes[0].get_lines()}


def test_png_files_hold_the_train_and_validation_series(tmp_path, history):
    figures, axes = plot_history(history, save=True, save_directory=tmp_path / "plots", show=False)
    names = [ax.get_ylabel() for ax in axes]
    assert names == ["time", "lr", "loss", "acc"]  # every logged value but the epoch, in the logs' order
    for metric, figure in zip(names, figures, strict=True):
        path = tmp_path / "plots" / f"{metric}.png"
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.shape[2] in (3, 4)
        assert pixels.std() > 0  # something was drawn
        assert figure.axes[0].get_xlabel() == "Epochs"
    loss = _series(figures[names.index("loss")])
    assert loss["loss"] == [entry["loss"] for entry in history]
    assert loss["val_loss"] == [entry["val_loss"] for entry in history]
    assert figures[names.index("acc")].axes[0].get_lines()[0].get_xdata().tolist() == [1, 2, 3, 4]
    assert list(_series(figures[names.index("lr")])) == ["lr"]  # no val_lr: one line
    # Outside a notebook the figures are closed (a long search writing plots must not pile up open figures).
    assert all(figure.number not in plt.get_fignums() for figure in figures)


def test_pdf_and_png_files_with_a_template_a_subset_labels_and_titles(tmp_path, history):
    figures, axes = plot_history(
        history,
        metrics=["acc", "loss"],
        labels=["Accuracy", "Loss"],
        titles="Run 1",
        save=True,
        save_directory=tmp_path,
        save_filename_template="run1_{metric}",
        save_extensions=(".PDF", "png"),
        show=False,
        close=False,
        fig_kwargs={"figsize": (3, 2)},
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "run1_acc.pdf", "run1_acc.png", "run1_loss.pdf", "run1_loss.png"
    ]  # fmt: skip
    content = (tmp_path / "run1_acc.pdf").read_bytes()
    assert content.startswith(b"%PDF-") and content.rstrip().endswith(b"%%EOF")
    assert _series(figures[0])["Validation Accuracy"] == [entry["val_acc"] for entry in history]
    assert [ax.get_title() for ax in axes] == ["Run 1", "Run 1"] and axes[1].get_ylabel() == "Loss"
    assert tuple(figures[0].get_size_inches()) == (3, 2)
    assert all(figure.number in plt.get_fignums() for figure in figures)  # close=False kept them
    for figure in figures:
        plt.close(figure)


def test_given_axes_are_drawn_on_and_no_figure_is_made(history):
    figure, given = plt.subplots(1, 2)
    figures, axes = plot_history(history, metrics=["loss", "acc"], titles=["L", "A"], axes=given, show=False)
    assert figures == [] and axes is given
    assert [ax.get_title() for ax in given] == ["L", "A"]
    assert _series(figure)["val_loss"] == [entry["val_loss"] for entry in history]
    plt.close(figure)


def test_a_dataframe_history_plots_like_the_list(history):
    frame = pandas.DataFrame(history)
    figures, _ = plot_history(frame, metrics=["loss"], show=False, close=False)
    assert _series(figures[0])["loss"] == [entry["loss"] for entry in history]
    plt.close(figures[0])


def test_plot_metric_on_given_axes_with_gaps(tmp_path):
    gappy = [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0, "val_loss": 1.5}, {"epoch": 3, "loss": 0.5}]
    figure, ax = plt.subplots()
    assert plot_metric(gappy, "loss", title="Loss", ax=ax) is ax
    series = _series(figure)
    assert series["loss"] == [2.0, 1.0, 0.5]
    assert math.isnan(series["val_loss"][0]) and series["val_loss"][1] == 1.5
    assert ax.get_title() == "Loss"
    figure.savefig(tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes()[:8] == PNG_SIGNATURE
    plt.close(figure)


def test_plot_metric_draws_on_the_current_axes_by_default():
    figure, ax = plt.subplots()
    assert plot_metric([{"epoch": 1, "loss": 1.0}], "loss") is ax
    plt.close(figure)


def test_the_history_as_a_dataframe(history):
    frame = history_frame(history)
    assert isinstance(frame, pandas.DataFrame)
    assert frame.index.tolist() == [1, 2, 3, 4] and frame.index.name == "epoch"
    assert frame["val_acc"].tolist() == [entry["val_acc"] for entry in history]
    assert metric_names(history) == ["time", "lr", "loss", "acc"]


def test_errors_name_the_argument(tmp_path, history):
    with pytest.raises(
        ValueError, match=r"`history` has no value for the metric 'f1'.*Plottable metrics: 'time', 'lr'"
    ):
        plot_history(history, metrics=["loss", "f1"], save=True, save_directory=tmp_path)
    assert not (tmp_path / "loss.png").exists()  # checked before anything is drawn or written
    with pytest.raises(ValueError, match=r"`save_extensions` must be a list of file formats.*'docx'.*pdf"):
        plot_history(history, save=True, save_extensions=["docx"])
    with pytest.raises(ValueError, match=r"`save_extensions` must be a list.*save_extensions='png'"):
        plot_history(history, save=True, save_extensions="png")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`labels` must give one entry per plotted metric: 4 metrics.*Received: 1"):
        plot_history(history, labels=["Loss"])
    with pytest.raises(ValueError, match=r"`history` is empty"):
        plot_metric([], "loss")
    with pytest.raises(TypeError, match=r"`history` must be the list of epoch logs.*type dict"):
        plot_history({"loss": [1.0]})  # type: ignore[arg-type]
