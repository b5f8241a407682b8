"""Benchmark: the U-Net's encoders side by side, in one run: from scratch, keras.applications backbones, pretrained.

Every row trains and scores through the pipeline's own code (`recipes.run_recipe`) on one prepared dataset in the
Oxford layout, with the default recipe's training params (params.yaml) and the same number of epochs:
- the project default: the from-scratch U-Net (`model.encoder: unet`);
- each keras.applications backbone from random initialisation (`model.encoder_weights: none`);
- VGG16 from a pretrained trunk, the only one our machines can get (ImageNet downloads fail here): HED's VGG16
  (ImageNet VGG16 fine-tuned for edge detection), converted by benchmarks/vgg16_from_hed.py, once with the encoder
  frozen throughout, once fine-tuned after `--freeze-epochs` frozen epochs.

    python benchmarks/vgg16_from_hed.py && python benchmarks/encoders.py   # the shared sample, 128 px
    python benchmarks/encoders.py --epochs 10 --encoders mobilenet_v2 vgg16     # fewer rows, shorter
    python benchmarks/encoders.py --quick --folder DIR --vgg16-weights FILE   # smoke version (tests)
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
from pathlib import Path

from recipes import (
    ROOT,
    benchmark_params,
    dataset_arguments,
    machine_line,
    markdown_table,
    matmul_peak_gflops,
    run_recipe,
)

from segpipe.config import ModelConfig, TrainConfig, load_params
from segpipe.encoders import BACKBONES
from segpipe.preparation import prepare_dataset

HED_VGG16 = ROOT / "models" / "pretrained" / "vgg16_hed.weights.h5"  # what vgg16_from_hed.py writes by default


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    model: ModelConfig
    train: TrainConfig


def rows(
    model: ModelConfig, train: TrainConfig, encoders: list[str], vgg16_weights: Path, freeze_epochs: int
) -> list[Row]:
    """The configurations the table compares, the default recipe first."""
    scratch = [
        Row(f"{encoder}, random init", dataclasses.replace(model, encoder=encoder, encoder_weights="none"), train)
        for encoder in encoders
    ]
    pretrained = dataclasses.replace(model, encoder="vgg16", encoder_weights=str(vgg16_weights))
    return [
        Row("unet (project default), from scratch", model, train),
        *scratch,
        Row("vgg16, HED trunk, frozen", pretrained, dataclasses.replace(train, freeze_encoder_epochs=train.epochs)),
        Row(
            f"vgg16, HED trunk, fine-tuned after {freeze_epochs} frozen",
            pretrained,
            dataclasses.replace(train, freeze_encoder_epochs=freeze_epochs),
        ),
    ]


def table(results: list[dict]) -> str:
    header = ["encoder", "params", "fwd GFLOPs/img", "train img/s", "train wall s", "pixel acc", "mean IoU", "fg IoU"]
    cells = [
        [
            row["recipe"],
            f"{row['params'] / 1e6:.2f}M",
            f"{row['gflops']:.2f}",
            f"{row['images_per_s']:.1f}",
            f"{row['wall_s']:.0f}",
            f"{row['pixel_accuracy']:.3f}",
            f"{row['mean_iou']:.3f}",
            f"{row['foreground_iou']:.3f}",
        ]
        for row in results
    ]
    return markdown_table(header, cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    dataset_arguments(parser, "the training params every row shares")
    parser.add_argument("--epochs", type=int, help="epochs of every row (default: train.epochs of --params)")
    parser.add_argument("--freeze-epochs", type=int, help="frozen epochs before fine-tuning (default: a quarter)")
    parser.add_argument("--vgg16-weights", type=Path, default=HED_VGG16, help="VGG16 trunk (vgg16_from_hed.py)")
    parser.add_argument(
        "--encoders",
        nargs="+",
        choices=list(BACKBONES),
        default=list(BACKBONES),
        metavar="NAME",
        help="the backbones trained from random init (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 32 px, one epoch each")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.vgg16_weights.is_file():
        parser.error(f"--vgg16-weights {args.vgg16_weights} not found: run python benchmarks/vgg16_from_hed.py first")

    image_size = 32 if args.quick else args.image_size
    params = benchmark_params(load_params(args.params), args.folder, image_size)
    epochs = 1 if args.quick else args.epochs or params.train.epochs
    train = dataclasses.replace(params.train, epochs=epochs, warmup_epochs=min(params.train.warmup_epochs, epochs - 1))
    freeze_epochs = args.freeze_epochs if args.freeze_epochs is not None else max(1, epochs // 4)
    params = dataclasses.replace(params, train=train)
    params.validate()
    with tempfile.TemporaryDirectory(prefix="benchmark-") as tmp:
        prepared = prepare_dataset(params.data, Path(tmp) / "prepared")
        results = [
            run_recipe(row.name, prepared, row.model, row.train)
            for row in rows(params.model, train, args.encoders, args.vgg16_weights, freeze_epochs)
        ]
        peak = matmul_peak_gflops(seconds=0.5 if args.quick else 3.0)
    print(f"\n{machine_line()}; fp32 matmul peak: {peak:.0f} GFLOP/s")
    print(
        f"{prepared.count('train')} train / {prepared.count('test')} test images from {args.folder} at "
        f"{image_size} px, {epochs} epochs each; no row used ImageNet weights (none can be downloaded here)\n"
    )
    print(table(results))


if __name__ == "__main__":
    main()
