"""The benchmarks' smoke modes run through the pipeline's code and print their tables."""

from __future__ import annotations

import pytest

from tests.helpers import ROOT, run_script, write_oxford_folder

pytestmark = pytest.mark.slow


def run_benchmark_script(script: str, *args: str) -> str:
    result = run_script(script, ROOT, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def run_benchmark(*args: str) -> str:
    return run_benchmark_script("benchmarks/recipes.py", *args)


def pets(tmp_path):
    train = {f"cat_{i}": "RGB" for i in range(6)}
    test = {f"dog_{i}": "RGB" for i in range(3)}
    return write_oxford_folder(tmp_path / "pets", train=train, test=test)


def test_quick_benchmark_prints_both_recipes_and_the_comparison(tmp_path):
    out = run_benchmark("--quick", "--folder", str(pets(tmp_path)))
    assert "| reference notebook | 31.03M |" in out
    assert "| project default |" in out
    assert "default vs reference: mean IoU" in out
    assert "fp32 matmul peak:" in out


def test_quick_speed_benchmark_compares_workers_input_pipelines_and_training_switches(tmp_path):
    out = run_benchmark_script("benchmarks/speed.py", "--quick", "--folder", str(pets(tmp_path)))
    assert "prepare speed-up (best of 1): x" in out and "shards and manifest identical" in out
    assert "streamed / in memory: x" in out
    assert "| float32 | 1 |" in out and "| bfloat16 | 1 |" in out


def test_quick_profile_prints_the_first_and_steady_step_and_where_a_step_goes(tmp_path):
    out = run_benchmark_script("benchmarks/profile_step.py", "--quick", "--folder", str(pets(tmp_path)))
    assert "first epoch: " in out and " ms/step (tracing, kernel set-up); steady: " in out
    assert "| ops | thread ms/step | share |" in out
    for category in ("convolutions (forward and backward)", "batch norm (Keras: float32, not fused)", "optimizer"):
        assert f"| {category} | " in out


def test_quick_inference_benchmark_prints_tta_and_every_format(tmp_path):
    out = run_benchmark_script("benchmarks/inference.py", "--quick", "--folder", str(pets(tmp_path)))
    assert "| none |" in out and "| flip |" in out
    for name in ("Keras (.keras)", "SavedModel", "ONNX", "LiteRT, float32", "LiteRT, float16 weights", "LiteRT, int8"):
        assert f"| {name}" in out


def test_quick_encoder_benchmark_compares_scratch_backbones_and_a_pretrained_trunk(tmp_path):
    import keras

    weights = tmp_path / "vgg16.weights.h5"  # random: the smoke run needs the file, not what it learned
    keras.applications.VGG16(weights=None, include_top=False, input_shape=(None, None, 3)).save_weights(weights)
    args = ("--quick", "--folder", str(pets(tmp_path)), "--vgg16-weights", str(weights), "--encoders", "mobilenet_v2")
    out = run_benchmark_script("benchmarks/encoders.py", *args)
    assert "| encoder | params | fwd GFLOPs/img | train img/s | train wall s | pixel acc | mean IoU | fg IoU |" in out
    for row in (
        "unet (project default), from scratch | 0.49M",
        "mobilenet_v2, random init",
        "vgg16, HED trunk, frozen",
    ):
        assert f"| {row}" in out
    assert "no row used ImageNet weights" in out
