"""Benchmark: what reproduces across CPU instruction sets, in one run.

oneDNN picks its kernels by the CPU's instruction set; `ONEDNN_MAX_CPU_ISA=AVX2` makes this
machine use the kernels a CPU without AVX-512 would. This script runs the demo pipeline (prepare,
train, evaluate with the project's params.yaml) under the default and under AVX2, and prints
whether the prepared data and model are byte-identical and how far the metrics moved. Then short
probes (`--probe-epochs` of training on the same prepared data) check whether some configuration
trains bit-identically under both, and what it costs in training time.

    python benchmarks/reproducibility.py                 # the demo twice, then the probes
    python benchmarks/reproducibility.py --probes-only   # the probes alone
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ISAS = {"default": {}, "AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}
PROBE_CONFIGS = {
    "TensorFlow defaults": {},
    "TF_ENABLE_ONEDNN_OPTS=0": {"TF_ENABLE_ONEDNN_OPTS": "0"},
}


def run_stage(folder: Path, stage: str, env: dict[str, str]) -> float:
    """Run `stages/STAGE.py` in `folder`; return its wall time in seconds."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages" / f"{stage}.py")],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **env},
        capture_output=True,
        text=True,
    )
    if result.returncode:
        sys.exit(f"{stage} failed in {folder}:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def digest(path: Path) -> str:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    sha = hashlib.sha256()
    for file in files:
        sha.update(file.read_bytes())
    return sha.hexdigest()[:12]


def project(folder: Path, params: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder


def demo_runs(tmp: Path, params: dict) -> None:
    results = {}
    for isa, env in ISAS.items():
        folder = project(tmp / f"demo-{isa}", params)
        for stage in ("prepare", "train", "evaluate"):
            run_stage(folder, stage, env)
        metrics = json.loads((folder / params["paths"]["eval_metrics"]).read_text())
        results[isa] = {
            "prepared": digest(folder / params["paths"]["prepared"]),
            "model": digest(folder / params["paths"]["model"]),
            "metrics": metrics,
        }
    print("| oneDNN ISA | prepared data | model | pixel acc | mean IoU |")
    print("|---|---|---|---|---|")
    for isa, result in results.items():
        metrics = result["metrics"]
        print(
            f"| {isa} | {result['prepared']} | {result['model']} | "
            f"{metrics['pixel_accuracy']:.4f} | {metrics['mean_iou']:.4f} |"
        )
    base, avx2 = results["default"]["metrics"], results["AVX2"]["metrics"]
    print(
        f"\nAVX2 - default: pixel accuracy {avx2['pixel_accuracy'] - base['pixel_accuracy']:+.4f}, "
        f"mean IoU {avx2['mean_iou'] - base['mean_iou']:+.4f}\n"
    )


def probes(tmp: Path, params: dict, epochs: int) -> None:
    probe_params = {**params, "train": {**params["train"], "epochs": epochs, "warmup_epochs": 0}}
    prepared = project(tmp / "probe-data", probe_params)
    run_stage(prepared, "prepare", {})
    print(f"| configuration ({epochs} epochs) | model, default ISA | model, AVX2 | same | train s, default | AVX2 |")
    print("|---|---|---|---|---|---|")
    for number, (name, config_env) in enumerate(PROBE_CONFIGS.items()):
        digests, seconds = {}, {}
        for isa, isa_env in ISAS.items():
            folder = tmp / f"probe-{number}-{isa}"
            shutil.copytree(prepared, folder)
            seconds[isa] = run_stage(folder, "train", {**config_env, **isa_env})
            digests[isa] = digest(folder / params["paths"]["model"])
        same = "yes" if digests["default"] == digests["AVX2"] else "no"
        print(
            f"| {name} | {digests['default']} | {digests['AVX2']} | {same} | "
            f"{seconds['default']:.0f} | {seconds['AVX2']:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--probe-epochs", type=int, default=3)
    parser.add_argument("--probes-only", action="store_true")
    args = parser.parse_args()
    params = yaml.safe_load(args.params.read_text())
    with tempfile.TemporaryDirectory(prefix="reproducibility-") as tmp:
        if not args.probes_only:
            demo_runs(Path(tmp), params)
        probes(Path(tmp), params, args.probe_epochs)


if __name__ == "__main__":
    main()
