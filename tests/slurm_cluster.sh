#!/usr/bin/env bash
# A throwaway two-node SLURM cluster on this machine, to try profiles/slurm and to test it
# (tests/test_slurm.py). Debian/Ubuntu, run as root; no systemd needed.
#
#   tests/slurm_cluster.sh start    # install slurm-wlm + munge if missing, start the daemons
#   snakemake --workflow-profile profiles/slurm --cores "$(nproc)" ...   # (cores: see below)
#   tests/slurm_cluster.sh status
#   tests/slurm_cluster.sh stop
#
# Everything lives in one state dir (WHISPERFORGE_SLURM_DIR, default /tmp/whisperforge-slurm):
# slurm.conf, gres.conf, cgroup.conf, the munge key and socket, daemon logs and PID files. The one
# thing outside it: /etc/slurm/slurm.conf becomes a symlink to the state dir's slurm.conf (only if
# that file does not exist; `stop` removes the link). SLURM_CONF alone is not enough: inside a job
# the plugin's jobstep executor drops every SLURM_* variable before its `srun`, which then only
# finds the default /etc/slurm/slurm.conf.
#
# The nodes: two slurmd on this one host, NodeName=node1 and node2 (slurmd -N NAME, each
# on its own port; this Slurm build runs several slurmd per host), so that a `train.nodes: 2` run
# is a real two-node job. Each node has CPUs = nproc and RealMemory a margin below what the
# machine has (both the whole machine: SlurmdParameters=config_overrides trusts the numbers),
# one partition `main` (Default=YES), and one fake GPU each: GresTypes=gpu with gres.conf
# `File=/dev/null`, so jobs that ask for a GPU schedule on a GPU-less box.
# MinJobAge is an hour: there is no slurmdbd (so no sacct), and the executor plugin's
# `squeue` status command needs finished jobs to stay visible.
#
# A rule asks SLURM for `threads:` CPUs (extract_aishell: 8); on a box with fewer, pass --cores N
# so Snakemake caps them, or sbatch refuses the job ("Requested node configuration is not
# available").
#
# Knobs (environment): WHISPERFORGE_SLURM_DIR, WHISPERFORGE_SLURM_PORT (slurmctld; slurmd uses
# the next two ports; default 6817), WHISPERFORGE_SLURM_WAIT (seconds to wait for the node, default 90).
set -euo pipefail

STATE=${WHISPERFORGE_SLURM_DIR:-/tmp/whisperforge-slurm}
PORT=${WHISPERFORGE_SLURM_PORT:-6817}
WAIT=${WHISPERFORGE_SLURM_WAIT:-90}
NODES=(node1 node2)
CONF=$STATE/slurm.conf
ETC_CONF=/etc/slurm/slurm.conf
SOCKET=$STATE/munge/munge.socket
export SLURM_CONF=$CONF

die() {
  echo "slurm_cluster.sh: $*" >&2
  exit 1
}

