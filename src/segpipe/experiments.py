"""`segpipe exps` (`make exps`): DVC's experiment table cut down to what a sweep is compared by.

`dvc exp show` lists every param (paths included), every metric and the hash of every file dependency:
over 100 columns here, squeezed into a row of "…" in a terminal. This runs the same command keeping the
params that differ between the experiments, and the test split's scores and the validation ones (of the
last epoch), best mean IoU first: a sweep of one or two params fits in 120 columns.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

from segpipe.dvc_command import dvc_command

# Columns left out, as regular expressions DVC matches at the start of each column's name.
DROP = (
    r"Created$|Executor$",  # when each ran, and where (a queue's worker or the workspace)
    r"(src|stages|data|models|metrics|plots)/",  # file dependencies: their hashes
    r"paths\.",  # where outputs go: locations, not tunables
    r"(iou|dice)\.",  # the per-class test scores (metrics/evaluate.json)
    r"foreground_iou$",  # for comparing with published figures (dvc metrics show has it), not between runs
    r"pixels$",  # the test split's pixel count
    r"step$",  # DVCLive's last epoch number
    r"train\.(loss|pixel_accuracy|mean_iou)$",  # DVCLive's train-split metrics, on augmented batches
    r"eval\.pixel_accuracy$",  # the validation split's accuracy (its mean IoU and loss stay)
)
SORT_BY = "metrics/evaluate.json:mean_iou"


def exp_show_options() -> list[str]:
    """The options of `dvc exp show` that make the table."""
    drops = [f"--drop={pattern}" for pattern in DROP]
    return ["--no-pager", "--only-changed", "--sort-by", SORT_BY, "--sort-order", "desc", *drops]


def show_experiments() -> int:
    """Print the command (on stderr), then the table (DVC writes it); return DVC's exit status."""
    options = exp_show_options()
    print("dvc exp show " + " ".join(shlex.quote(option) for option in options), file=sys.stderr, flush=True)
    return subprocess.run(dvc_command("exp", "show", *options), check=False).returncode
