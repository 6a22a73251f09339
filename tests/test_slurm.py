"""profiles/slurm against a real two-node SLURM on this machine (tests/slurm_cluster.sh: two
slurmd on this host, node1 and node2).

A slice of the demo DAG (data -> tiny base model -> pretrain_base -> CT2 export -> transcribe ->
score) runs once through SLURM with `--workflow-profile profiles/slurm` and once locally, in two
private copies of the workflow, at the same time (the SLURM run mostly waits on the queue). The
tests check that every job was a SLURM job, that the GPU rules got a (pretend) GPU from SLURM, and
that both runs produced the same files. Then a `train.nodes: 2` fine-tune runs as one job on both
nodes, one torchrun agent on each.

No skipping: if SLURM cannot be installed or started, the tests fail with the reason.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, copy_workflow, jobs_planned

pytestmark = pytest.mark.slurm

SCRIPT = ROOT / "tests" / "slurm_cluster.sh"
STATE = Path(os.environ.get("WHISPERFORGE_SLURM_DIR", "/tmp/whisperforge-slurm"))
TARGET = "results/eval/base/test/cer.json"
CHEAP = {
    "model": {
        "tiny": {"pretrain": {"max_steps": 4, "eval_steps": 2, "save_steps": 2, "logging_steps": 1}}
    },
}
# The demo, its base pretrained in the DAG (profiles/demo/pretrain.yaml), briefly.
CONFIG_ARGS = [
    "--configfile",
    "config.yaml",
    "profiles/demo/demo.yaml",
    "profiles/demo/pretrain.yaml",
    "cheap.yaml",
]
GPU_RULES = {"pretrain_base", "transcribe"}  # the rules of this slice with `resources: gpu=1`
RUN_LIMIT_S = 480  # each run; SIGINT (not SIGTERM) so Snakemake cancels its SLURM jobs


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["SLURM_CONF"] = str(STATE / "slurm.conf")
    # Whatever CUDA_VISIBLE_DEVICES a job sees must come from SLURM, not from this process.
    env.pop("CUDA_VISIBLE_DEVICES", None)
    # Both runs share two busy cores: spinning OpenMP workers (CTranslate2, torch) would multiply
    # their CPU time (a 1 s CT2 decode took 6-18 s). Waiting threads sleep instead; results are
    # unchanged (same threads, same order of operations).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def _snakemake(workdir: Path, *args: str) -> subprocess.Popen:
    cmd = [
        "timeout",
        "-s",
        "INT",
        "-k",
        "60",
        str(RUN_LIMIT_S),
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "2",
        *args,
    ]
    return subprocess.Popen(
        cmd, cwd=workdir, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen, what: str) -> str:
    out, err = proc.communicate(timeout=RUN_LIMIT_S + 120)
    if proc.returncode != 0:
        reason = "timed out (SIGINT)" if proc.returncode == 124 else f"rc {proc.returncode}"
        pytest.fail(f"{what} failed, {reason}:\n{out[-2000:]}\n{err[-8000:]}")
    return err


def _scontrol_jobs() -> list[dict[str, str]]:
    out = subprocess.run(
        ["scontrol", "show", "job", "--oneliner"],
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
    ).stdout
    jobs = []
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            jobs.append(fields)
    return jobs


def _rule_of(comment: str) -> str:
    """The plugin's job comment: rule_<name> or rule_<name>_wildcards_<values>."""
    return comment.removeprefix("rule_").split("_wildcards_")[0]


