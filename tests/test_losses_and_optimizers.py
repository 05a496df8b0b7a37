import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.losses import LOSS_ALIASES, LOSS_NAMES, loss_name, resolve_loss
from trainwell.optimizers import OPTIMIZER_NAMES, resolve_optimizer
from trainwell.utils.names import unknown_name_error

EXPECTED_OPTIMIZERS = {
    "adadelta": torch.optim.Adadelta,
    "adagrad": torch.optim.Adagrad,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sparseadam": torch.optim.SparseAdam,
    "adamax": torch.optim.Adamax,
    "asgd": torch.optim.ASGD,
    "lbfgs": torch.optim.LBFGS,
    "nadam": torch.optim.NAdam,
    "radam": torch.optim.RAdam,
    "rmsprop": torch.optim.RMSprop,
    "rprop": torch.optim.Rprop,
    "sgd": torch.optim.SGD,
}


def test_optimizer_names_are_poutynes_list():
    assert set(OPTIMIZER_NAMES) == set(EXPECTED_OPTIMIZERS)


@pytest.mark.parametrize("name", sorted(EXPECTED_OPTIMIZERS))
@pytest.mark.parametrize("spelling", [str.lower, str.upper, str.title])
def test_every_name_builds_its_optimizer_case_insensitively(name, spelling):
    network = nn.Linear(3, 2)
    optimizer = resolve_optimizer(spelling(name), network)
    assert type(optimizer) is EXPECTED_OPTIMIZERS[name]
    held = [param for group in optimizer.param_groups for param in group["params"]]
    assert {id(p) for p in held} == {id(p) for p in network.parameters()}


def test_sgd_defaults_to_lr_0_01_and_others_to_torch_defaults():
    assert resolve_optimizer("sgd", nn.Linear(2, 1)).param_groups[0]["lr"] == 0.01
    assert resolve_optimizer("adam", nn.Linear(2, 1)).param_groups[0]["lr"] == 0.001


def test_dict_form_passes_keyword_arguments():
    optimizer = resolve_optimizer({"optim": "SGD", "lr": 0.5, "momentum": 0.9}, nn.Linear(2, 1))
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["lr"] == 0.5
    assert optimizer.param_groups[0]["momentum"] == 0.9


def test_dict_form_is_not_mutated():
    spec = {"optim": "adam", "lr": 0.1}
    resolve_optimizer(spec, nn.Linear(2, 1))
    assert spec == {"optim": "adam", "lr": 0.1}


def test_frozen_parameters_are_excluded():
    network = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    for param in network[0].parameters():
        param.requires_grad_(False)
    optimizer = resolve_optimizer("adam", network)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert held == {id(p) for p in network[1].parameters()}


def test_none_gives_none():
    assert resolve_optimizer(None, nn.Linear(2, 1)) is None


def test_optimizer_instance_is_returned_as_is():
    network = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    assert resolve_optimizer(optimizer, network) is optimizer


def test_optimizer_over_a_subset_of_the_network_is_accepted():
    network = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    optimizer = torch.optim.SGD(network[1].parameters(), lr=0.1)
    assert resolve_optimizer(optimizer, network) is optimizer


def test_optimizer_over_another_network_raises():
    optimizer = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"holds 2 parameter\(s\) that do not belong to `network`") as info:
        resolve_optimizer(optimizer, nn.Linear(2, 1))
    assert "optim.SGD(network.parameters(), ...)" in str(info.value)


def test_unknown_optimizer_name_suggests_close_matches():
    with pytest.raises(ValueError, match="Did you mean 'adam'") as info:
        resolve_optimizer("adm", nn.Linear(2, 1))
    assert "Received: optimizer='adm'" in str(info.value)
    assert "'rmsprop'" in str(info.value)  # the full list follows


def test_unknown_name_in_dict_form_suggests_close_matches():
    with pytest.raises(ValueError, match="Did you mean 'rmsprop'"):
        resolve_optimizer({"optim": "rmsprp", "lr": 0.1}, nn.Linear(2, 1))


def test_dict_without_optim_key_raises():
    with pytest.raises(ValueError, match=r"must name the optimizer under the 'optim' key\. Received: optimizer=\{'lr'"):
        resolve_optimizer({"lr": 0.1}, nn.Linear(2, 1))


