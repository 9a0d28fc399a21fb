"""``dualseg export MODEL --format package|onnx|torchscript -o OUT``: a self-describing package (safetensors +
model.json), or the eval-mode segmentation output as ONNX / TorchScript, checked against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from dualseg.cli.options import add_overwrite


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="save a trained model as a package, ONNX or TorchScript")
    p.add_argument("model", help="run directory, checkpoint file or model package folder")
    p.add_argument("--format", choices=("package", "onnx", "torchscript"), default="package")
    p.add_argument("-o", "--output", required=True,
                   help="package folder, or .onnx / .pt file (a folder gets model.onnx / model.pt)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                   help="example input size for tracing (model input pixels; default: roi, resize or 256x256)")
    p.add_argument("--atol", type=float, default=1e-3, help="largest allowed difference from PyTorch (1e-3)")
    add_overwrite(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dualseg.deploy.export import SUFFIXES, export_model
    from dualseg.inference.loading import load_inference_model

    loaded = load_inference_model(args.model, args.checkpoint, "cpu")
    out = Path(args.output)
    if args.format != "package" and out.is_dir():
        out = out / f"model{SUFFIXES[args.format]}"
    record = export_model(loaded, args.format, out, args.input_size, args.atol, overwrite=args.overwrite)
    if args.format == "package":
        print(f"wrote package {out} (model.safetensors, model.json); predict with: dualseg predict {out} IN OUT")
        return 0
    size = "dynamic H and W" if record["input"]["dynamic_size"] else f"fixed size {record['input']['traced_size']}"
    print(f"wrote {out} ({size}; max |diff| vs PyTorch {record['max_abs_diff_vs_pytorch']:.1e}) and {out}.json")
    return 0
