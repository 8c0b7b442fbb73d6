"""prgcn-profile: parameters and multiply-accumulates (MACs) of one clip, counted by PyTorch.

MACs come from torch.utils.flop_counter.FlopCounterMode (FLOPs / 2): convolutions and the graph
convolutions' matrix products (aten.mm / bmm) are counted; elementwise work (BN, ReLU, additions,
pooling) is not, as in the usual MAC figures.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prgcn_ros.model.build import build_model
from prgcn_ros.model.stgcn import VARIANTS


def count_parameters(model: nn.Module) -> int:
    """Trainable and frozen parameters (buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, dict[str, int]]:
    """MACs of one eval-mode forward of ``input_shape``; also MACs per operator.

    Runs on a copy on the "meta" device: only shapes are computed, so counting a long clip is
    instant and the model itself is untouched.
    """
    shadow = copy.deepcopy(model).to("meta").eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        shadow(torch.zeros(input_shape, device="meta"))
    per_op = {str(op): int(flops) // 2 for op, flops in counter.get_flop_counts()["Global"].items()}
    return int(counter.get_total_flops()) // 2, per_op


def profile(arch: dict[str, Any], frames: int, persons: int, batch: int = 1) -> dict[str, Any]:
    """Parameters and MACs of the network ``arch`` on a (batch, C, frames, V, persons) input."""
    model = build_model(arch)
    layout = model.layout
    shape = (batch, int(arch.get("in_channels", 3)), frames, layout.num_joints, persons)
    macs, per_op = count_macs(model, shape)
    return {"model": model.arch["name"], "layout": layout.name, "input_shape": list(shape),
            "params": count_parameters(model), "macs": macs, "gmacs": round(macs / 1e9, 4),
            "macs_by_op": per_op, "architecture": model.arch}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prgcn-profile", description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("prgcn", "stgcn"), default="prgcn")
    parser.add_argument("--layout", default="coco18", help="skeleton layout (e.g. coco18, ntu25)")
    parser.add_argument("--classes", type=int, default=400)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--persons", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--refine-channels", type=int, default=None,
                        help="PR-GCN: leading channels the PRM refines (default: x and y "
                             "for image keypoints, else all; the authors' code: all)")
    parser.add_argument("--no-prm", action="store_true", help="PR-GCN without the PRM")
    parser.add_argument("--no-tam", action="store_true", help="PR-GCN without the TAM")
    parser.add_argument("--fusion", choices=("parallel", "sequential"), default="parallel")
    parser.add_argument("--stgcn-variant", choices=VARIANTS, default=VARIANTS[0],
                        help="ST-GCN: the standard network (yan2018) or the one behind the "
                             "PR-GCN paper's Table I (prgcn_table1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    for name in ("classes", "frames", "persons", "batch", "channels"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    arch: dict[str, Any] = {"name": args.model, "num_classes": args.classes,
                            "layout": args.layout, "in_channels": args.channels}
    if args.model == "prgcn":
        arch.update(refine_channels=args.refine_channels, use_prm=not args.no_prm,
                    use_tam=not args.no_tam, fusion=args.fusion)
    else:
        arch["variant"] = args.stgcn_variant
    try:
        result = profile(arch, args.frames, args.persons, args.batch)
    except ValueError as error:
        print(f"prgcn-profile: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} on {result['layout']}, input {tuple(result['input_shape'])}: "
              f"{result['params']:,} parameters, {result['macs'] / 1e9:.3f} GMACs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
