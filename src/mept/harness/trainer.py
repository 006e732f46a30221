"""Train a :class:`PromptedModel` with Hugging Face's ``transformers.Trainer``.

A plain ``Trainer`` trains a ``PromptedModel`` already (same call signature and
output object as the backbone, only prompts/routers/head require grad), but it
does not know the model is an adapter: every checkpoint would hold the whole
frozen backbone. :class:`PromptTrainer` saves and restores through
:meth:`PromptedModel.save_pretrained` instead, as PEFT does for its models, so a
``checkpoint-N`` folder holds ``adapter_model.safetensors`` and
``adapter_config.json`` (plus the optimizer/scheduler state for resuming) and
loads with :func:`mept.load`.

    trainer = PromptTrainer(model=mept.get_model(backbone, cfg), args=TrainingArguments(...), ...)
    trainer.train()                       # or train(resume_from_checkpoint=True)
"""

from __future__ import annotations

import os

import torch
from transformers import Trainer

from mept.core.adapter_format import WEIGHTS_NAME
from mept.errors import MeptError
from mept.harness.precision import resolve_precision
from mept.model.prompted import PromptedModel

TRAINING_ARGS_NAME = "training_args.bin"  # what Trainer writes beside a model, kept for its resume logic


class PromptTrainer(Trainer):
    """``transformers.Trainer`` whose checkpoints hold only the prompt method (and head)."""

    def __init__(self, *args, mixed_precision: str = "auto", **kwargs) -> None:
        """``mixed_precision``: as ``mept train --mixed-precision`` (:mod:`mept.harness.precision`). ``auto`` turns on
        ``bf16`` where the hardware computes it natively, unless the ``TrainingArguments`` already ask for
        ``bf16`` or ``fp16`` (then they decide); ``no`` leaves the arguments as they are."""
        training_args = kwargs.get("args") if "args" in kwargs else (args[1] if len(args) > 1 else None)
        if training_args is not None and not (training_args.bf16 or training_args.fp16):
            ran, _ = resolve_precision(mixed_precision)
            if ran in ("bf16", "fp16"):
                setattr(training_args, ran, True)
                if hasattr(training_args, "mixed_precision"):  # transformers 5 reads this one when it builds Accelerate
                    training_args.mixed_precision = ran
        super().__init__(*args, **kwargs)
        if not isinstance(self._prompted(), PromptedModel):
            raise MeptError("PromptTrainer trains a PromptedModel; wrap the backbone with mept.get_model first")
        # PromptedModel.forward takes **kwargs for the backbone; Trainer would read that as accepting
        # num_items_in_batch and pass it on to backbones that do not take it.
        self.model_accepts_loss_kwargs = False

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        # A PromptedModel's output also carries its forward's routing (routes, router_aux_loss): not predictions.
        ignore_keys = [*(ignore_keys or []), "routes", "router_aux_loss"]
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    def _prompted(self) -> PromptedModel:
        return self.accelerator.unwrap_model(self.model)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        self._prompted().save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: torch.nn.Module | None = None) -> None:
        self._load_adapter(resume_from_checkpoint)

    def _load_best_model(self) -> None:
        self._load_adapter(self.state.best_model_checkpoint)

    def _load_adapter(self, folder: str) -> None:
        path = os.path.join(folder, WEIGHTS_NAME)
        if not os.path.isfile(path):
            raise MeptError(f"{folder} holds no {WEIGHTS_NAME}; it is not a PromptTrainer checkpoint")
        self._prompted().load_adapter(folder)
