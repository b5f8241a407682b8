"""What evaluate writes, as records: their fields are the keys or columns of its output files, so the
writers and `outputs` (which tells a file of ours from a user's by them) take them from one place."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

ADDED_LATER = {"added_later": True}  # a key the files of earlier versions lack: not asked of an existing file


@dataclass(frozen=True)
class Scores:
    """A split's scores, as evaluate writes them (`dataclasses.asdict` is the JSON); None where undefined."""

    pixel_accuracy: float | None
    mean_iou: float | None  # over the classes present in truth or prediction
    # all but `background` as one class (Oxford: border counted as pet)
    foreground_iou: float | None = dataclasses.field(metadata=ADDED_LATER)
    iou: dict[str, float | None]
    dice: dict[str, float | None]
    pixels: int


@dataclass(frozen=True)
class ImageScore:
    """One test image's score: `index` is its position in the stored test split, `file_name` its source file."""

    index: int
    file_name: str
    mean_iou: float  # over the classes its truth or its prediction holds


CONFUSION_COLUMNS = ("actual", "predicted", "pixels")  # the long-format confusion table DVC plots
CLASS_IOU_COLUMNS = ("class", "iou")


def always_written(record: type) -> tuple[str, ...]:
    """The fields of `record` that every version of the pipeline wrote."""
    return tuple(field.name for field in dataclasses.fields(record) if not field.metadata.get("added_later"))


def columns(record: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(record))
