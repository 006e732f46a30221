"""Does a prompted backbone still compute what the bare one does, before any training?

    python benchmarks/decoder_prompts.py --model smollm2 --data ~/.cache/mept/csv/sentiment/val.csv

Wraps the frozen backbone with prompt tuning, P-Tuning v2 and MEPT (library defaults otherwise) in
each layout -- the slots at position 0 (``attention_sink=False``, the authors' code) or behind a
plain sink token (``attention_sink=True``) -- and each initialisation (``xavier_normal``, the
paper's; ``hidden_states``: rows of the backbone's own layer inputs over ``--init-examples`` other
rows of the file), and prints the cosine between the prompted and the bare backbone's final hidden
state at each example's last real token (decoders) or the mean over real tokens (encoders), averaged
over ``--examples`` rows. 1.0: the prompts change nothing yet; near 0: the frozen model computes
something else before training starts. Also prints the bare backbone's hidden-state norm at position 0
against the median of the others, per layer (the attention sink, where there is one). fp32, seed 1.
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F
from common import prompted_model  # benchmarks/common.py: the untrained model mept train builds

import mept
from mept.inject.spec import inspect_backbone
from mept.model.backbones import load_backbone

METHODS = ("prompt_tuning", "ptuning_v2", "mept")


def summary_state(model, batch, decoder: bool) -> torch.Tensor:
    out = model(**batch, output_hidden_states=True)
    final, mask = out.hidden_states[-1], batch["attention_mask"]
    if decoder:
        last = mask.sum(1) - 1
        return final[torch.arange(len(last)), last]
    return (final * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)


def sink_norms(backbone, batch) -> list[tuple[float, float]]:
    with torch.no_grad():
        states = backbone(**batch, output_hidden_states=True).hidden_states
    mask = batch["attention_mask"].bool()
    return [(h[:, 0].norm(dim=-1).mean().item(), h[:, 1:][mask[:, 1:]].norm(dim=-1).median().item()) for h in states[1:]]


def main() -> None:
    from script import csv_flags, csv_rows  # benchmarks/script.py: a CSV without the column is one error line

    ap = csv_flags(__doc__.splitlines()[0], examples=16, max_length=64)
    ap.add_argument("--init-examples", type=int, default=64)
    args = ap.parse_args()

    rows = [r["text"] for r in csv_rows(args.data)]
    texts, init_texts = rows[: args.examples], rows[args.examples: args.examples + args.init_examples]
    loaded = load_backbone(args.model, "cls", num_labels=2)
    backbone, tok = loaded.model.eval(), loaded.processor
    batch = tok(texts, padding=True, truncation=True, max_length=args.max_length, return_tensors="pt")
    init_ids = tok(init_texts, truncation=True, max_length=args.max_length)["input_ids"]
    decoder = inspect_backbone(backbone).text_decoder
    norms = sink_norms(backbone, batch)
    print(f"{args.model}: hidden-state norm at position 0 / median elsewhere, after each layer: "
          + ", ".join(f"{a:.0f}/{b:.0f}" for a, b in norms), flush=True)
    with torch.no_grad():
        bare = summary_state(backbone, batch, decoder)
    print("| method | slots | init | cosine with the bare backbone |\n|---|---|---|---:|")
    for method in METHODS:
        for sink in (False, True):
            if sink and not decoder:
                continue  # encoders have no sink column: the layout is the same
            for init in ("xavier_normal", "hidden_states"):
                model = prompted_model(backbone, mept.make_config(method, attention_sink=sink, init=init), init_ids)
                try:
                    with torch.no_grad():
                        cos = F.cosine_similarity(summary_state(model, batch, decoder), bare).tolist()
                finally:
                    model.unload()
                layout = ("behind a sink token" if sink else "at position 0") if decoder else "after [CLS]"
                print(f"| {method} | {layout} | {init} | {statistics.mean(cos):.3f} |", flush=True)


if __name__ == "__main__":
    from script import run  # benchmarks/script.py: a bad input is one error line, never a traceback

    run(main)
