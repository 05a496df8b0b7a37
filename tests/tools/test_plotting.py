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
    figures = plot_history(history, directory=tmp_path / "plots")
    assert sorted(figures) == ["acc", "loss", "lr"]
    for metric, figure in figures.items():
        path = tmp_path / "plots" / f"{metric}.png"
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.shape[2] in (3, 4)
        assert pixels.std() > 0  # something was drawn
        assert figure.axes[0].get_xlabel() == "epoch" and figure.axes[0].get_ylabel() == metric
    loss = _series(figures["loss"])
    assert loss["train"] == [entry["loss"] for entry in history]
    assert loss["validation"] == [entry["val_loss"] for entry in history]
    assert figures["acc"].axes[0].get_lines()[0].get_xdata().tolist() == [1, 2, 3, 4]
    assert list(_series(figures["lr"])) == ["train"]  # no val_lr: one line
    # Saved figures are closed (a long search writing plots must not pile up open figures).
    assert all(figure.number not in plt.get_fignums() for figure in figures.values())


def test_pdf_files_and_a_chosen_subset(tmp_path, history):
    figures = plot_history(history, metrics=["acc"], directory=tmp_path, extension=".PDF")
    assert list(figures) == ["acc"]
    content = (tmp_path / "acc.pdf").read_bytes()
    assert content.startswith(b"%PDF-") and content.rstrip().endswith(b"%%EOF")
    assert _series(figures["acc"])["validation"] == [entry["val_acc"] for entry in history]


def test_plot_metric_on_given_axes_with_gaps(tmp_path):
    gappy = [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0, "val_loss": 1.5}, {"epoch": 3, "loss": 0.5}]
    figure, ax = plt.subplots()
    assert plot_metric(gappy, "loss", title="Loss", ax=ax) is ax
    series = _series(figure)
    assert series["train"] == [2.0, 1.0, 0.5]
    assert math.isnan(series["validation"][0]) and series["validation"][1] == 1.5
    assert ax.get_title() == "Loss"
    figure.savefig(tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes()[:8] == PNG_SIGNATURE
    plt.close(figure)


def test_the_history_as_a_dataframe(history):
    frame = history_frame(history)
    assert isinstance(frame, pandas.DataFrame)
    assert frame.index.tolist() == [1, 2, 3, 4] and frame.index.name == "epoch"
    assert frame["val_acc"].tolist() == [entry["val_acc"] for entry in history]
    assert metric_names(history) == ["lr", "loss", "acc"]


def test_errors_name_the_argument(tmp_path, history):
    with pytest.raises(ValueError, match=r"`history` has no value for the metric 'f1'.*Plottable metrics: 'lr'"):
        plot_history(history, metrics=["loss", "f1"], directory=tmp_path)
    assert not (tmp_path / "loss.png").exists()  # checked before anything is drawn or written
    with pytest.raises(ValueError, match=r"`extension` must be a file format.*extension='docx'.*pdf"):
        plot_history(history, extension="docx")
    with pytest.raises(ValueError, match=r"`history` is empty"):
        plot_metric([], "loss")
    with pytest.raises(TypeError, match=r"`history` must be the list of epoch logs.*type dict"):
        plot_history({"loss": [1.0]})  # type: ignore[arg-type]
