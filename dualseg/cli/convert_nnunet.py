"""``dualseg convert-nnunet SRC --dest DIR --dataset-id N --name NAME``: write a dataset in nnU-Net v2 raw layout."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert-nnunet", help="write a dataset folder as an nnU-Net v2 raw dataset (DatasetXXX_Name)")
    p.add_argument("src", help="dataset folder with images/ and masks/")
    p.add_argument("--dest", required=True, help="nnU-Net raw folder (nnUNet_raw) to write DatasetXXX_NAME into")
    p.add_argument("--dataset-id", type=int, required=True, help="nnU-Net dataset id (1..999)")
    p.add_argument("--name", required=True, help="dataset name (letters, digits, '_', '-')")
    p.add_argument("--dataset", default="auto", help="dataset description name (default: by folder name/inferred)")
    p.add_argument("--all-train", action="store_true",
                   help="put an official test set (DRIVE, ACDC) into imagesTr too (default: imagesTs/labelsTs)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dualseg.data.check import check_data
    from dualseg.data.convert_nnunet import convert_to_nnunet

    target = convert_to_nnunet(args.src, args.dest, args.dataset_id, args.name, args.dataset,
                               keep_test=not args.all_train)
    report = check_data(target, "nnunet", progress=False)
    print(report.render())
    print(f"wrote {target}")
    return 1 if report.problems else 0
