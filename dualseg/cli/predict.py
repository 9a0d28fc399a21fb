"""``dualseg predict MODEL INPUT OUTPUT_DIR``: masks at the input size plus overlays, for 2D images and NIfTI
volumes; MODEL is a run directory, a checkpoint or a package (``dualseg export --format package``)."""

from __future__ import annotations

import argparse

from dualseg.cli.options import add_overwrite


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict masks for images, a folder of images or NIfTI volumes")
    p.add_argument("model", help="run directory, checkpoint file or model package folder")
    p.add_argument("inputs", help="image or NIfTI (.nii/.nii.gz) file, or a folder of them")
    p.add_argument("output_dir")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--no-overlays", action="store_true", help="write masks only")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--roi-size", type=int, nargs=2, metavar=("H", "W"),
                   help="sliding-window size (model input pixels; default: the run's eval.roi_size)")
    p.add_argument("--overlap", type=float, help="sliding-window overlap in [0, 1) (default: the run's, 0.5)")
    p.add_argument("--sw-batch-size", type=int, default=4, help="windows per forward pass (4)")
    p.add_argument("--whole-image", action="store_true", help="one pass per image even if the run sets a window")
    p.add_argument("--batch-size", type=int, default=1, help="same-size images or slices per forward pass (1)")
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation (mean of 4 flips' probabilities)")
    p.add_argument("--probabilities", choices=("png", "npy"),
                   help="also write class probabilities: 16-bit PNG per class, or float16 .npy (volumes: NIfTI)")
    p.add_argument("--sr", action="store_true", help="also write the SR image of a dual-stream model (sr/)")
    p.add_argument("--scale", default="auto", metavar="auto|none|FACTOR",
                   help="resample each image to the model's training scale (auto: measure the scale proxy the "
                   "model recorded; none: the image's own scale; FACTOR: a fixed factor in 0.25..4); the factors "
                   "go to OUTPUT_DIR/scales.csv")
    p.add_argument("--spacing", type=float, metavar="MM",
                   help="the inputs' pixel spacing in mm where their files state none (models trained with "
                   "data.scale_proxy: spacing)")
    add_overwrite(p)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"),
                   help="autocast for this prediction (default: the model's; fp32 gives the same masks on every CPU)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dualseg.deploy.predict import PredictOptions, predict_folder

    options = PredictOptions(
        roi_size=args.roi_size, overlap=args.overlap, sw_batch_size=args.sw_batch_size, batch_size=args.batch_size,
        tta=args.tta, probabilities=args.probabilities, sr=args.sr, overlays=not args.no_overlays,
        whole_image=args.whole_image, scale=args.scale, spacing_mm=args.spacing, precision=args.precision,
    )
    written = predict_folder(args.model, args.inputs, args.output_dir, args.checkpoint, device=args.device,
                             progress=not args.no_progress, options=options, overwrite=args.overwrite)
    extras = [name for name, on in (("overlays/", options.overlays), ("probabilities/", options.probabilities),
                                    ("sr/", options.sr)) if on]
    print(f"wrote {len(written)} mask(s) to {args.output_dir}" + (f" (+ {', '.join(extras)})" if extras else ""))
    return 0
