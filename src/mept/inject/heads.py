"""Task heads of a Hugging Face backbone: which modules they are, and what a text classifier's head reads.

:func:`find_heads` names the head modules an adapter trains and saves (PEFT's ``modules_to_save``).
With ``head_pooling="mean"`` a BERT-like classification head reads the mean of the final states
over real tokens instead of its [CLS] input (:func:`mean_pool_site` finds where, and
:func:`hook_mean_pooling` puts it there): sentence encoders such as MiniLM are trained for mean
pooling, and prompt slots never count. Prompt methods (mask from the forward's
:class:`~mept.inject.slots.ForwardState`) and baselines (their forward's attention mask) pool alike.
With ``head="linear"`` (:func:`install_head`) the head is one linear layer on that pooled state
where the backbone's own head has a hidden dense + tanh layer (MPNet, RoBERTa: 592k new parameters
on a 768-wide backbone, more than MEPT's activated prompts).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from functools import partial
from typing import Literal

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from mept.core.config import check_choice
from mept.core.routing import masked_mean
from mept.errors import MeptError
from mept.inject.spec import BackboneSpec

# Task heads Hugging Face adds on top of a base model, found by name when ``modules_to_save`` is not given:
# ``classification_head`` is BART's and T5ForSequenceClassification's, ``pre_classifier`` DistilBERT's first layer.
HEAD_NAMES = ("pre_classifier", "classifier", "classification_head", "score", "qa_outputs")
HEADED_TASKS = ("ForSequenceClassification", "ForQuestionAnswering", "ForImageClassification")


def find_heads(backbone: nn.Module, modules_to_save: list[str] | None = None) -> list[str]:
    """The backbone's task-head modules the adapter trains and saves (PEFT's ``modules_to_save``).

    ``modules_to_save`` names them (dotted submodule paths); otherwise the common Hugging Face
    heads are found by name. A classification or QA model whose head is not found is refused:
    its new head would stay randomly initialised and frozen, and training would silently learn
    nothing useful.
    """
    if modules_to_save is not None:
        names = list(modules_to_save)
        for name in names:
            try:
                backbone.get_submodule(name)
            except AttributeError:
                raise MeptError(f"modules_to_save: {type(backbone).__name__} has no submodule {name!r}") from None
    else:
        names = [n for n in HEAD_NAMES if isinstance(getattr(backbone, n, None), nn.Module)]
    kind = type(backbone).__name__
    if kind.endswith(HEADED_TASKS) and not any(any(True for _ in backbone.get_submodule(n).parameters()) for n in names):
        children = ", ".join(n for n, _ in backbone.named_children())
        raise MeptError(
            f"{kind} has a task head, but none of {', '.join(HEAD_NAMES)} was found among its modules "
            f"({children}); name it with modules_to_save=[...] so it is trained and saved"
        )
    return names


def mean_pool_site(backbone: nn.Module, spec: BackboneSpec) -> tuple[str, nn.Module] | None:
    """Where a text classifier's head can read the mean of the final states instead of its CLS input.

    ``("pooler", module)``: BERT-like encoders (the pooler's output is replaced); ``("first_token",
    module)``: encoders whose head reads position 0 itself (RoBERTa, MPNet: ``classifier(sequence)``);
    None: no such place (decoders, images, seq2seq). Prompt methods and baselines pool alike.
    """
    if spec.task_type != "cls" or spec.modality != "text":
        return None
    pooler = getattr(backbone.base_model, "pooler", None)
    if isinstance(pooler, nn.Module):
        return "pooler", pooler
    first_token_head = getattr(backbone, "classifier", None) if spec.slot_offset == 1 else None
    return ("first_token", first_token_head) if isinstance(first_token_head, nn.Module) else None


# What a BERT-like classification head reads: the masked mean of the final states, or its own [CLS] pooler.
HeadPooling = Literal["mean", "native"]


def resolve_head_pooling(head_pooling: str | None, site: tuple[str, nn.Module] | None) -> HeadPooling:
    """The head pooling a model uses: the one asked for, checked, or ``"mean"`` where the head has a
    :func:`mean_pool_site` and ``"native"`` elsewhere (prompt methods and baselines decide alike)."""
    resolved = head_pooling or ("mean" if site else "native")
    check_choice("head_pooling", resolved, typing.get_args(HeadPooling))
    if resolved == "mean" and site is None:
        raise MeptError("head_pooling='mean' needs a text encoder whose head reads a pooler or the first token")
    return resolved


def hook_mean_pooling(site: tuple[str, nn.Module], pool_mask: Callable[[], torch.Tensor | None]) -> RemovableHandle:
    """Make the head at ``site`` (:func:`mean_pool_site`) read the masked mean of the final states.

    ``pool_mask()`` is the running forward's (B, T) mask of real tokens, or None when the forward
    is not ours (the hook then passes the backbone's own value through).
    """
    kind, module = site
    if kind == "pooler":
        return module.register_forward_hook(partial(_mean_pool, pool_mask))
    return module.register_forward_pre_hook(partial(_mean_first_token, pool_mask))


def _mean_pool(pool_mask: Callable[[], torch.Tensor | None], module: nn.Module, args: tuple,
               output: torch.Tensor) -> torch.Tensor:
    # The pooler's output is replaced by the mean of the final states over real tokens.
    mask = pool_mask()
    if mask is None:
        return output
    hidden = args[0] if args else output  # (B, T, d)
    return masked_mean(hidden, mask.to(hidden.dtype)).to(output.dtype)


def _mean_first_token(pool_mask: Callable[[], torch.Tensor | None], module: nn.Module, args: tuple) -> tuple | None:
    # Heads that read position 0 of the sequence get the masked mean there instead:
    # (B, T, d) -> (B, T, d) with row 0 replaced.
    mask = pool_mask()
    if mask is None or not args or args[0].dim() != 3:
        return None
    hidden = args[0]
    pooled = masked_mean(hidden, mask.to(hidden.dtype))[:, None]  # (B, 1, d)
    return (torch.cat([pooled, hidden[:, 1:]], dim=1), *args[1:])


# What a text classifier's head is: the backbone's own, or one linear layer on the pooled state.
HeadKind = Literal["native", "linear"]


class FirstTokenLinear(nn.Module):
    """A RoBERTa-style classification head without its hidden layer: ``out_proj(dropout(features[:, 0]))``.

    Keeps the backbone's own (freshly initialised) output projection and dropout, so a seed draws the
    same output weights either way; with mean pooling, position 0 holds the pooled state there.
    """

    def __init__(self, dropout: nn.Module, out_proj: nn.Linear, native: nn.Module | None = None) -> None:
        super().__init__()
        self.dropout, self.out_proj = dropout, out_proj
        self.__dict__["native"] = native  # the head it stands in for (not a submodule: not trained, not saved)

    def forward(self, features: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.out_proj(self.dropout(features[:, 0]))


class FirstTokenPooler(nn.Module):
    """A BERT pooler without its dense + tanh layer: the [CLS] state itself (no parameters)."""

    def __init__(self, native: nn.Module | None = None) -> None:
        super().__init__()
        self.__dict__["native"] = native  # the pooler it stands in for (not a submodule)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states[:, 0]


def default_head(backbone: nn.Module, spec: BackboneSpec) -> HeadKind:
    """The head a run gets unless it names one (ours): ``"linear"`` where the backbone's own head has a hidden
    layer of its own (MPNet, RoBERTa: dense + tanh, d x d new parameters -- 590k on a 768-wide backbone, more
    than MEPT's activated prompts), ``"native"`` elsewhere (a BERT-like head read through the mean, a decoder's
    score head and ViT's classifier are one linear layer already; T5's and DistilBERT's heads are kept).

    Measured on MPNet (``benchmarks/studies/heads.md``): with the dense + tanh head at ``--head-lr 1e-2``
    MEPT trained worse on every seed than with the linear head.
    """
    return "linear" if _drops_hidden_layer(mean_pool_site(backbone, spec)) else "native"


def _drops_hidden_layer(site: tuple[str, nn.Module] | None) -> bool:
    # a RoBERTa-style head read at position 0 whose output projection can stand alone
    return site is not None and site[0] == "first_token" and isinstance(getattr(site[1], "out_proj", None), nn.Linear)


def install_head(backbone: nn.Module, spec: BackboneSpec, head: str | None, head_pooling: HeadPooling) -> HeadKind:
    """Give ``backbone`` the classification head ``head`` names (None: :func:`default_head`) and return it, checked.

    ``"native"``: the backbone's own head, untouched. ``"linear"``: one linear layer on the pooled state
    (``head_pooling``'s). On MPNet / RoBERTa the head's dense + tanh layer is dropped (its output
    projection kept); on a BERT-like encoder with ``head_pooling="native"`` the [CLS] pooler's dense +
    tanh layer is (with ``"mean"`` the mean already replaces the pooler's output). Where the backbone's
    head already is one linear layer (a decoder's score head, ViT's classifier, a QA head) nothing
    changes; anywhere else ``"linear"`` is refused rather than silently ignored.
    """
    resolved = head or default_head(backbone, spec)
    check_choice("head", resolved, typing.get_args(HeadKind))
    if resolved == "native":
        return resolved
    site = mean_pool_site(backbone, spec)
    kind, module = site if site else (None, None)
    if _drops_hidden_layer(site):
        if not isinstance(module, FirstTokenLinear):
            backbone.classifier = FirstTokenLinear(getattr(module, "dropout", nn.Identity()), module.out_proj, module)
        return resolved
    if kind == "pooler":
        if head_pooling == "native" and not isinstance(module, FirstTokenPooler):
            backbone.base_model.pooler = FirstTokenPooler(module)
        return resolved
    heads = [getattr(backbone, n) for n in HEAD_NAMES if isinstance(getattr(backbone, n, None), nn.Module)]
    if len(heads) == 1 and isinstance(heads[0], nn.Linear):  # DistilBERT's pre_classifier + classifier are two
        return resolved
    raise MeptError(f"head='linear': {type(backbone).__name__}'s task head is not one this library can make linear "
                    f"(MPNet/RoBERTa-style or BERT-like encoders, or a head that is already one linear layer); "
                    f"use head='native'")


def restore_head(backbone: nn.Module) -> None:
    """Undo :func:`install_head`: the backbone's own head and pooler back in place (an unloaded backbone is the
    one that was wrapped; the output projection a linear head trained is shared with its own head)."""
    if isinstance(getattr(backbone, "classifier", None), FirstTokenLinear) and backbone.classifier.native is not None:
        backbone.classifier = backbone.classifier.native
    pooler = getattr(backbone.base_model, "pooler", None)
    if isinstance(pooler, FirstTokenPooler) and pooler.native is not None:
        backbone.base_model.pooler = pooler.native
