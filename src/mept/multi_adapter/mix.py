"""One forward of a batch whose rows name their adapter: which rows are whose, read by hooks and heads.

An :class:`AdapterMix` is made by :meth:`MultiAdapterModel.forward` for one forward and handed
to the slot injector as that forward's method (:class:`~mept.inject.slots.ForwardState`), so it
lives exactly as long as the forward and no module keeps it. The prompt hook asks it for the
prompts of a layer (:meth:`AdapterMix.prompt`): each adapter computes its rows' prompts -- a
router reads only its own rows' pooled states -- and one gather puts them back in batch order,
as :func:`~mept.core.routing.combine_experts` gathers experts per example. :class:`RowHeads` sits
where the backbone's task head was and applies each row's own head.

Rows share one forward only when their adapters share a :class:`SlotLayout` (prompt length and
prompted layers): slots are positions in the sequence, so two lengths cannot share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mept.core.config import PromptConfig
from mept.core.routing import Route
from mept.data.encode import Encoder
from mept.data.registry import TaskSpec
from mept.errors import MeptError
from mept.inject.slots import current_forward
from mept.methods.base import PromptMethod


@dataclass(frozen=True)
class SlotLayout:
    """Where an adapter's prompts go: ``num_slots`` positions after ``sink`` plain columns
    (:func:`mept.inject.spec.sink_columns`), overwritten before ``layer_ids`` (0-based)."""

    num_slots: int
    layer_ids: tuple[int, ...]
    sink: int = 0


@dataclass
class Adapter:
    """One loaded adapter: its method (prompts, routers), where it came from, and what ``predict`` needs.

    ``task`` and ``encoder`` (label words, the text budget, the run's fields and template in
    ``run_config``) come with a run folder, or with ``labels=`` for an adapter folder; without
    them the adapter serves ``forward`` and ``generate`` only.
    """

    name: str
    method: PromptMethod
    config: PromptConfig
    layout: SlotLayout
    path: Path
    num_labels: int | None
    task: TaskSpec | None = None
    encoder: Encoder | None = None
    run_config: Any = None  # the run's TrainConfig (fields, template, eval mode), for run folders

    @property
    def layers(self) -> list[int]:
        """1-based prompted layers whose experts a prediction reports (empty for unrouted methods)."""
        return [i + 1 for i in self.method.layer_ids] if self.method.routed else []

    @property
    def eval_mode(self) -> str:
        return getattr(self.run_config, "eval_mode", "rank")

    @property
    def precision(self) -> str | None:
        """The precision the run ran in (``mixed_precision_ran``), which ``mept predict`` scores in; None: fp32."""
        return getattr(self.run_config, "mixed_precision_ran", None)


@dataclass
class AdapterRoutes:
    """The routing of one adapter's rows in a mixed forward: ``rows`` (n,) of the batch, layer id -> route."""

    rows: torch.Tensor
    routes: dict[int, Route]

    def experts(self) -> torch.Tensor:
        """Top-1 expert per row and prompted layer, in layer order: (n, L)."""
        return torch.stack([self.routes[k].chosen for k in sorted(self.routes)], 1)


@dataclass
class AdapterMix:
    """One forward's rows per adapter (all of one :class:`SlotLayout`); the routes it took are kept here."""

    layout: SlotLayout
    parts: list[tuple["Adapter", torch.Tensor]]  # adapter, its rows of the batch (long)
    order: torch.Tensor | None  # batch order from the parts' concatenation; None: one part, the whole batch in order
    routes: dict[str, dict[int, Route]] = field(default_factory=dict)

    @classmethod
    def of(cls, layout: SlotLayout, adapters: list["Adapter"], device: torch.device) -> "AdapterMix":
        """The mix of a batch whose row i belongs to ``adapters[i]``."""
        rows: dict[str, list[int]] = {}
        by_name = {}
        for i, adapter in enumerate(adapters):
            rows.setdefault(adapter.name, []).append(i)
            by_name[adapter.name] = adapter
        parts = [(by_name[n], torch.tensor(r, device=device)) for n, r in rows.items()]
        if len(parts) == 1:
            return cls(layout, parts, None)
        order = torch.cat([r for _, r in parts]).argsort()  # (B,): where each batch row sits in the concatenation
        return cls(layout, parts, order)

    # what the slot injector reads from a forward's method
    @property
    def num_slots(self) -> int:
        return self.layout.num_slots

    @property
    def layer_ids(self) -> list[int]:
        return list(self.layout.layer_ids)

    @property
    def routed(self) -> bool:
        return any(adapter.method.routed for adapter, _ in self.parts)

    def prompt(self, position: int, pooled: torch.Tensor | None, batch_size: int,
               update_stats: bool = True) -> tuple[torch.Tensor, None]:
        """Every row's prompts for ``layer_ids[position]``, (B, m, d), each from its own adapter.

        The routes are kept in :attr:`routes` by adapter (a mixed batch's routers have different
        expert counts, so they are not one :class:`Route`); the injector records none.
        """
        layer = self.layout.layer_ids[position]
        pieces = []
        for adapter, rows in self.parts:
            own = pooled
            if pooled is not None and self.order is not None:
                own = pooled.index_select(0, rows)  # (n, d): a router reads only its own rows
            prompts, route = adapter.method.prompt(position, own if adapter.method.routed else None, len(rows),
                                                   update_stats)
            pieces.append(prompts)  # (n, m, d)
            if route is not None:
                self.routes.setdefault(adapter.name, {})[layer] = route
        if self.order is None:
            return pieces[0], None
        return torch.cat(pieces).index_select(0, self.order), None  # (B, m, d), in batch order

    def routing(self) -> dict[str, AdapterRoutes]:
        """The routes taken, detached, per routed adapter with its rows."""
        rows = dict((adapter.name, r) for adapter, r in self.parts)
        return {name: AdapterRoutes(rows[name], {k: r.detach() for k, r in sorted(routes.items())})
                for name, routes in self.routes.items()}


def current_mix() -> AdapterMix | None:
    """The mix of the mixed forward running in this context, if any."""
    state = current_forward()
    method = None if state is None else state.method
    return method if isinstance(method, AdapterMix) else None


class RowHeads(nn.Module):
    """Stands where the backbone's task head ``name`` was; applies each row's own adapter head.

    (B, ..., d) -> (B, ..., C) with C the widest head's output; a row's columns past its own
    head's width are -inf (a softmax over the whole row still gives its own distribution).
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.heads = nn.ModuleDict()

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        mix = current_mix()
        if mix is None:
            raise MeptError(f"the task head {self.name!r} belongs to a MultiAdapterModel; call the model with "
                            f"adapter_names=[...], not its backbone")
        if mix.order is None:
            adapter, _ = mix.parts[0]
            return self.heads[adapter.name](x, *args, **kwargs)
        outs = [(self.heads[adapter.name](x.index_select(0, rows), *args, **kwargs), rows) for adapter, rows in mix.parts]
        width = max(o.shape[-1] for o, _ in outs)
        first = outs[0][0]
        merged = first.new_full((x.shape[0], *first.shape[1:-1], width), float("-inf"))
        for out, rows in outs:
            merged[rows, ..., : out.shape[-1]] = out
        return merged
