"""train.distribute auto with a TF_CONFIG cluster: two worker processes on localhost, each running the train
stage in its own copy of a tiny project as two machines would, train one model with MultiWorkerMirroredStrategy.
Only the chief (worker 0) writes the stage's outputs."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from segpipe.distribution import check_every_replica_gets_examples
from segpipe.errors import ConfigError
from segpipe.model import load_model
from segpipe.training import weights_digest
from tests.helpers import ROOT, TINY, merged, run_script, script_env, write_tiny_prepared

EPOCHS = 2
TIMEOUT = 240  # seconds for both workers: one whose peer died can wait long for it
DIGEST = re.compile(r"final weights sha256 (\w+)")
PROXIES = ("http_proxy", "https_proxy", "grpc_proxy", "all_proxy")


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 (chosen by the OS, released just before the workers bind them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def run_workers(projects: list[Path], logs: list[Path]) -> list[int]:
    """Run stages/train.py in each project as worker 0, 1, ... of one cluster; their exit codes. None is left
    running: on a timeout or any error every worker is killed."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(len(projects))]}
    # gRPC would send even 127.0.0.1 through a proxy named in the environment (tensorflow/tensorflow#24887)
    env = {key: value for key, value in script_env().items() if key.lower() not in PROXIES}
    workers: list[subprocess.Popen] = []
    try:
        for index, (project, log) in enumerate(zip(projects, logs, strict=True)):
            task = {"type": "worker", "index": index}
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": task})
            with log.open("w") as output:  # a file, not a pipe: a worker blocked on a full pipe would stall both
                command = [sys.executable, str(ROOT / "stages/train.py")]
                workers.append(subprocess.Popen(command, cwd=project, env=env, stdout=output, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + TIMEOUT
        return [worker.wait(timeout=max(deadline - time.monotonic(), 1)) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def files_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny prepared project (per-pixel loss in float32, so that two half batches add up to one batch up to
    float rounding), trained once by one process (`alone`) and once by two workers (`chief`, `other`), each in
    its own copy."""
    root = tmp_path_factory.mktemp("multiworker")
    params = merged(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    params["train"].update(epochs=EPOCHS, loss="cross_entropy", mixed_precision="off")
    (root / "base").mkdir()
    (root / "base" / "params.yaml").write_text(yaml.safe_dump(params))
    assert run_script("stages/prepare.py", root / "base").returncode == 0
    projects = {name: shutil.copytree(root / "base", root / name) for name in ("alone", "chief", "other")}
    alone = run_script("stages/train.py", projects["alone"])
    assert alone.returncode == 0, alone.stderr[-3000:]
    before = files_under(projects["other"])
    logs = [root / "chief.log", root / "other.log"]
    codes = run_workers([projects["chief"], projects["other"]], logs)
    return {**projects, "codes": codes, "logs": [log.read_text() for log in logs], "other_before": before}


@pytest.mark.slow
def test_both_workers_finish_training(trained):
    assert trained["codes"] == [0, 0], "\n\n".join(log[-3000:] for log in trained["logs"])


@pytest.mark.slow
def test_the_chief_saves_the_model_and_logs_every_epoch(trained):
    chief = trained["chief"]
    assert (chief / "models" / "model.keras").is_file()
    rows = (chief / "metrics/train/plots/metrics/train/loss.tsv").read_text().splitlines()[1:]
    assert [row.split("\t")[0] for row in rows] == [str(step) for step in range(EPOCHS)]


@pytest.mark.slow
def test_the_other_worker_writes_nothing(trained):
    assert files_under(trained["other"]) == trained["other_before"]


@pytest.mark.slow
def test_both_workers_end_with_the_weights_the_chief_saved(trained):
    digests = [DIGEST.findall(log) for log in trained["logs"]]
    saved = weights_digest(load_model(trained["chief"] / "models" / "model.keras"))
    assert digests == [[saved], [saved]]


@pytest.mark.slow
def test_two_workers_log_the_metrics_one_process_logs(trained):
    """Each step's batch is split between the workers (none sees the other's examples, together they see all),
    batch norm uses the whole batch's statistics and the gradients are averaged: the same training, up to the
    order of floating-point sums (differences of about 1e-5 here; a worker training on a shifted shuffle, batch
    norm per worker or a loss counted twice moved them by 0.01 to 1)."""
    alone = json.loads((trained["alone"] / "metrics/train/metrics.json").read_text())
    together = json.loads((trained["chief"] / "metrics/train/metrics.json").read_text())
    for split in ("train", "eval"):
        assert together[split] == pytest.approx(alone[split], abs=1e-3)


def test_a_batch_size_that_leaves_a_replica_without_examples_is_refused(tmp_path):
    prepared = write_tiny_prepared(tmp_path, per_split=9)  # 9 = 8 + 1: the last batch of 8 has one example
    check_every_replica_gets_examples(prepared, batch_size=3, replicas=2)
    with pytest.raises(ConfigError, match=r"train split \(9 examples\) ends with a batch of 1"):
        check_every_replica_gets_examples(prepared, batch_size=8, replicas=2)