@pytest.fixture(scope="module")
def cluster():
    was_running = (
        subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True, env=_env()).returncode
        == 0
    )
    start = subprocess.run(
        ["bash", str(SCRIPT), "start"], capture_output=True, text=True, env=_env(), timeout=900
    )
    try:
        if start.returncode != 0:
            pytest.fail(f"the test SLURM cluster did not start:\n{start.stdout}{start.stderr}")
        yield STATE
    finally:
        if not was_running:  # leave a cluster the user started running
            subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, env=_env())


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """The slice run through SLURM and locally; returns both workdirs and the SLURM run's info."""
    workdirs = {}
    for name in ("slurm", "local"):
        workdir = copy_workflow(tmp_path_factory.mktemp(name))
        (workdir / "cheap.yaml").write_text(yaml.safe_dump(CHEAP))
        workdirs[name] = workdir
    planned = jobs_planned(workdirs["local"], TARGET, *CONFIG_ARGS)
    t0 = time.monotonic()
    slurm = _snakemake(
        workdirs["slurm"],
        TARGET,
        *CONFIG_ARGS,
        "--workflow-profile",
        "profiles/slurm",
        # A small test cluster: check the queue often, keep every job's SLURM log to inspect.
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--slurm-keep-successful-logs",
    )
    local = _snakemake(workdirs["local"], TARGET, *CONFIG_ARGS)
    try:
        local_err = _finish(local, "the local run")
        slurm_err = _finish(slurm, "the SLURM run")
    finally:
        for proc in (local, slurm):  # one failed: stop the other (SIGINT cancels SLURM jobs)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.communicate(timeout=90)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
    match = re.search(r"SLURM run ID: (\S+)", slurm_err)
    assert match, f"no 'SLURM run ID' in the SLURM run's log:\n{slurm_err[-3000:]}"
    return {
        **workdirs,
        "planned": planned,
        "run_id": match.group(1),
        "slurm_log": slurm_err,
        "local_log": local_err,
        "seconds": time.monotonic() - t0,
    }


@pytest.fixture(scope="module")
def slurm_jobs(runs):
    return [job for job in _scontrol_jobs() if job.get("JobName") == runs["run_id"]]


def test_slurm_ran_every_job_of_the_slice(runs, slurm_jobs):
    expected_rules = {
        "extract_aishell",
        "build_manifests",
        "build_base_domain_manifests",
        "build_tiny_whisper",
        "pretrain_base",
        "export_ct2",
        "transcribe",
        "score",
    }
    assert set(runs["planned"]) == expected_rules, runs["planned"]
    by_rule = collections.Counter(_rule_of(job["Comment"]) for job in slurm_jobs)
    assert dict(by_rule) == runs["planned"], (by_rule, runs["planned"])
    assert {job["JobState"] for job in slurm_jobs} == {"COMPLETED"}, slurm_jobs
    assert {job["Partition"] for job in slurm_jobs} == {"main"}
    # slurmctld itself started each of them on a node, from its main or backfill scheduler ...
    ctld_log = (STATE / "slurmctld.log").read_text(errors="replace")
    for job in slurm_jobs:
        started = (
            rf"sched: Allocate JobId={job['JobId']} NodeList=node[12]\b"
            rf"|sched/backfill: _start_job: Started JobId={job['JobId']} in \S+ on node[12]\b"
        )
        assert re.search(started, ctld_log), job
    # ... and each wrote its SLURM log (kept with --slurm-keep-successful-logs) per rule.
    slurm_logs = runs["slurm"] / ".snakemake/slurm_logs"
    for job in slurm_jobs:
        logs = list(slurm_logs.glob(f"rule_{_rule_of(job['Comment'])}/**/{job['JobId']}.log"))
        assert logs, f"no SLURM log for job {job['JobId']} ({job['Comment']})"
        assert f"rule {_rule_of(job['Comment'])}:" in logs[0].read_text(errors="replace")


def test_slurm_gpu_rules_got_a_gpu(runs, slurm_jobs):
    for job in slurm_jobs:
        rule = _rule_of(job["Comment"])
        gres = job.get("TresPerJob", "") + job.get("TresPerNode", "")
        if rule in GPU_RULES:
            assert "gpu:1" in gres, f"{rule}: SLURM gave no GPU: {job}"
        else:
            assert "gpu" not in gres, f"{rule} is not a GPU rule but got {gres}"
    # SLURM set CUDA_VISIBLE_DEVICES in the GPU jobs (this process had none), and the step
    # scripts kept it (whisperforge.train.gpu.claim_gpu).
    for log in ("logs/train/pretrain_base.log", "logs/eval/transcribe_base_test.log"):
        text = (runs["slurm"] / log).read_text(errors="replace")
        assert "CUDA_VISIBLE_DEVICES=0 set by the caller" in text, f"{log}:\n{text[:2000]}"


