"""Where each stage writes, and whether what is there now may be replaced.

A stage writes only where the pipeline owns the place: a folder output replaces only a folder
holding its stamp file, a file output only a file dvc.lock lists as an output or one with the shape
of that very output (`FILE_SHAPES`: a CSV headed by that output's columns, a JSON object with that
output's keys, a stamped image, a Keras archive holding the model card; see `atomic.refuse_unowned`),
and DVCLive's folder only a DVCLive folder. Every stage checks its own outputs before it works; the
`check` stage checks them all before DVC deletes any (dvc.yaml).
"""

from __future__ import annotations

from pathlib import Path

from segpipe import atomic
from segpipe.config import PathsConfig
from segpipe.errors import PipelineError
from segpipe.records import CLASS_IOU_COLUMNS, CONFUSION_COLUMNS, ImageScore, Scores, always_written, columns

MANIFEST = "manifest.json"  # the stamp of a prepared-data folder (prepare)
MODEL_INFO = "model_info.json"  # the stamp of an export folder: class names and the input/output contract
BACKUP_STAMP = "run.json"  # the stamp of a training backup: which run it belongs to, its epoch and weights digest
FOLDER_STAMPS = {"prepared": MANIFEST, "export": MODEL_INFO, "backup": BACKUP_STAMP}
LIVE = "live"  # DVCLive's folder: it deletes its own file names in it on a fresh run
MODEL_CARD = "segpipe.json"  # inside the .keras archive (Keras ignores it): what a user of the model needs
CHECKED = {"params": "valid"}  # what check writes: the same bytes each time, so nothing re-runs for it

# What each file output is like when the pipeline wrote it: only such a file (or one dvc.lock lists) is replaced.
# evaluate.json: the keys every version wrote, so that one written before a key was added is still ours.
FILE_SHAPES: dict[str, atomic.FileShape] = {
    "checked": atomic.json_with_keys(CHECKED),
    "model": atomic.keras_archive_holding(MODEL_CARD),
    "eval_metrics": atomic.json_with_keys(always_written(Scores)),
    "confusion": atomic.csv_with_columns(CONFUSION_COLUMNS),
    "class_iou": atomic.csv_with_columns(CLASS_IOU_COLUMNS),
    "image_iou": atomic.csv_with_columns(columns(ImageScore)),
    "training_curves": atomic.STAMPED_PNG,
    "predictions": atomic.STAMPED_PNG,
    "worst": atomic.STAMPED_PNG,
}

STAGE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "check": ("checked",),
    "prepare": ("prepared",),
    "train": ("model", LIVE, "backup"),
    "evaluate": ("eval_metrics", "confusion", "class_iou", "image_iou"),
    "visualize": ("training_curves", "predictions", "worst"),
    "export": ("export",),
}


def refuse_unowned_outputs(paths: PathsConfig, stage: str | None = None) -> None:
    """Refuse to go on if an output of `stage` (of every stage when None) would replace what the
    pipeline did not write; the error names the param."""
    names = STAGE_OUTPUTS[stage] if stage else [name for outputs in STAGE_OUTPUTS.values() for name in outputs]
    for name in names:
        key, path = f"paths.{name}", Path(getattr(paths, name))
        if name in FOLDER_STAMPS:
            atomic.refuse_unstamped_dir(key, path, FOLDER_STAMPS[name])
        elif name == LIVE:
            refuse_foreign_live_dir(path)
        else:
            atomic.refuse_unowned(key, path, FILE_SHAPES[name])


def refuse_foreign_live_dir(live_dir: Path) -> None:
    """Refuse `live_dir` unless it is absent, holds no file anywhere (only empty folders: what DVCLive leaves
    when a run is stopped in its first epoch), or is DVCLive's own (it holds metrics.json or plots/metrics/):
    a fresh run's DVCLive deletes metrics.json, params.yaml, report.*, dvc.yaml and plots/*/ in it."""
    if live_dir.is_file() or (
        live_dir.is_dir()
        and _holds_a_file(live_dir)
        and not ((live_dir / "metrics.json").is_file() or (live_dir / "plots" / "metrics").is_dir())
    ):
        raise PipelineError(
            f"paths.live ({live_dir}) exists and is not a DVCLive folder (no metrics.json or plots/metrics/), and "
            "DVCLive deletes files by name in it: move it away or choose another path"
        )


def _holds_a_file(folder: Path) -> bool:
    """Whether anything but a folder is in or below `folder`; a link counts, even to a folder (not followed)."""
    return any(path.is_symlink() or not path.is_dir() for path in folder.rglob("*"))
