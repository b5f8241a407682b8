"""`segpipe predict`: a trained model applied to image files, each mask at its photo's own size.

Images are read as prepare reads them (any mode → RGB), turned upright by their EXIF orientation,
resized as prepare resizes, and predicted in batches. Each mask comes from the class probabilities
upsampled to the photo's size (bilinear), argmax taken there: smoother edges than upsampling the
small argmax. Every output is written into a temporary folder first and moved into place only
once all images succeeded, so a bad input leaves the output folder as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, PngImagePlugin

from segpipe import atomic
from segpipe.config import MAX_CLASSES, Tta
from segpipe.errors import DataError
from segpipe.images import IMAGE_SUFFIXES, read_rgb, resize_image
from segpipe.inference import Predictor, probabilities_with_tta
from segpipe.metrics import BACKGROUND  # the class an overlay leaves untinted, as foreground IoU leaves it out
from segpipe.palette import class_palette

log = logging.getLogger(__name__)

CSV_NAME = "predictions.csv"
CSV_COLUMNS = ("file", "width", "height")  # then one column per class: SHARE_PREFIX and its name
SHARE_PREFIX = "share_"
STAGING_PREFIX = ".segpipe-predict-"  # then the process id: a later run sweeps those whose process is gone
PROGRESS_FROM = 5  # images: a progress bar from this many on


@dataclass(frozen=True)
class PredictOptions:
    out_dir: Path
    tta: Tta = "none"
    overlay: bool = False
    overlay_opacity: float = 0.5  # how strongly an overlay tints a foreground pixel with its class colour
    skip_bad: bool = False
    max_pixels: int = 40_000_000
    batch_size: int = 8


@dataclass(frozen=True)
class InputImage:
    path: Path
    stem: Path  # output name without suffix, relative to the output folder


def collect_inputs(inputs: list[Path], recursive: bool) -> list[InputImage]:
    """Image files named directly, and those in named folders (below them too with `recursive`).

    A file named directly is taken whatever its suffix (and refused later if it is no image); in
    folders, files with an image suffix are taken. Outputs keep the layout below each folder.
    """
    found: list[InputImage] = []
    for path in inputs:
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                where = "in or below" if recursive else "in"
                raise DataError(f"{path}: no images {where} this folder (looked for {', '.join(IMAGE_SUFFIXES)})")
            found += [InputImage(file, file.relative_to(path).with_suffix("")) for file in files]
        elif path.exists():
            found.append(InputImage(path, Path(path.stem)))
        else:
            raise DataError(f"{path}: no such file or folder")
    return found


def output_names(image: InputImage, overlay: bool) -> list[Path]:
    names = [image.stem.with_name(image.stem.name + ".png")]
    if overlay:
        names.append(image.stem.with_name(image.stem.name + ".overlay.jpg"))
    return names


def check_outputs(inputs: list[Path], images: list[InputImage], options: PredictOptions) -> None:
    """Refuse an output folder that is inside an input folder or holds an input file, two inputs that
    would write the same output, and an existing output file that predict did not write."""
    out_dir = options.out_dir.resolve()
    for folder in (path.resolve() for path in inputs if path.is_dir()):
        if out_dir == folder or folder in out_dir.parents:
            raise DataError(
                f"--out {options.out_dir} is inside the input folder {folder}: predict would read its own "
                "outputs or overwrite inputs; choose an output folder outside it"
            )
    for image in images:
        if out_dir in image.path.resolve().parents:
            raise DataError(
                f"--out {options.out_dir} holds the input {image.path}: predict would write among its inputs; "
                "choose an output folder that holds none"
            )
    claimed: dict[Path, Path] = {}
    atomic.refuse_unowned("the table", options.out_dir / CSV_NAME, TABLE_SHAPE)
    for image in images:
        for name, shape in zip(output_names(image, options.overlay), IMAGE_SHAPES, strict=False):
            target = (out_dir / name).resolve()
            if claimed.setdefault(target, image.path) != image.path:
                raise DataError(f"{claimed[target]} and {image.path} would both be written to {options.out_dir / name}")
            atomic.refuse_unowned(f"the output for {image.path}", options.out_dir / name, shape)


def _is_table_header(header: list[str]) -> bool:
    """The header `_csv_row` gives: CSV_COLUMNS, then a share column for each of at least one class."""
    shares = header[len(CSV_COLUMNS) :]
    return (
        tuple(header[: len(CSV_COLUMNS)]) == CSV_COLUMNS
        and bool(shares)
        and all(name.startswith(SHARE_PREFIX) for name in shares)
    )


TABLE_SHAPE = atomic.csv_headed_by(_is_table_header, ",".join((*CSV_COLUMNS, f"{SHARE_PREFIX}*")))
IMAGE_SHAPES = (atomic.STAMPED_PNG, atomic.STAMPED_JPEG)  # of the names `output_names` gives: mask, overlay


def predict_files(
    predictor: Predictor, class_names: tuple[str, ...], inputs: list[Path], recursive: bool, options: PredictOptions
) -> list[dict[str, object]]:
    """Predict every image `inputs` name into `options.out_dir`; return the CSV rows written."""
    images = collect_inputs(inputs, recursive)
    check_outputs(inputs, images, options)
    if len(class_names) > MAX_CLASSES:
        raise DataError(
            f"{predictor.path} predicts {len(class_names)} classes; masks are 8-bit palette PNGs, which hold at "
            f"most {MAX_CLASSES}"
        )
    palette = class_palette(len(class_names))
    foreground = foreground_classes(class_names)
    created = _folders_to_create(options.out_dir)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    _sweep_dead_staging(options.out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", suffix=".tmp", dir=options.out_dir))
    rows, skipped = [], []
    progress = keras.utils.Progbar(len(images), unit_name="image") if len(images) >= PROGRESS_FROM else None
    try:
        for batch in _batches(images, predictor.image_size, options, skipped):
            small = np.stack([resized for _, _, resized in batch])
            probabilities = probabilities_with_tta(predictor, small, options.tta)
            for (image, pixels, _), probs in zip(batch, probabilities, strict=True):
                mask = full_size_mask(probs, pixels.shape[0], pixels.shape[1])
                _write_outputs(staging, image, pixels, mask, palette, foreground, options)
                rows.append(_csv_row(image, mask, class_names))
            if progress:
                progress.update(len(rows) + len(skipped))
        if not rows:
            raise DataError("no image could be read: nothing predicted")
        atomic.write_csv(staging / CSV_NAME, rows)
        _move_into(staging, options.out_dir)
        created = []  # the run succeeded: the folders it made stay
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in reversed(created):  # a run that failed leaves no folder it made
            with contextlib.suppress(OSError):
                folder.rmdir()
    for reason in skipped:
        log.warning("skipped %s", reason)
    log.info("%d masks written to %s, %d images skipped", len(rows), options.out_dir, len(skipped))
    return rows


def _folders_to_create(folder: Path) -> list[Path]:
    """`folder` and its missing parents, outermost first: what `mkdir(parents=True)` is about to create."""
    missing = [folder, *folder.parents]
    return [path for path in reversed(missing) if not path.exists()]


def _sweep_dead_staging(out_dir: Path) -> None:
    """Remove staging folders that killed runs of predict left in `out_dir` (their process is gone)."""
    for leftover in out_dir.glob(f"{STAGING_PREFIX}*.tmp"):
        match = re.fullmatch(rf"{re.escape(STAGING_PREFIX)}(\d+)-.*\.tmp", leftover.name)
        if leftover.is_dir() and not (match and _process_alive(int(match.group(1)))):
            shutil.rmtree(leftover, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return pid != 0


def full_size_mask(probabilities: np.ndarray, height: int, width: int) -> np.ndarray:
    """Class ids H×W (uint8): the S×S×C probabilities resized bilinearly to H×W, then argmax."""
    resized = tf.image.resize(probabilities[None], (height, width), method="bilinear")[0]
    return tf.argmax(resized, axis=-1, output_type=tf.int32).numpy().astype(np.uint8)


def _batches(
    images: list[InputImage], size: int, options: PredictOptions, skipped: list[str]
) -> Iterator[list[tuple[InputImage, np.ndarray, np.ndarray]]]:
    """(image, upright RGB pixels, pixels resized for the model) in batches; bad ones raise or are skipped."""
    batch = []
    for image in images:
        try:
            pixels = read_rgb(image.path, max_pixels=options.max_pixels)
        except DataError as error:
            if not options.skip_bad:
                raise
            skipped.append(str(error))
            continue
        batch.append((image, pixels, resize_image(pixels, size)))
        if len(batch) == options.batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_outputs(
    folder: Path,
    image: InputImage,
    pixels: np.ndarray,
    mask: np.ndarray,
    palette: np.ndarray,
    foreground: np.ndarray,
    options: PredictOptions,
) -> None:
    mask_name, *overlay_name = output_names(image, options.overlay)
    (folder / mask_name).parent.mkdir(parents=True, exist_ok=True)
    png = Image.fromarray(mask, mode="P")
    png.putpalette(palette.ravel().tolist())
    stamp = PngImagePlugin.PngInfo()
    stamp.add_text("Software", atomic.PNG_SOFTWARE)  # how a later run knows this file is predict's own
    png.save(folder / mask_name, format="PNG", pnginfo=stamp)
    if overlay_name:
        blended = tinted(pixels, mask, palette, foreground, options.overlay_opacity)
        Image.fromarray(blended).save(folder / overlay_name[0], format="JPEG", quality=90, comment=atomic.PNG_SOFTWARE)


def foreground_classes(class_names: tuple[str, ...]) -> np.ndarray:
    """Which classes an overlay tints: all but one named `background` (in any case)."""
    return np.array([name.lower() != BACKGROUND for name in class_names])


def tinted(
    pixels: np.ndarray, mask: np.ndarray, palette: np.ndarray, foreground: np.ndarray, opacity: float
) -> np.ndarray:
    """The photo with each pixel of a `foreground` class blended with its class colour at `opacity`; the
    background stays the photo, so the tinted shape reads on any photo (an orange cat on a sofa)."""
    blended = pixels.astype(np.float64)
    where = foreground[mask]
    blended[where] = (1 - opacity) * blended[where] + opacity * palette[mask[where]]
    return blended.round().astype(np.uint8)


def _csv_row(image: InputImage, mask: np.ndarray, class_names: tuple[str, ...]) -> dict[str, object]:
    counts = np.bincount(mask.ravel(), minlength=len(class_names))
    shares = {
        f"{SHARE_PREFIX}{name}": round(float(count) / mask.size, 6)
        for name, count in zip(class_names, counts, strict=True)
    }
    size = dict(zip(CSV_COLUMNS, (str(image.path), mask.shape[1], mask.shape[0]), strict=True))
    return {**size, **shares}


def _move_into(staging: Path, out_dir: Path) -> None:
    """Move every staged file to the same place under `out_dir`, each with one atomic rename."""
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        target = out_dir / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
