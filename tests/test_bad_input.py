"""Bad input is refused with one line naming the file or key, and earlier outputs stay untouched."""

from __future__ import annotations

import errno
import json

import keras
import pytest
import yaml

from segpipe import atomic
from segpipe.config import ModelConfig
from segpipe.errors import DataError
from segpipe.model import build_unet, load_model, save_model
from segpipe.prepared import MANIFEST, Normalization, open_prepared
from segpipe.runner import run_main
from tests.helpers import merged, run_script, write_tiny_prepared


@pytest.fixture
def prepared(tmp_path):
    """A tiny prepared folder: three 8×8 examples per split, in shards of two, and its manifest."""
    write_tiny_prepared(tmp_path, per_split=3)
    return tmp_path


def test_intact_prepared_data_reads(prepared):
    assert open_prepared(prepared).count("test") == 3


def test_truncated_shard_is_named(prepared):
    shard = prepared / "train-00000.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"train-00000\.tfrecord: corrupted or truncated shard"):
        open_prepared(prepared)


def test_corrupted_byte_fails_the_crc_and_names_the_shard(prepared):
    shard = prepared / "val-00001.tfrecord"
    data = bytearray(shard.read_bytes())
    data[40] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"val-00001\.tfrecord: corrupted or truncated shard"):
        open_prepared(prepared)


def test_missing_shard_is_named(prepared):
    (prepared / "test-00001.tfrecord").unlink()
    with pytest.raises(DataError, match=r"test-00001\.tfrecord: a shard the manifest lists is missing"):
        open_prepared(prepared)


def test_manifest_count_that_no_longer_matches_the_shards(prepared):
    manifest = json.loads((prepared / MANIFEST).read_text())
    manifest["splits"]["train"]["examples"] = 5
    (prepared / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"manifest\.json says train has 5 examples but its shards hold 3"):
        open_prepared(prepared)


def test_manifest_image_size_that_no_longer_matches_the_shards(prepared):
    manifest = json.loads((prepared / MANIFEST).read_text())
    manifest["image_size"] = 16
    (prepared / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"holds images of another size than the manifest's 16x16"):
        open_prepared(prepared)


def test_manifest_that_is_not_json(prepared):
    (prepared / MANIFEST).write_text("{ oops")
    with pytest.raises(DataError, match=r"manifest\.json is not valid JSON"):
        open_prepared(prepared)


def test_model_with_a_python_lambda_is_refused(tmp_path):
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(DataError, match=r"lambda\.keras: refused, it holds Python code"):
        load_model(tmp_path / "lambda.keras")


@pytest.mark.slow
def test_model_for_another_image_size_is_refused_by_evaluate(tmp_path, project_params):
    """Run the evaluate stage against prepared data of 8 px and a model built for 16 px."""
    config = ModelConfig(depth=1, base_filters=2, batch_norm=False, batch_norm_momentum=0.9, dropout=0.0)
    params = merged(project_params, {"paths": {"prepared": "prepared", "model": "m.keras"}})  # inside tmp_path
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    save_model(build_unet(16, 3, config, Normalization(scale=1.0, offset=0.0)), tmp_path / "m.keras", ("a", "b", "c"))
    write_tiny_prepared(tmp_path / "prepared")
    result = run_script("stages/evaluate.py", tmp_path)
    assert result.returncode == 1
    assert (
        "m.keras takes 16x16 images and predicts 3 classes, but the prepared data is 8x8"
        in result.stderr.splitlines()[-1]
    )


def test_full_disk_fails_in_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, caplog):
    """A disk that fills up mid-write (simulated: ENOSPC) leaves the previous output as it was."""
    target = tmp_path / "metrics.json"
    target.write_text("previous result")

    def full_disk(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("pathlib.Path.write_text", full_disk)
    with pytest.raises(SystemExit) as exit_status:
        run_main(lambda: atomic.write_json(target, {"mean_iou": 0.9}))
    monkeypatch.undo()
    assert exit_status.value.code == 1
    assert caplog.records[-1].getMessage().endswith("No space left on device")
    assert target.read_text() == "previous result"
    assert [path.name for path in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(class_names=["pet"]), "class_names must name at least 2 distinct classes, got ['pet']"),
        (lambda m: m.pop("normalization"), "normalization is missing"),
        (lambda m: m["splits"]["val"].update(examples="3"), "splits.val.examples must be int, got '3' (str)"),
        (
            lambda m: m["splits"]["test"].update(shards=["../x.tfrecord"]),
            "splits.test.shards must be file names inside the folder, got ['../x.tfrecord']",
        ),
        (lambda m: m.update(extra=1), "extra is not a known manifest field"),
    ],
)
def test_manifest_fields_are_validated_naming_the_field(prepared, change, message):
    manifest = json.loads((prepared / MANIFEST).read_text())
    change(manifest)
    (prepared / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError) as error:
        open_prepared(prepared)
    assert str(error.value) == f"{prepared / MANIFEST}: {message}: run the prepare stage again"


def test_a_written_manifest_reads_back_as_the_same_prepared_data(tmp_path):
    written = write_tiny_prepared(tmp_path, per_split=2)
    assert open_prepared(tmp_path) == written


def test_the_manifest_names_each_split_s_size_examples_as_prepared_data_always_did(tmp_path):
    write_tiny_prepared(tmp_path, per_split=3)
    train = json.loads((tmp_path / MANIFEST).read_text())["splits"]["train"]
    assert train == {"examples": 3, "shards": ["train-00000.tfrecord", "train-00001.tfrecord"]}
