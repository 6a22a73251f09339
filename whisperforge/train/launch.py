"""Start the data-parallel processes of one training job with torchrun's elastic agent.

On one machine (`train.gpus: N`) one agent starts N processes (`--standalone`). Across nodes
(`train.nodes: M`, under SLURM) the finetune job holds M nodes (rules/train.smk gives SLURM
`nodes`, `tasks` and `mpi`, so the executor runs this step once, on the allocation's first node,
without wrapping it in `srun`); this step then starts one `srun` task per node, each task one
agent, and the agents meet at a c10d store on this node: the pattern of torchrun's and accelerate's
SLURM examples. Every process runs `python -m whisperforge.train.finetune JOB.json`; the Trainer
takes its rank from the variables torchrun sets, and only global rank 0 writes outputs.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.files import write_json

log = logging.getLogger(__name__)

RENDEZVOUS_PORT = 29400  # torchrun's default for the c10d backend


@dataclass(frozen=True)
class Rendezvous:
    """Where the agents of a multi-node run meet."""

    nodes: int
    endpoint: str  # host:port of the c10d store, on the first node
    run_id: str  # the same for every agent of one run (the SLURM job id)


def agent_command(job_file: Path, procs_per_node: int, rendezvous: Rendezvous | None) -> list[str]:
    """One torchrun agent: alone on this machine, or one of `rendezvous.nodes`."""
    command = [sys.executable, "-m", "torch.distributed.run"]
    if rendezvous is None:
        command.append("--standalone")
    else:
        command += [
            f"--nnodes={rendezvous.nodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rendezvous.endpoint}",
            f"--rdzv-id={rendezvous.run_id}",
            # A lost node ends the run (no elastic restart from step 0); the rerun of the
            # step resumes from the last complete checkpoint instead.
            "--max-restarts=0",
        ]
    return [
        *command,
        f"--nproc-per-node={procs_per_node}",
        "-m",
        "whisperforge.train.finetune",
        str(job_file),
    ]


def srun_command(nodes: int, agent: list[str]) -> list[str]:
    """One task per node of the job's allocation, each running `agent`; one failed task ends
    the others (--kill-on-bad-exit), so a lost node ends the step instead of hanging it."""
    return [
        "srun",
        f"--nodes={nodes}",
        f"--ntasks={nodes}",
        "--ntasks-per-node=1",
        "--kill-on-bad-exit=1",
        *agent,
    ]


def job_nodes(job_id: str, environ: Mapping[str, str]) -> int | None:
    """How many nodes SLURM job `job_id` holds: from the job's variables, else from `squeue`
    (the Snakemake executor passes a step only SLURM_JOB_ID), else None (not known)."""
    count = environ.get("SLURM_JOB_NUM_NODES") or environ.get("SLURM_NNODES")
    if count is None:
        try:
            count = subprocess.run(
                ["squeue", "--noheader", f"--jobs={job_id}", "--format=%D"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    return int(count) if count.isdigit() else None


def slurm_rendezvous(nodes: int, environ: Mapping[str, str] | None = None) -> Rendezvous:
    """The rendezvous of this SLURM job's agents; a clear error outside a big enough job."""
    environ = os.environ if environ is None else environ
    job_id = environ.get("SLURM_JOB_ID")
    if not job_id:
        raise WhisperforgeError(
            f"config train.nodes: {nodes} runs as one SLURM job of {nodes} nodes "
            "(snakemake --workflow-profile profiles/slurm); this step is not in a SLURM job"
        )
    held = job_nodes(job_id, environ)
    if held is not None and held < nodes:
        raise WhisperforgeError(
            f"config train.nodes: {nodes}, but SLURM job {job_id} holds {held} node(s)"
        )
    # The step runs on the allocation's first node: its c10d store is the meeting point.
    return Rendezvous(nodes, f"{socket.gethostname()}:{RENDEZVOUS_PORT}", job_id)


def launch(job: dict[str, Any], procs_per_node: int, nodes: int) -> None:
    """Train `job` with `procs_per_node` processes on each of `nodes` nodes; returns when the
    run has ended, its outputs written by global rank 0."""
    job_file = Path(job["checkpoints"]) / "whisperforge-job.json"
    write_json(job_file, job)
    package_root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": str(job["threads"]),
    }
    if nodes == 1:
        command = agent_command(job_file, procs_per_node, None)
    else:
        agent = agent_command(job_file, procs_per_node, slurm_rendezvous(nodes))
        command = srun_command(nodes, agent)
    log.info(
        "training with %d processes (%d node(s) x %d): %s",
        nodes * procs_per_node,
        nodes,
        procs_per_node,
        " ".join(command),
    )
    code = subprocess.run(command, env=env, check=False).returncode
    if code != 0:
        key = f"train.nodes: {nodes}" if nodes > 1 else f"train.gpus: {procs_per_node}"
        raise WhisperforgeError(
            f"config {key}: a training process failed (exit {code}); its error is above in "
            "this log, and a rerun resumes from the last complete checkpoint"
        )
