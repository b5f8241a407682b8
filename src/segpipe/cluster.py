"""A `TF_CONFIG` cluster: read and checked, and a bounded wait until every other worker is up.

TensorFlow's own wait (inside `MultiWorkerMirroredStrategy()`) has no bound for the coordination
leader (worker 0 waits for ever for a worker that never starts), holds Python's lock throughout, so
Ctrl-C cannot stop it, and installs a SIGTERM handler of its own (for its preemption notices), so
`kill` does not either. The wait here runs before it, in Python: bounded, and stopped by either.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

from segpipe.errors import ConfigError, PipelineError

log = logging.getLogger(__name__)

EXAMPLE = '{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]}, "task": {"type": "worker", "index": 0}}'
SEE = "see docs/scaling.md"
COLLECTIVE_JOBS = ("chief", "worker")  # the tasks that train together; an evaluator runs on its own
PROBE_INTERVAL = 0.5  # seconds between rounds of connection attempts


@dataclass(frozen=True)
class Cluster:
    """The tasks of a `TF_CONFIG` cluster (`worker 1` → `host:port`), and which one this process is."""

    addresses: dict[str, str]
    me: str

    def others(self) -> dict[str, str]:
        """The tasks this one trains with, by name, with their addresses."""
        return {task: address for task, address in self.addresses.items() if task != self.me}


def cluster_from_environment() -> Cluster | None:
    """The cluster `TF_CONFIG` names, or None when it is unset or names none; a malformed one is a `ConfigError`."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({error}): set it to an object like {EXAMPLE}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"TF_CONFIG must be a JSON object like {EXAMPLE}, got {_kind(config)} ({SEE})")
    if not config.get("cluster"):
        return None
    addresses = _addresses(config["cluster"])
    task = config.get("task")
    if not isinstance(task, dict) or f"{task.get('type')} {task.get('index')}" not in addresses:
        raise ConfigError(
            f"TF_CONFIG's task must name this process's place in its cluster ({', '.join(addresses)}), "
            f'like {{"type": "worker", "index": 0}}; got {json.dumps(task)} ({SEE})'
        )
    return Cluster(addresses, me=f"{task['type']} {task['index']}")


def _addresses(cluster: object) -> dict[str, str]:
    """`{"worker": ["h:1", "h:2"]}` (or `{"worker": {"0": "h:1"}}`) as `{"worker 0": "h:1", "worker 1": "h:2"}`."""
    wrong = ConfigError(
        f'TF_CONFIG\'s cluster must map each job to its list of "host:port" addresses, like {EXAMPLE}; '
        f"got {json.dumps(cluster)} ({SEE})"
    )
    if not isinstance(cluster, dict):
        raise wrong
    addresses = {}
    for job, tasks in cluster.items():
        if isinstance(tasks, list):
            tasks = dict(enumerate(tasks))
        if not isinstance(tasks, dict) or not all(_is_address(address) for address in tasks.values()):
            raise wrong
        addresses.update({f"{job} {index}": address for index, address in tasks.items()})
    return addresses


def _is_address(address: object) -> bool:
    if not isinstance(address, str) or ":" not in address:
        return False
    host, port = address.rsplit(":", 1)
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def wait_for_the_others(cluster: Cluster, timeout: float) -> None:
    """Return once every other training task of `cluster` accepts connections at its address.

    Raises a `PipelineError` naming those that did not within `timeout` seconds. Meanwhile this
    process answers on its own port, so that the others' wait ends too; TensorFlow's server takes
    the port over once this returns (any other worker still probing then reaches that server).
    """
    missing = {task: address for task, address in cluster.others().items() if task.split()[0] in COLLECTIVE_JOBS}
    if cluster.me.split()[0] not in COLLECTIVE_JOBS or not missing:
        return
    deadline = time.monotonic() + timeout
    log.info("waiting up to %g s (train.cluster_timeout) for %s", timeout, ", ".join(_named(missing)))
    with _answering(cluster) as listener:
        while True:
            reasons = {task: _unreachable(address) for task, address in missing.items()}
            missing = {task: address for task, address in missing.items() if reasons[task]}
            _drain(listener)
            if not missing:
                log.info("every worker of the cluster is up")
                return
            if time.monotonic() >= deadline:
                absent = [f"{name} ({reasons[task]})" for task, name in zip(missing, _named(missing), strict=True)]
                raise PipelineError(
                    f"TF_CONFIG names {' and '.join(absent)}, not up within train.cluster_timeout = {timeout:g} s: "
                    f"start the train stage on every worker at about the same time, or correct TF_CONFIG ({SEE})"
                )
            time.sleep(PROBE_INTERVAL)


def _named(tasks: dict[str, str]) -> list[str]:
    return [f"{task} at {address}" for task, address in tasks.items()]


@contextlib.contextmanager
def _answering(cluster: Cluster) -> Iterator[socket.socket]:
    """A socket listening on this task's port, on every interface, IPv4 and IPv6, as TensorFlow's server will."""
    port = int(cluster.addresses[cluster.me].rsplit(":", 1)[1])
    try:
        listener = socket.create_server(("", port), family=socket.AF_INET6, reuse_port=False, dualstack_ipv6=True)
    except (OSError, ValueError) as error:  # ValueError: this system has no dual-stack sockets
        if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
            raise _port_unusable(cluster, port, error) from None
        try:
            listener = socket.create_server(("", port))  # IPv4 only
        except OSError as error:
            raise _port_unusable(cluster, port, error) from None
    listener.setblocking(False)
    try:
        yield listener
    finally:
        listener.close()


def _port_unusable(cluster: Cluster, port: int, error: OSError) -> PipelineError:
    reason = os.strerror(error.errno) if error.errno else str(error)  # create_server appends the address
    return PipelineError(
        f"TF_CONFIG makes this process {cluster.me} at {cluster.addresses[cluster.me]}, but port {port} "
        f"cannot be used here ({reason}): stop what holds it, or give this worker another port"
    )


def _drain(listener: socket.socket) -> None:
    """Close the connections the other workers' probes opened (their handshake is all they need)."""
    with contextlib.suppress(BlockingIOError):
        while True:
            listener.accept()[0].close()


def _unreachable(address: str) -> str | None:
    """Why nothing accepts a connection at `address` now, or None if something does."""
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return "no answer"
    except socket.gaierror:
        return "unknown host"
    except OSError as error:
        return error.strerror or str(error)
    return None


def _kind(value: object) -> str:
    kinds = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)