def test_dict_with_non_string_optim_raises():
    with pytest.raises(TypeError, match=r"`optimizer\['optim'\]` must be an optimizer name \(str\)\. .*type int"):
        resolve_optimizer({"optim": 3}, nn.Linear(2, 1))


def test_unknown_keyword_argument_names_key_and_optimizer():
    with pytest.raises(ValueError, match=r"argument 'lrr' that optimizer 'adam' \(Adam\).*Did you mean 'lr'"):
        resolve_optimizer({"optim": "adam", "lrr": 1}, nn.Linear(2, 1))


def test_invalid_keyword_value_is_reported_with_the_spec():
    with pytest.raises(ValueError, match=r"Could not build optimizer 'adam' from `optimizer`: .*learning rate"):
        resolve_optimizer({"optim": "adam", "lr": -1.0}, nn.Linear(2, 1))


def test_wrong_type_raises_type_error():
    with pytest.raises(TypeError, match=r"`optimizer` must be .* Received: optimizer=3 \(type int\)\."):
        resolve_optimizer(3, nn.Linear(2, 1))


def test_network_must_be_a_module():
    with pytest.raises(TypeError, match=r"`network` must be a torch.nn.Module\. Received: network='x' \(type str\)"):
        resolve_optimizer("adam", "x")


def test_network_without_trainable_parameters_raises():
    network = nn.Linear(2, 1).requires_grad_(False)
    with pytest.raises(ValueError, match=r"`network` has no trainable parameters .* optimizer 'sgd'"):
        resolve_optimizer("sgd", network)
    with pytest.raises(ValueError, match="no trainable parameters"):
        resolve_optimizer("adam", nn.ReLU())


def test_resolved_optimizer_trains():
    torch.manual_seed(0)
    network = nn.Linear(3, 1)
    optimizer = resolve_optimizer({"optim": "adam", "lr": 0.1}, network)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    before = F.mse_loss(network(x), y).item()
    for _ in range(20):
        optimizer.zero_grad()
        F.mse_loss(network(x), y).backward()
        optimizer.step()
    assert F.mse_loss(network(x), y).item() < before


# --- losses ------------------------------------------------------------------------------------------

EXPECTED_LOSSES = {
    "cross_entropy": nn.CrossEntropyLoss,
    "kl_div": nn.KLDivLoss,
    "bce": nn.BCELoss,
    "bce_with_logits": nn.BCEWithLogitsLoss,
    "poisson_nll": nn.PoissonNLLLoss,
    "hinge_embedding": nn.HingeEmbeddingLoss,
    "l1": nn.L1Loss,
    "mse": nn.MSELoss,
    "multilabel_margin": nn.MultiLabelMarginLoss,
    "multilabel_soft_margin": nn.MultiLabelSoftMarginLoss,
    "multi_margin": nn.MultiMarginLoss,
    "nll": nn.NLLLoss,
    "smooth_l1": nn.SmoothL1Loss,
    "soft_margin": nn.SoftMarginLoss,
    "huber": nn.HuberLoss,
}


def test_loss_names_and_aliases():
    assert set(LOSS_NAMES) == set(EXPECTED_LOSSES)
    assert LOSS_ALIASES == {
        "binary_cross_entropy": "bce",
        "binary_cross_entropy_with_logits": "bce_with_logits",
    }


def _spellings(name: str, cls: type[nn.Module]) -> list[str]:
    return [name, name.upper(), name.replace("_", ""), f"{name}_loss", f"{name.upper()}_LOSS", cls.__name__]


@pytest.mark.parametrize(("name", "cls"), sorted(EXPECTED_LOSSES.items()))
def test_every_loss_spelling_maps_to_its_module_and_canonical_name(name, cls):
    for spelling in _spellings(name, cls):
        loss = resolve_loss(spelling)
        assert type(loss) is cls, spelling
        assert loss_name(spelling) == name, spelling