def test_slurm_outputs_match_a_local_run(runs):
    slurm, local = runs["slurm"], runs["local"]
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl", "stats.json"):
        path = f"results/manifests/{name}"
        assert (slurm / path).read_bytes() == (local / path).read_bytes(), path
    # Training on the CPU with the same seed and threads is deterministic: same weights ...
    weights = "results/models/base/hf/model.safetensors"
    assert (slurm / weights).read_bytes() == (local / weights).read_bytes(), weights

    # ... hence the same hypotheses, byte for byte (no timings in them), and the same CER.
    hyp = "results/eval/base/test/hyp.jsonl"
    assert (slurm / hyp).read_bytes() == (local / hyp).read_bytes(), hyp

    def hyps(workdir):
        lines = (workdir / hyp).read_text().splitlines()
        return [(r["id"], r["hyp"]) for r in map(json.loads, lines)]

    assert len(hyps(slurm)) == 14
    cer = [json.loads((w / TARGET).read_text())["cer"] for w in (slurm, local)]
    assert cer[0] == cer[1]
    print(f"SLURM and local runs together: {runs['seconds']:.0f} s")


def test_a_two_node_run_is_one_job_on_both_nodes_and_doctor_knows_the_partition(runs):
    """`train.nodes: 2` through profiles/slurm: SLURM gives the finetune job both nodes, one task
    each (the step's own srun, not the plugin's), and each runs a torchrun agent; doctor checks
    the partition with the real sinfo."""
    workdir = runs["slurm"]
    wide = {
        "runs": {"wide": {"nodes": 2, "device": "cpu", "max_steps": 2, "eval_steps": 2}},
        # Unguarded: the forgetting guard across processes is test_multigpu.py's.
        "eval": {"general": None},
    }
    (workdir / "wide.yaml").write_text(yaml.safe_dump(wide))
    earlier = {j["JobId"] for j in _scontrol_jobs()}  # scontrol keeps ended jobs a while
    _finish(
        _snakemake(
            workdir,
            "results/models/wide/adapter",
            *CONFIG_ARGS,
            "wide.yaml",
            "--workflow-profile",
            "profiles/slurm",
            "--slurm-init-seconds-before-status-checks",
            "2",
            # The profile asks 32 GB for a fine-tune; each test node has the machine's RAM less
            # a margin.
            "--set-resources",
            "finetune:mem_mb=4000",
        ),
        "the two-node run",
    )
    [job] = [
        j
        for j in _scontrol_jobs()
        if j["JobId"] not in earlier and _rule_of(j.get("Comment", "")) == "finetune"
    ]
    assert job["JobState"] == "COMPLETED", job
    assert job["NumNodes"] == "2" and job["NumTasks"] == "2", job
    assert job["NodeList"] in ("node[1-2]", "node1,node2"), job
    # Each node's slurmd launched one task of the step's srun (step 0: the plugin added none).
    for node in ("node1", "node2"):
        slurmd_log = (STATE / f"slurmd-{node}.log").read_text(errors="replace")
        assert f"launch task StepId={job['JobId']}.0 " in slurmd_log, node
    log = (workdir / "logs/train/finetune_wide.log").read_text(errors="replace")
    assert "--nnodes=2 --rdzv-backend=c10d" in log and f"--rdzv-id={job['JobId']}" in log, log
    summary = workdir / "results/models/wide/adapter/training_summary.json"
    summary = json.loads(summary.read_text())
    assert (summary["processes"], summary["global_step"]) == (2, 2), summary

    (workdir / "wider.yaml").write_text(yaml.safe_dump({"runs": {"wide": {"nodes": 3}}}))
    doctor = subprocess.run(
        [sys.executable, "-m", "whisperforge", "doctor", *CONFIG_ARGS, "wide.yaml", "wider.yaml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**_env(), "PYTHONPATH": str(workdir)},
        timeout=300,
    )
    assert "FAIL  SLURM: runs.wide: train.nodes needs 3 nodes; partition main has 2" in (
        doctor.stdout
    ), doctor.stdout + doctor.stderr
