"""`segpipe predict`: a mask per photo at the photo's own size, and bad input refused in one line."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segpipe.cli import main as segpipe
from segpipe.config import ModelConfig
from segpipe.model import build_unet, save_model
from segpipe.predict import foreground_classes, full_size_mask, tinted
from segpipe.prepared import Normalization
from tests.helpers import ROOT, save_image, script_env

CLASSES = ("pet", "background", "border")
CONFIG = ModelConfig(depth=1, base_filters=2, batch_norm=True, batch_norm_momentum=0.9, dropout=0.0)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """An untrained 16 px, 3-class U-Net: predictions are arbitrary but every class id is possible."""
    path = tmp_path_factory.mktemp("model") / "model.keras"
    save_model(build_unet(16, 3, CONFIG, Normalization(scale=1 / 255, offset=0.0)), path, CLASSES)
    return path


def predict(model_path, *args) -> int:
    """Run `segpipe predict --model MODEL ARGS...` outside any project (no params.yaml, so no class
    names from prepared data); return its exit code (0 on success)."""
    no_project = model_path.parent / "no-such-params.yaml"
    try:
        segpipe(["--params", str(no_project), "predict", "--model", str(model_path), *map(str, args)])
    except SystemExit as exit_status:
        return exit_status.code
    return 0


def last_error(caplog) -> str:
    return [record.getMessage() for record in caplog.records if record.levelname == "ERROR"][-1]


def photos(folder, sizes=((24, 20), (61, 33), (15, 40))):
    """Photos of several sizes and modes (RGB JPEG, RGBA PNG, palette GIF), all behind .jpg names."""
    for (width, height), mode in zip(sizes, ("RGB", "RGBA", "GIF"), strict=False):
        save_image(folder / f"photo_{width}x{height}.jpg", mode, size=(width, height))
    return folder


def test_each_mask_is_a_palette_png_of_class_ids_at_the_photo_size(model_path, tmp_path):
    assert predict(model_path, photos(tmp_path / "in"), "--out", tmp_path / "out") == 0
    for width, height in ((24, 20), (61, 33), (15, 40)):
        mask = Image.open(tmp_path / "out" / f"photo_{width}x{height}.png")
        assert (mask.mode, mask.size) == ("P", (width, height))
        assert set(np.unique(np.asarray(mask))) <= {0, 1, 2}


def test_the_mask_follows_the_exif_orientation(model_path, tmp_path):
    image = Image.new("RGB", (40, 20), (10, 200, 30))
    exif = image.getexif()
    exif[0x0112] = 6  # stored landscape, shown rotated by 90 degrees: portrait
    (tmp_path / "in").mkdir()
    image.save(tmp_path / "in" / "phone.jpg", exif=exif.tobytes())
    assert predict(model_path, tmp_path / "in" / "phone.jpg", "--out", tmp_path / "out") == 0
    assert Image.open(tmp_path / "out" / "phone.png").size == (20, 40)


def test_csv_lists_each_file_its_size_and_class_shares(model_path, tmp_path):
    predict(model_path, photos(tmp_path / "in"), "--out", tmp_path / "out")
    with open(tmp_path / "out" / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["file", "width", "height", "share_pet", "share_background", "share_border"]
    assert [(row["width"], row["height"]) for row in rows] == [("15", "40"), ("24", "20"), ("61", "33")]
    for row in rows:
        assert sum(float(row[f"share_{name}"]) for name in CLASSES) == pytest.approx(1.0, abs=1e-5)


def test_overlay_is_a_jpeg_of_the_photo_size(model_path, tmp_path):
    predict(model_path, photos(tmp_path / "in"), "--out", tmp_path / "out", "--overlay")
    overlay = Image.open(tmp_path / "out" / "photo_61x33.overlay.jpg")
    assert (overlay.format, overlay.size) == ("JPEG", (61, 33))


def test_recursive_keeps_the_folder_layout(model_path, tmp_path):
    photos(tmp_path / "in" / "cats", sizes=((24, 20),))
    photos(tmp_path / "in", sizes=((15, 40),))
    assert predict(model_path, tmp_path / "in", "--out", tmp_path / "out", "--recursive") == 0
    assert (tmp_path / "out" / "cats" / "photo_24x20.png").is_file()
    assert (tmp_path / "out" / "photo_15x40.png").is_file()


def test_full_size_mask_takes_the_argmax_of_upsampled_probabilities():
    # 1×2 probabilities of two classes: left pixel mostly class 0, right pixel slightly class 1.
    probabilities = np.array([[[0.9, 0.1], [0.4, 0.6]]], dtype=np.float32)
    # Upsampled to 1×4 (bilinear, half-pixel centres): 0.9/0.1, 0.775/0.225, 0.525/0.475, 0.4/0.6.
    # Nearest-neighbour on the small argmax would give [0, 0, 1, 1]; the probabilities say 0, 0, 0, 1.
    np.testing.assert_array_equal(full_size_mask(probabilities, 1, 4), [[0, 0, 0, 1]])


def test_a_missing_model_is_named(tmp_path, caplog):
    assert predict(tmp_path / "nope.keras", photos(tmp_path / "in"), "--out", tmp_path / "out") == 1
    assert last_error(caplog) == f"{tmp_path / 'nope.keras'} not found"


def test_a_projects_missing_model_says_how_to_get_one(tmp_path, monkeypatch, caplog):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        segpipe(["predict", str(photos(tmp_path / "in")), "--out", str(tmp_path / "out")])
    assert last_error(caplog) == (
        "models/model.keras (paths.model) not found: `dvc repro` trains it, `dvc pull` fetches the trained one from "
        "the project's DVC remote; or pass --model PATH"
    )


def test_the_overlay_opacity_must_be_a_share(model_path, tmp_path, capsys):
    assert predict(model_path, photos(tmp_path / "in"), "--out", tmp_path / "out", "--overlay-opacity", "1.5") == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "segpipe predict: error: argument --overlay-opacity: must be in (0, 1], got 1.5"
    )


def test_a_file_that_is_not_a_model_is_refused(tmp_path, caplog):
    (tmp_path / "notes.txt").write_text("not a model")
    assert predict(tmp_path / "notes.txt", photos(tmp_path / "in"), "--out", tmp_path / "out") == 1
    assert last_error(caplog) == (
        f"{tmp_path / 'notes.txt'}: not a model (expected a .keras, .tflite or .onnx file, or a SavedModel folder)"
    )


def test_a_keras_file_that_is_not_a_zip_archive_is_refused_as_such(tmp_path, caplog):
    (tmp_path / "model.keras").write_bytes(b"\x89PNG not a model")
    assert predict(tmp_path / "model.keras", photos(tmp_path / "in"), "--out", tmp_path / "out") == 1
    assert last_error(caplog) == (
        f"{tmp_path / 'model.keras'}: not a Keras model (a .keras file is a zip archive; this one is not)"
    )


def test_a_model_of_more_classes_than_a_palette_holds_is_refused(tmp_path, caplog):
    path = tmp_path / "wide.keras"
    names = tuple(f"c{index}" for index in range(300))
    save_model(build_unet(16, 300, CONFIG, Normalization(scale=1 / 255, offset=0.0)), path, names)
    assert predict(path, photos(tmp_path / "in"), "--out", tmp_path / "out") == 1
    assert last_error(caplog) == f"{path} predicts 300 classes; masks are 8-bit palette PNGs, which hold at most 256"
    assert not (tmp_path / "out").exists()


def test_an_input_that_is_not_an_image_stops_before_anything_is_written(model_path, tmp_path, caplog):
    photos(tmp_path / "in")
    assert predict(model_path, tmp_path / "in", "--out", tmp_path / "out") == 0
    earlier = {path.name: path.read_bytes() for path in (tmp_path / "out").iterdir()}
    (tmp_path / "in" / "broken.jpg").write_text("not an image")
    assert predict(model_path, tmp_path / "in", "--out", tmp_path / "out") == 1
    assert last_error(caplog).startswith(f"{tmp_path / 'in' / 'broken.jpg'}: unreadable image (")
    assert {path.name: path.read_bytes() for path in (tmp_path / "out").iterdir()} == earlier


def test_skip_bad_lists_and_skips_the_unreadable_image(model_path, tmp_path, caplog):
    photos(tmp_path / "in")
    (tmp_path / "in" / "broken.jpg").write_text("not an image")
    assert predict(model_path, tmp_path / "in", "--out", tmp_path / "out", "--skip-bad") == 0
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert any(
        message.startswith(f"skipped {tmp_path / 'in' / 'broken.jpg'}: unreadable image") for message in warnings
    )
    assert not (tmp_path / "out" / "broken.png").exists()
    assert len((tmp_path / "out" / "predictions.csv").read_text().splitlines()) == 1 + 3


def test_a_folder_without_images_is_refused(model_path, tmp_path, caplog):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no photos here")
    assert predict(model_path, tmp_path / "empty", "--out", tmp_path / "out") == 1
    assert last_error(caplog) == (
        f"{tmp_path / 'empty'}: no images in this folder (looked for .jpg, .jpeg, .png, .gif, .bmp, .tif, .tiff, .webp)"
    )


def test_an_image_above_the_pixel_limit_is_refused_from_its_header(model_path, tmp_path, caplog):
    photos(tmp_path / "in", sizes=((61, 33),))
    assert predict(model_path, tmp_path / "in", "--out", tmp_path / "out", "--max-pixels", "2000") == 1
    assert last_error(caplog) == (
        f"{tmp_path / 'in' / 'photo_61x33.jpg'}: 61x33 is 0.0 megapixels, above the limit of 0.002 megapixels"
    )


def test_an_output_folder_inside_an_input_folder_is_refused(model_path, tmp_path, caplog):
    photos(tmp_path / "in")
    assert predict(model_path, tmp_path / "in", "--out", tmp_path / "in" / "masks") == 1
    assert last_error(caplog) == (
        f"--out {tmp_path / 'in' / 'masks'} is inside the input folder {tmp_path / 'in'}: predict would read its "
        "own outputs or overwrite inputs; choose an output folder outside it"
    )
    assert not (tmp_path / "in" / "masks").exists()


def test_an_output_that_would_overwrite_an_input_is_refused(model_path, tmp_path, caplog):
    save_image(tmp_path / "shots" / "cat.png", "RGB")
    assert predict(model_path, tmp_path / "shots" / "cat.png", "--out", tmp_path / "shots") == 1
    assert last_error(caplog) == (
        f"--out {tmp_path / 'shots'} holds the input {tmp_path / 'shots' / 'cat.png'}: predict would write among "
        "its inputs; choose an output folder that holds none"
    )


def test_two_inputs_writing_the_same_mask_are_refused(model_path, tmp_path, caplog):
    save_image(tmp_path / "a" / "cat.jpg", "RGB")
    save_image(tmp_path / "b" / "cat.png", "RGB")
    assert predict(model_path, tmp_path / "a" / "cat.jpg", tmp_path / "b" / "cat.png", "--out", tmp_path / "out") == 1
    first, second, target = tmp_path / "a" / "cat.jpg", tmp_path / "b" / "cat.png", tmp_path / "out" / "cat.png"
    assert last_error(caplog) == f"{first} and {second} would both be written to {target}"


def test_a_file_in_the_output_folder_that_predict_did_not_write_is_never_replaced(model_path, tmp_path, caplog):
    save_image(tmp_path / "fam" / "a.jpg", "RGB")
    save_image(tmp_path / "out" / "a.png", "RGB")  # another photo of the user's, under the mask's name
    before = (tmp_path / "out" / "a.png").read_bytes()
    assert predict(model_path, tmp_path / "fam" / "a.jpg", "--out", tmp_path / "out") == 1
    assert last_error(caplog) == (
        f"the output for {tmp_path / 'fam' / 'a.jpg'} ({tmp_path / 'out' / 'a.png'}) exists and was not written by "
        "this pipeline (not an output in dvc.lock, not a PNG stamped Software=segpipe): move it away or choose "
        "another path"
    )
    assert (tmp_path / "out" / "a.png").read_bytes() == before


def test_a_users_predictions_csv_is_never_replaced(model_path, tmp_path, caplog):
    save_image(tmp_path / "fam" / "a.jpg", "RGB")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "predictions.csv").write_text("my own table\n")
    assert predict(model_path, tmp_path / "fam" / "a.jpg", "--out", tmp_path / "out") == 1
    assert last_error(caplog).startswith(f"the table ({tmp_path / 'out' / 'predictions.csv'}) exists and was not")
    assert (tmp_path / "out" / "predictions.csv").read_text() == "my own table\n"


def table_refusal(out) -> str:
    return (
        f"the table ({out / 'predictions.csv'}) exists and was not written by this pipeline (not an output in "
        "dvc.lock, not a CSV with the columns file,width,height,share_*): move it away or choose another path"
    )


def test_a_users_csv_as_pythons_csv_module_writes_it_is_not_taken_for_predicts_table(model_path, tmp_path, caplog):
    save_image(tmp_path / "fam" / "a.jpg", "RGB")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "predictions.csv").write_bytes(b"x\r\n")
    assert predict(model_path, tmp_path / "fam" / "a.jpg", "--out", tmp_path / "out") == 1
    assert last_error(caplog) == table_refusal(tmp_path / "out")
    assert (tmp_path / "out" / "predictions.csv").read_bytes() == b"x\r\n"
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["predictions.csv"]


@pytest.mark.slow
def test_segpipe_predict_refuses_a_users_csv_at_its_table_as_a_process(model_path, tmp_path):
    save_image(tmp_path / "fam" / "a.jpg", "RGB")
    (tmp_path / "fam" / "out").mkdir()
    (tmp_path / "fam" / "out" / "predictions.csv").write_bytes(b"file,width,height\r\n")  # no share column
    command = [sys.executable, "-m", "segpipe", "predict", "--model", str(model_path), "a.jpg", "--out", "out"]
    result = subprocess.run(
        command, cwd=tmp_path / "fam", env=script_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"ERROR segpipe: {table_refusal(Path('out'))}"
    assert (tmp_path / "fam" / "out" / "predictions.csv").read_bytes() == b"file,width,height\r\n"


def test_an_overlay_tints_only_the_foreground_at_the_opacity_asked():
    pixels = np.full((1, 3, 3), 100, np.uint8)
    mask = np.array([[0, 1, 2]])
    palette = np.array([[200, 0, 0], [0, 200, 0], [0, 0, 200]], np.uint8)
    foreground = foreground_classes(("pet", "Background", "border"))
    assert foreground.tolist() == [True, False, True]
    assert tinted(pixels, mask, palette, foreground, 0.25).tolist() == [[[125, 75, 75], [100, 100, 100], [75, 75, 125]]]


def test_a_second_run_replaces_its_own_masks_overlays_and_table(model_path, tmp_path):
    photos(tmp_path / "in")
    for _ in range(2):
        assert predict(model_path, tmp_path / "in", "--out", tmp_path / "out", "--overlay") == 0
    assert len(list((tmp_path / "out").iterdir())) == 7


def test_staging_left_by_a_killed_run_is_swept_and_a_running_ones_kept(model_path, tmp_path):
    dead = subprocess.Popen(["true"])  # a process id that no longer runs
    dead.wait()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        for pid in (dead.pid, alive.pid):
            (tmp_path / "out" / f".segpipe-predict-{pid}-x1.tmp" / "sub").mkdir(parents=True)
            (tmp_path / "out" / f".segpipe-predict-{pid}-x1.tmp" / "sub" / "m.png").write_text("half done")
        assert predict(model_path, photos(tmp_path / "in"), "--out", tmp_path / "out") == 0
        leftovers = sorted(path.name for path in (tmp_path / "out").glob(".segpipe-predict-*"))
        assert leftovers == [f".segpipe-predict-{alive.pid}-x1.tmp"]
    finally:
        alive.kill()
        alive.wait()


def test_a_failed_run_creates_no_output_folder(model_path, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.jpg").write_text("not an image")
    assert predict(model_path, tmp_path / "in" / "broken.jpg", "--out", tmp_path / "new" / "masks") == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in"]


def test_a_16_bit_photo_gets_the_mask_of_its_8_bit_copy(model_path, tmp_path):
    rng = np.random.default_rng(0)
    eight = rng.integers(0, 256, (30, 40), dtype=np.uint8)
    (tmp_path / "in8").mkdir()
    (tmp_path / "in16").mkdir()
    Image.fromarray(eight).save(tmp_path / "in8" / "scan.png")
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "in16" / "scan.png")
    assert predict(model_path, tmp_path / "in8", "--out", tmp_path / "out8") == 0
    assert predict(model_path, tmp_path / "in16", "--out", tmp_path / "out16") == 0
    mask8, mask16 = (np.asarray(Image.open(tmp_path / out / "scan.png")) for out in ("out8", "out16"))
    np.testing.assert_array_equal(mask16, mask8)