@pytest.mark.parametrize(
    ("alias", "cls", "canonical"),
    [
        ("binary_cross_entropy", nn.BCELoss, "bce"),
        ("BinaryCrossEntropyLoss", nn.BCELoss, "bce"),
        ("binary_cross_entropy_with_logits", nn.BCEWithLogitsLoss, "bce_with_logits"),
        ("BCEWithLogitsLoss", nn.BCEWithLogitsLoss, "bce_with_logits"),
        ("bce_with_logits_loss", nn.BCEWithLogitsLoss, "bce_with_logits"),
        ("CrossEntropyLoss", nn.CrossEntropyLoss, "cross_entropy"),
        ("crossentropy", nn.CrossEntropyLoss, "cross_entropy"),
        ("CROSS_ENTROPY_LOSS", nn.CrossEntropyLoss, "cross_entropy"),
        ("MSELoss", nn.MSELoss, "mse"),
        ("KLDivLoss", nn.KLDivLoss, "kl_div"),
    ],
)
def test_loss_aliases_and_camel_case(alias, cls, canonical):
    assert type(resolve_loss(alias)) is cls
    assert loss_name(alias) == canonical


def test_each_resolution_gives_a_fresh_module():
    assert resolve_loss("mse") is not resolve_loss("mse")


def test_resolved_loss_computes_torchs_value():
    y_pred, y_true = torch.randn(4, 3), torch.tensor([0, 2, 1, 0])
    assert torch.equal(resolve_loss("cross_entropy")(y_pred, y_true), F.cross_entropy(y_pred, y_true))


def test_callable_losses_are_returned_as_is():
    module = nn.MSELoss(reduction="sum")
    assert resolve_loss(module) is module
    assert resolve_loss(F.l1_loss) is F.l1_loss


def test_unknown_loss_name_suggests_close_matches():
    with pytest.raises(
        ValueError,
        match=r"Unknown loss name for `loss_function`\. Received: loss_function='cross_entrpy'\. "
        r"Did you mean 'cross_entropy'",
    ):
        resolve_loss("cross_entrpy")
    with pytest.raises(ValueError, match="Did you mean 'mse'"):
        loss_name("mes")


def test_unknown_loss_error_names_the_given_argument():
    with pytest.raises(ValueError, match=r"for `batch_metrics`\. Received: batch_metrics='nope'"):
        resolve_loss("nope", argument="batch_metrics")


def test_loss_of_wrong_type_raises_type_error():
    with pytest.raises(
        TypeError, match=r"`loss_function` must be a loss name .* Received: loss_function=3 \(type int\)\."
    ):
        resolve_loss(3)
    with pytest.raises(TypeError, match=r"Received: loss_function=None \(type NoneType\)"):
        loss_name(None)


def test_loss_name_of_callables():
    assert loss_name(nn.CrossEntropyLoss()) == "cross_entropy"
    assert loss_name(nn.BCELoss()) == "bce"
    assert loss_name(F.binary_cross_entropy_with_logits) == "bce_with_logits"
    assert loss_name(F.mse_loss) == "mse"

    def my_loss(y_pred, y_true):
        return (y_pred - y_true).abs().mean()

    class FocalLoss(nn.Module):
        def forward(self, y_pred, y_true):
            return y_pred.sum()

    assert loss_name(my_loss) == "my_loss"
    assert loss_name(FocalLoss()) == "focal_loss"


def test_unknown_name_error_without_close_match_lists_valid_names():
    error = unknown_name_error("optimizer", "optimizer", "zzzz", ["sgd", "adam"])
    assert (
        str(error) == "Unknown optimizer name for `optimizer`. Received: optimizer='zzzz'. Valid names: 'adam', 'sgd'."
    )


def test_importing_losses_and_optimizers_stays_light():
    heavy = ["sklearn", "torchmetrics", "mlflow", "optuna", "transformers", "matplotlib", "pandas", "poutyne"]
    code = f"import sys, trainwell.losses, trainwell.optimizers\nprint(sorted(set({heavy!r}) & set(sys.modules)))"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("name", "function"),
    [("cross_entropy", F.cross_entropy), ("mse", F.mse_loss), ("bce", F.binary_cross_entropy), ("huber", F.huber_loss)],
)
def test_a_loss_given_by_name_carries_the_function_it_computes(name, function):
    # Poutyne's string losses expose `func` (scripts compare it); module and function agree.
    loss = resolve_loss(name)
    assert loss.func is function
    torch.manual_seed(0)
    y_pred = torch.rand(6, 3)
    y_true = torch.randint(3, (6,)) if name == "cross_entropy" else torch.rand(6, 3)
    torch.testing.assert_close(loss(y_pred, y_true), loss.func(y_pred, y_true))


def test_every_named_loss_has_its_function():
    assert all(resolve_loss(name).func.__module__ == "torch.nn.functional" for name in LOSS_NAMES)
