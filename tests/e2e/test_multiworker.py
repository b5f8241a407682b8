"""train.distribute auto with a TF_CONFIG cluster: two worker processes on localhost, each running the train
stage in its own copy of a tiny project as two machines would, train one model with MultiWorkerMirroredStrategy.
Only the chief (worker 0) writes the stage's outputs."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from segpipe.model import load_model
from segpipe.runner import OUTPUTS_UNCHANGED
from segpipe.training import weights_digest
from tests.helpers import ROOT, TINY, free_ports, merged, run_script, script_env

pytestmark = pytest.mark.slow
EPOCHS = 2
TIMEOUT = 240  # seconds for both workers: one whose peer died can wait long for it
DIGEST = re.compile(r"final weights sha256 (\w+)")
PROXIES = ("http_proxy", "https_proxy", "grpc_proxy", "all_proxy")


def worker_env(cluster: dict, index: int) -> dict[str, str]:
    """The environment of worker `index` of `cluster`: its TF_CONFIG, and no proxy (gRPC would send even 127.0.0.1
    through one named in the environment, tensorflow/tensorflow#24887)."""
    env = {key: value for key, value in script_env().items() if key.lower() not in PROXIES}
    return {**env, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}


def run_workers(projects: list[Path], logs: list[Path]) -> list[int]:
    """Run stages/train.py in each project as worker 0, 1, ... of one cluster; their exit codes. None is left
    running: on a timeout or any error every worker is killed."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(len(projects))]}
    workers: list[subprocess.Popen] = []
    try:
        for index, (project, log) in enumerate(zip(projects, logs, strict=True)):
            with log.open("w") as output:  # a file, not a pipe: a worker blocked on a full pipe would stall both
                command = [sys.executable, str(ROOT / "stages/train.py")]
                env = worker_env(cluster, index)
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
def trained(tmp_path_factory, tiny_prepared):
    """A tiny prepared project (per-pixel loss in float32, so that two half batches add up to one batch up to
    float rounding), trained once by one process (`alone`) and once by two workers (`chief`, `other`), each in
    its own copy."""
    root = tmp_path_factory.mktemp("multiworker")
    params = merged(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    params["train"].update(epochs=EPOCHS, loss_function="cross_entropy", mixed_precision="off")
    (root / "base").mkdir()
    (root / "base" / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copytree(tiny_prepared, root / "base" / params["paths"]["prepared"])
    projects = {name: shutil.copytree(root / "base", root / name) for name in ("alone", "chief", "other")}
    alone = run_script("stages/train.py", projects["alone"])
    assert alone.returncode == 0, alone.stderr[-3000:]
    before = files_under(projects["other"])
    logs = [root / "chief.log", root / "other.log"]
    codes = run_workers([projects["chief"], projects["other"]], logs)
    logs = [log.read_text() for log in logs]
    return {**projects, "base": root / "base", "codes": codes, "logs": logs, "other_before": before}


def test_both_workers_finish_training(trained):
    assert trained["codes"] == [0, 0], "\n\n".join(log[-3000:] for log in trained["logs"])


def test_the_chief_saves_the_model_and_logs_every_epoch(trained):
    chief = trained["chief"]
    assert (chief / "models" / "model.keras").is_file()
    rows = (chief / "metrics/train/plots/metrics/train/loss.tsv").read_text().splitlines()[1:]
    assert [row.split("\t")[0] for row in rows] == [str(step) for step in range(EPOCHS)]


def test_the_other_worker_writes_nothing(trained):
    assert files_under(trained["other"]) == trained["other_before"]


def test_both_workers_end_with_the_weights_the_chief_saved(trained):
    digests = [DIGEST.findall(log) for log in trained["logs"]]
    saved = weights_digest(load_model(trained["chief"] / "models" / "model.keras"))
    assert digests == [[saved], [saved]]


def test_two_workers_log_the_metrics_one_process_logs(trained):
    """Each step's batch is split between the workers (none sees the other's examples, together they see all),
    batch norm uses the whole batch's statistics and the gradients are averaged: the same training, up to the
    order of floating-point sums (differences of about 1e-5 here; a worker training on a shifted shuffle, batch
    norm per worker or a loss counted twice moved them by 0.01 to 1)."""
    alone = json.loads((trained["alone"] / "metrics/train/metrics.json").read_text())
    together = json.loads((trained["chief"] / "metrics/train/metrics.json").read_text())
    for split in ("train", "eval"):
        assert together[split] == pytest.approx(alone[split], abs=1e-3)


@pytest.fixture
def lonely_project(tmp_path):
    """A project whose train stage waits 3 s for the other workers (it fails before it reads prepared data)."""
    params = merged(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    params["train"]["cluster_timeout"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def test_a_worker_that_never_comes_up_is_named_after_train_cluster_timeout(lonely_project):
    """As the chief, which TensorFlow would keep waiting for ever (the other workers wait the same way here:
    tests/test_cluster.py)."""
    ports = free_ports(2)  # released: nobody listens on the other worker's port
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    command = [sys.executable, str(ROOT / "stages/train.py")]
    env = worker_env(cluster, 0)
    result = subprocess.run(command, cwd=lonely_project, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"ERROR segpipe: TF_CONFIG names worker 1 at 127.0.0.1:{ports[1]} (connection refused), "
        "not up within train.cluster_timeout = 3 s: start the train stage on every worker at about the same time, "
        "or correct TF_CONFIG (see docs/scaling.md)"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("stop", "code", "by"),
    [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")],
    ids=["SIGTERM", "Ctrl-C"],
)
def test_sigterm_or_ctrl_c_ends_the_wait_for_the_other_workers_at_once(lonely_project, stop, code, by):
    params = yaml.safe_load((lonely_project / "params.yaml").read_text())
    params["train"]["cluster_timeout"] = 600
    (lonely_project / "params.yaml").write_text(yaml.safe_dump(params))
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    log = lonely_project / "stderr.txt"
    with log.open("w") as stderr:
        command = [sys.executable, str(ROOT / "stages/train.py")]
        worker = subprocess.Popen(command, cwd=lonely_project, env=worker_env(cluster, 0), stderr=stderr)
    try:
        deadline = time.monotonic() + 120
        while "waiting up to 600 s" not in log.read_text():
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        worker.send_signal(stop)
        sent = time.monotonic()
        assert worker.wait(timeout=30) == code
        assert time.monotonic() - sent < 10
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    output = log.read_text()
    assert output.strip().splitlines()[-1] == f"ERROR segpipe: interrupted by {by}: {OUTPUTS_UNCHANGED}"
    assert "Traceback" not in output


def test_sigterm_stops_a_worker_mid_training_and_the_other_in_one_line(trained, tmp_path):
    """TensorFlow takes SIGTERM over when the cluster starts (for its preemption notices): given back, it stops
    the chief at once; the other worker's collectives fail, which it reports in one line too."""
    projects = [shutil.copytree(trained["base"], tmp_path / name) for name in ("chief", "other")]
    for project in projects:
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["train"]["epochs"] = 30
        (project / "params.yaml").write_text(yaml.safe_dump(params))
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    logs = [tmp_path / "chief.log", tmp_path / "other.log"]
    workers = []
    try:
        for index, (project, log) in enumerate(zip(projects, logs, strict=True)):
            with log.open("w") as output:
                command = [sys.executable, str(ROOT / "stages/train.py")]
                env = worker_env(cluster, index)
                workers.append(subprocess.Popen(command, cwd=project, env=env, stdout=output, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + TIMEOUT
        while "Epoch 2/30" not in logs[0].read_text():
            assert time.monotonic() < deadline and all(w.poll() is None for w in workers), logs[0].read_text()[-3000:]
            time.sleep(0.1)
        workers[0].send_signal(signal.SIGTERM)
        codes = [worker.wait(timeout=60) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    chief, other = (log.read_text() for log in logs)
    assert codes == [143, 1], other[-3000:]
    # The epoch: the second, or the next if the second ended before the signal landed.
    assert re.fullmatch(
        r"ERROR segpipe: interrupted by SIGTERM: training stopped in epoch [23] of 30; this run keeps no backup: "
        r"rerunning starts at epoch 1",
        chief.strip().splitlines()[-1],
    )
    assert re.fullmatch(
        r"ERROR segpipe: training stopped in epoch [23] of 30: another worker of the TF_CONFIG cluster stopped or "
        r"cannot be reached \(Collective ops is aborted by: .+\); start the train stage again on every worker "
        r"\(a run over several workers keeps no backup: it starts at epoch 1\)",
        other.strip().splitlines()[-1],
    )
    assert "Traceback" not in chief + other


@pytest.mark.slow
def test_two_workers_fine_tune_a_backbone_to_the_weights_the_chief_saved(tmp_path):
    # Epoch 1 with the encoder frozen, epoch 2 with it trained: the step is traced again on both workers.
    params = merged(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    params["model"].update(encoder="mobilenet_v2")
    params["train"].update(epochs=2, freeze_encoder_epochs=1, loss_function="cross_entropy", mixed_precision="off")
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "params.yaml").write_text(yaml.safe_dump(params))
    assert run_script("stages/prepare.py", tmp_path / "base").returncode == 0
    projects = [shutil.copytree(tmp_path / "base", tmp_path / name) for name in ("chief", "other")]
    logs = [tmp_path / "chief.log", tmp_path / "other.log"]
    codes = run_workers(projects, logs)
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], "\n\n".join(text[-3000:] for text in texts)
    saved = weights_digest(load_model(projects[0] / "models" / "model.keras"))
    assert [DIGEST.findall(text) for text in texts] == [[saved], [saved]]
    assert all("epoch 2: encoder trained from now on" in text for text in texts)