alive() { # alive NAME: the daemon whose PID is recorded in $STATE/NAME.pid is running
  local pid
  [[ -s $STATE/$1.pid ]] || return 1
  pid=$(<"$STATE/$1.pid")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

install_packages() {
  local missing=0
  for tool in munged slurmctld slurmd sinfo sbatch squeue scontrol; do
    command -v "$tool" >/dev/null 2>&1 || missing=1
  done
  ((missing)) || return 0
  [[ $(id -u) == 0 ]] || die "slurm-wlm/munge are not installed and this is not root: run" \
    "'apt-get install slurm-wlm munge' as root first"
  echo "slurm_cluster.sh: installing slurm-wlm and munge (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
    || die "apt-get install slurm-wlm munge failed"
}

write_config() {
  local cpus mem_mb margin host
  host=$(hostname -s) # both nodes' host: this one (with two nodes, slurmctld needs it said)
  # The machine's CPUs, not a thread limit of the caller: nproc honours OMP_NUM_THREADS, which
  # a pytest-xdist worker sets to its share (tests/conftest.py).
  cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
  mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
  # slurmd drains a node that reports less memory than configured: keep a margin below it.
  margin=$((mem_mb / 10 > 512 ? mem_mb / 10 : 512))
  mem_mb=$((mem_mb - margin))
  mkdir -p "$STATE/ctld" "$STATE/spool/${NODES[0]}" "$STATE/spool/${NODES[1]}" "$STATE/munge"
  cat >"$CONF" <<EOF
# Written by tests/slurm_cluster.sh: a two-node cluster on one host for trying/testing profiles/slurm.
ClusterName=whisperforge
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$STATE/ctld
# %n: the node's name, one spool, PID file and log per slurmd.
SlurmdSpoolDir=$STATE/spool/%n
SlurmctldPidFile=$STATE/slurmctld.daemon.pid
SlurmdPidFile=$STATE/slurmd-%n.daemon.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# No systemd, no cgroup delegation: track processes by /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
# Finished jobs stay in squeue for an hour (the plugin's squeue status checks need them).
MinJobAge=3600
ReturnToService=2
# Trust the configured CPUs/memory instead of draining the node over a topology mismatch.
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=${NODES[0]} NodeHostname=$host NodeAddr=127.0.0.1 Port=$((PORT + 1)) CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
NodeName=${NODES[1]} NodeHostname=$host NodeAddr=127.0.0.1 Port=$((PORT + 2)) CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=${NODES[0]},${NODES[1]} Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$STATE/gres.conf" <<EOF
# One pretend GPU per node: jobs asking for gpu:1 schedule here; there is no device behind it.
AutoDetect=off
NodeName=${NODES[0]} Name=gpu File=/dev/null
NodeName=${NODES[1]} Name=gpu File=/dev/null
EOF
  cat >"$STATE/cgroup.conf" <<EOF
# Not used (proctrack/linuxproc, task/none); present so slurmd finds no stray system file.
CgroupAutomount=no
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF
}

link_etc_conf() {
  if [[ -L $ETC_CONF && $(readlink "$ETC_CONF") == "$CONF" ]]; then
    return 0
  fi
  [[ -e $ETC_CONF || -L $ETC_CONF ]] && die "$ETC_CONF exists already (a real cluster's?):" \
    "not replacing it. Move it away, or run on a machine without one."
  mkdir -p "$(dirname "$ETC_CONF")"
  ln -s "$CONF" "$ETC_CONF"
}

unlink_etc_conf() {
  if [[ -L $ETC_CONF && $(readlink "$ETC_CONF") == "$CONF" ]]; then
    rm -f "$ETC_CONF"
  fi
}

start_munge() {
  alive munged && return 0
  local key=$STATE/munge/munge.key
  if [[ ! -s $key ]]; then
    dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
  fi
  chmod 755 "$STATE/munge"
  chmod 400 "$key"
  rm -f "$SOCKET" "$SOCKET.lock"
  nohup munged --foreground --force --key-file="$key" --socket="$SOCKET" \
    --pid-file="$STATE/munge/munged.daemon.pid" --seed-file="$STATE/munge/munged.seed" \
    --log-file="$STATE/munged.log" >>"$STATE/munged.out" 2>&1 </dev/null &
  echo $! >"$STATE/munged.pid"
  for _ in $(seq 50); do
    [[ -S $SOCKET ]] && return 0
    alive munged || break
    sleep 0.2
  done
  die "munged did not start; see $STATE/munged.log:"$'\n'"$(tail -n 5 "$STATE/munged.log" 2>&1)"
}

start_daemon() { # start_daemon NAME PROGRAM ARGS...: PROGRAM in the foreground, in the background
  local name=$1 program=$2
  shift 2
  alive "$name" && return 0
  nohup "$program" -D "$@" >>"$STATE/$name.out" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
}

DAEMONS=(slurmctld "slurmd-${NODES[0]}" "slurmd-${NODES[1]}")

nodes_state() { # the states of both nodes, one word: "idle" when both are idle
  sinfo --noheader --nodes="${NODES[0]},${NODES[1]}" --format=%t 2>/dev/null | sort -u | paste -sd,
}

wait_for_node() {
  local state="" deadline=$((SECONDS + WAIT))
  while ((SECONDS < deadline)); do
    state=$(nodes_state || true)
    case $state in
      idle | mix | alloc | comp) return 0 ;; # one state for both (sinfo lists each once)
    esac
    for daemon in "${DAEMONS[@]}"; do
      alive "$daemon" || die "$daemon exited during start-up; last lines of its log:"$'\n'"$(
        tail -n 15 "$STATE/$daemon.log" "$STATE/$daemon.out" 2>&1)"
    done
    sleep 1
  done
  die "nodes ${NODES[*]} not idle after ${WAIT}s (sinfo states: '${state:-no answer}'); see" \
    "$STATE/slurmctld.log and $STATE/slurmd-*.log:"$'\n'"$(tail -n 8 "$STATE/slurmctld.log" \
      "$STATE"/slurmd-*.log 2>&1)"
}

