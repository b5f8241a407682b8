"""TF_CONFIG read and checked, and the bounded wait of each worker for the others (docs/scaling.md); the
two-process runs are in e2e/test_multiworker.py."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from segpipe.cluster import EXAMPLE, Cluster, cluster_from_environment, wait_for_the_others
from segpipe.errors import ConfigError, PipelineError
from tests.helpers import free_ports

SEE = "(see docs/scaling.md)"


@pytest.mark.parametrize("value", [None, "", "{}", '{"cluster": {}}'])
def test_no_cluster_means_one_process(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", value)
    assert cluster_from_environment() is None


def test_the_cluster_and_this_process_s_place_in_it(monkeypatch):
    config = {"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    cluster = cluster_from_environment()
    assert cluster == Cluster({"chief 0": "a:1", "worker 0": "b:2", "worker 1": "c:3"}, me="worker 1")
    assert cluster.others() == {"chief 0": "a:1", "worker 0": "b:2"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "{'cluster': {}}",
            "TF_CONFIG is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
            f": set it to an object like {EXAMPLE}",
        ),
        ("[1, 2]", f"TF_CONFIG must be a JSON object like {EXAMPLE}, got a list {SEE}"),
        ('"worker"', f"TF_CONFIG must be a JSON object like {EXAMPLE}, got a string {SEE}"),
        (
            '{"cluster": {"worker": ["10.0.0.1"]}}',
            'TF_CONFIG\'s cluster must map each job to its list of "host:port" addresses, like '
            f'{EXAMPLE}; got {{"worker": ["10.0.0.1"]}} {SEE}',
        ),
        (
            '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
            "TF_CONFIG's task must name this process's place in its cluster (worker 0, worker 1), like "
            f'{{"type": "worker", "index": 0}}; got {{"type": "worker", "index": 2}} {SEE}',
        ),
    ],
    ids=["not-json", "a-list", "a-string", "no-port", "task-outside"],
)
def test_a_malformed_tf_config_is_one_line_saying_what_it_should_be(monkeypatch, value, message):
    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ConfigError) as error:
        cluster_from_environment()
    assert str(error.value) == message


def test_a_worker_nobody_runs_is_named_once_the_timeout_is_over():
    mine, theirs = free_ports(2)
    cluster = Cluster({"worker 0": f"127.0.0.1:{mine}", "worker 1": f"127.0.0.1:{theirs}"}, me="worker 0")
    with pytest.raises(PipelineError) as error:
        wait_for_the_others(cluster, timeout=0.5)
    assert str(error.value) == (
        f"TF_CONFIG names worker 1 at 127.0.0.1:{theirs} (connection refused), not up within train.cluster_timeout "
        f"= 0.5 s: start the train stage on every worker at about the same time, or correct TF_CONFIG {SEE}"
    )


def test_workers_waiting_for_each_other_all_go_on():
    """Three workers starting at once; each, once its wait is over, listens on its port as TensorFlow's server
    would, until all are done."""
    addresses = {f"worker {index}": f"127.0.0.1:{port}" for index, port in enumerate(free_ports(3))}
    outcomes: dict[str, object] = {}
    done = threading.Event()

    def worker(me: str) -> None:
        try:
            wait_for_the_others(Cluster(addresses, me), timeout=20)
        except PipelineError as error:
            outcomes[me] = error
            return
        outcomes[me] = "up"
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("", int(addresses[me].rsplit(":", 1)[1])))
            server.listen()
            done.wait(30)

    threads = [threading.Thread(target=worker, args=(me,)) for me in addresses]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 25
    while len(outcomes) < len(addresses) and time.monotonic() < deadline:
        time.sleep(0.05)
    done.set()
    for thread in threads:
        thread.join()
    assert outcomes == dict.fromkeys(addresses, "up")


def test_a_port_held_by_another_program_is_named():
    with socket.socket() as holder:
        holder.bind(("", 0))
        holder.listen()
        port = holder.getsockname()[1]
        cluster = Cluster({"worker 0": f"127.0.0.1:{port}", "worker 1": "127.0.0.1:1"}, me="worker 0")
        with pytest.raises(PipelineError) as error:
            wait_for_the_others(cluster, timeout=1)
    assert str(error.value) == (
        f"TF_CONFIG makes this process worker 0 at 127.0.0.1:{port}, but port {port} cannot be used here "
        "(Address already in use): stop what holds it, or give this worker another port"
    )


def test_a_cluster_of_one_waits_for_nobody(caplog):
    wait_for_the_others(Cluster({"worker 0": "127.0.0.1:1"}, me="worker 0"), timeout=1)
    assert caplog.records == []
