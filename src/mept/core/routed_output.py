"""The output form of every model the harness runs: the backbone's own output class plus its routing.

Prompted models (:class:`~mept.model.prompted.PromptedModel`) and baselines both return
``with_routing(out, routes, router_aux_loss)``, so evaluation and training read one form.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING

import torch

from mept.core.routing import Route

if TYPE_CHECKING:  # importing transformers at run time would load PIL with mept (tests/test_package.py)
    from transformers.utils import ModelOutput

_ROUTED_OUTPUTS: dict[type, type] = {}
_ROUTED_OUTPUTS_LOCK = threading.Lock()


def with_routing(out: ModelOutput, routes: dict[int, Route] | None, aux_loss: torch.Tensor | None) -> ModelOutput:
    """``out`` as the same output class plus two fields, ``routes`` and ``router_aux_loss``.

    Fields of a dataclass subclass (made once per output class), not loose attributes: they
    survive what rebuilds outputs from their fields (Accelerate's fp32 conversion, DDP and
    ``torch.compile``'s pytree round trips), and ``isinstance`` checks of the original class hold.
    Named ``router_aux_loss`` so a MoE backbone's own ``aux_loss`` stays its own.
    """
    base = type(out)
    with _ROUTED_OUTPUTS_LOCK:
        routed = _ROUTED_OUTPUTS.get(base)
        if routed is None:
            routed = dataclasses.make_dataclass(
                f"Routed{base.__name__}",
                [("routes", dict[int, Route] | None, None), ("router_aux_loss", torch.Tensor | None, None)],
                bases=(base,),
            )
            _ROUTED_OUTPUTS[base] = routed
    return routed(**out, routes=routes, router_aux_loss=aux_loss)
