"""Method facts live on the method: the registry, the config classes, and what the CLI shows from them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mept.cli import build_parser
from mept.core.config import PromptConfig
from mept.core.registry import method_class, method_names, register_method
from mept.errors import MeptError
from mept.harness.train_config import TrainConfig, paper_lr_grid
from mept.methods.base import DeepPrompts
from tests.conftest import SMALL


def test_every_registered_method_is_covered_by_the_core_tests():
    # test_prompted_model.py parametrizes over SMALL: a method missing there would skip every core claim.
    assert sorted(SMALL) == method_names()


def test_a_second_method_under_a_taken_name_is_refused():
    @dataclass
    class Impostor(PromptConfig):
        method = "mept"

    class ImpostorMethod(DeepPrompts):
        config_class = Impostor

    with pytest.raises(ValueError, match="'mept' is taken by mept.methods.mept.MEPT"):
        register_method(ImpostorMethod)
    assert method_class("mept").__module__ == "mept.methods.mept"


def test_re_registering_the_same_class_is_harmless():
    cls = method_class("vfpt")
    assert register_method(cls) is cls


def test_cli_help_lists_every_registered_method(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in method_names():
        assert name in text


@pytest.mark.parametrize(("method", "field"), [("mept", "num_experts"), ("smop", "num_prompts"), ("ptmoe", "num_experts")])
def test_experts_flag_sets_the_field_the_method_names(method, field):
    assert method_class(method).config_class.experts_field == field
    assert TrainConfig(method=method, experts=3).method_settings() == {field: 3}


@pytest.mark.parametrize("method", ["prompt_tuning", "ptuning_v2", "vfpt"])
def test_experts_flag_on_a_method_without_experts_is_an_error(method):
    with pytest.raises(MeptError, match=f"--experts does not apply to method '{method}'"):
        TrainConfig(method=method, experts=3).method_settings()


def test_paper_lr_grid_is_the_methods_own():
    assert paper_lr_grid("mept") == [1e-5, 5e-5, 1e-4]
    for name in method_names():
        assert paper_lr_grid(name) == list(method_class(name).config_class.paper_lr_grid)
    assert paper_lr_grid("smop") == [0.1, 0.3, 0.5]


@pytest.mark.parametrize(("method", "hint"), [("prompt_tuning", "use ptuning_v2"), ("smop", "use mept"), ("ptmoe", "")])
def test_input_only_methods_refuse_deep_layers(method, hint):
    with pytest.raises(MeptError, match=rf"layers must be '1' \({method} prompts the input only\){'; ' + hint if hint else '$'}"):
        method_class(method).config_class(layers="1-3")
    assert method_class(method).config_class(layers=[1]).layers == [1]
