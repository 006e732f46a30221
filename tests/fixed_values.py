"""Fixed-value cases: every method on a tiny random BERT and Llama, a fixed seed, two training steps.

Behaviour tests say *that* routing differs per input; these say that the numbers did not silently
change (torchtune's ``EXPECTED_VAL`` tests). Each case records the training losses, the
evaluation loss after training, and the top-1 expert every example chose at every prompted layer.

Settings are written out in full for the routed methods, so a change of a default shows up as a
change of a config key (and of the values), not as a mystery. When a change of numbers is
intended, refresh them with ``python tests/regen_fixed_values.py`` and commit the JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import mept
from mept.core.routing import trace_of
from tests.conftest import tiny_bert, tiny_llama

FIXTURE = Path(__file__).parent / "fixtures" / "fixed_values.json"
SEED = 1234
STEPS = 2
TOLERANCE = 1e-5
BACKBONES = {"bert": tiny_bert, "llama": tiny_llama}
SETTINGS: dict[str, dict[str, Any]] = {
    "prompt_tuning": {"prompt_length": 4, "layers": "1", "init": "xavier_normal"},
    "ptuning_v2": {"prompt_length": 4, "layers": "all", "init": "xavier_normal"},
    "vfpt": {"prompt_length": 4, "layers": "all", "init": "xavier_normal"},
    "mept": {
        "prompt_length": 4, "layers": "all", "init": "xavier_normal", "num_experts": 4, "num_shared": 1,
        "shared": "on", "routing": "top1", "router_dropout": 0.0, "balance_loss": 0.0, "train_router": True,
        "z_loss": 0.0, "router_input": "layernorm", "router_type": "linear", "router_temperature": 1.0,
        "router_lr_scale": 1.0,
    },
    "smop": {"prompt_length": 4, "layers": "1", "init": "xavier_normal", "num_prompts": 3, "routing": "perturb",
             "noise_sigma": 1.0},
    "ptmoe": {"prompt_length": 4, "layers": "1", "init": "xavier_normal", "num_experts": 3, "rank": 4, "top_k": 1,
              "noise_sigma": 1.0, "svd_init": False, "train_router": True},
}


def case_names() -> list[str]:
    return [f"{method}-{backbone}" for method in sorted(SETTINGS) for backbone in BACKBONES]


def run_case(name: str) -> dict[str, Any]:
    """Build, train ``STEPS`` AdamW steps on a fixed batch, and report losses and chosen experts."""
    method, backbone_name = name.rsplit("-", 1)
    torch.manual_seed(SEED)
    backbone = BACKBONES[backbone_name]()
    model = mept.get_model(backbone, mept.make_config(method, **SETTINGS[method]))
    generator = torch.Generator().manual_seed(SEED)
    ids = torch.randint(5, 100, (6, 12), generator=generator)
    mask = torch.ones_like(ids)
    mask[3:, 9:] = 0  # three right-padded rows: padding must not change routing or the loss
    labels = torch.tensor([0, 1, 1, 0, 1, 0])
    optimizer = torch.optim.AdamW(
        [p for g in model.param_groups(1e-2, 1e-2) for p in g["params"]], lr=1e-2, weight_decay=0.01
    )
    model.train()
    losses = []
    for _ in range(STEPS):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
    eval_loss = out.loss.item()
    chosen = {str(layer): c.tolist() for layer, (_, c) in trace_of(out.routes).items()}
    model.unload()
    return {"settings": SETTINGS[method], "train_losses": losses, "eval_loss": eval_loss, "chosen": chosen}