start() {
  [[ $(id -u) == 0 ]] || die "needs root (slurmd runs jobs as their users)"
  export PATH=$PATH:/usr/sbin:/sbin
  install_packages
  mkdir -p "$STATE"
  if ! alive slurmctld; then
    # A fresh cluster each time: jobs recovered from a previous run's state could still hold the
    # node's CPUs (their processes died with the old slurmd).
    rm -rf "$STATE/ctld" "$STATE/spool"
    for log in "${DAEMONS[@]}"; do # job ids restart at 1: keep one generation of old logs
      [[ -f $STATE/$log.log ]] && mv -f "$STATE/$log.log" "$STATE/$log.log.old"
    done
  fi
  if ! alive slurmctld || ! alive "${DAEMONS[1]}" || ! alive "${DAEMONS[2]}"; then
    write_config
  fi
  link_etc_conf
  start_munge
  start_daemon slurmctld slurmctld -i -f "$CONF"
  for node in "${NODES[@]}"; do
    start_daemon "slurmd-$node" slurmd -N "$node" -f "$CONF"
  done
  wait_for_node
  echo "slurm_cluster.sh: nodes ${NODES[*]} are up ($(nodes_state)); partition main; state in $STATE"
  echo "export SLURM_CONF=$CONF"
}

cancel_jobs() {
  # Jobs outlive slurmd (their slurmstepd keeps running): cancel them while slurmctld can.
  alive slurmctld || return 0
  local ids
  ids=$(squeue --noheader --states=PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED --format=%i \
    2>/dev/null || true)
  [[ -n $ids ]] || return 0
  # shellcheck disable=SC2086
  scancel $ids 2>/dev/null || true
  for _ in $(seq 30); do
    [[ -z $(squeue --noheader --states=RUNNING,COMPLETING --format=%i 2>/dev/null) ]] && return 0
    sleep 1
  done
  echo "slurm_cluster.sh: jobs still running after scancel: $ids" >&2
}

stop() {
  local pid
  cancel_jobs
  for name in "${DAEMONS[2]}" "${DAEMONS[1]}" slurmctld munged; do
    if alive "$name"; then
      pid=$(<"$STATE/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
      done
      if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
      fi
    fi
    rm -f "$STATE/$name.pid"
  done
  unlink_etc_conf
  echo "slurm_cluster.sh: stopped (logs kept in $STATE)"
}

status() {
  local rc=0
  for name in munged "${DAEMONS[@]}"; do
    if alive "$name"; then
      echo "$name: running (pid $(<"$STATE/$name.pid"))"
    else
      echo "$name: stopped"
      rc=1
    fi
  done
  if ((rc == 0)); then
    echo "nodes ${NODES[*]}: $(nodes_state || echo 'no answer')"
    echo "export SLURM_CONF=$CONF"
  fi
  return $rc
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: $0 start|stop|status" ;;
esac
