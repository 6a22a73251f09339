#!/usr/bin/env bash
# A throwaway single-node SLURM cluster on this machine, to try profiles/slurm and to test it
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
# The node: NodeName=localhost (slurmd -N localhost), CPUs = nproc, RealMemory a margin below what
# the machine has, one partition `main` (Default=YES), and one fake GPU: GresTypes=gpu with
# gres.conf `File=/dev/null`, so jobs that ask for a GPU schedule on a GPU-less box.
# MinJobAge is an hour: there is no slurmdbd (so no sacct), and the executor plugin's
# `squeue` status command needs finished jobs to stay visible.
#
# A rule asks SLURM for `threads:` CPUs (extract_aishell: 8); on a box with fewer, pass --cores N
# so Snakemake caps them, or sbatch refuses the job ("Requested node configuration is not
# available").
#
# Knobs (environment): WHISPERFORGE_SLURM_DIR, WHISPERFORGE_SLURM_PORT (slurmctld; slurmd uses
# the next port; default 6817), WHISPERFORGE_SLURM_WAIT (seconds to wait for the node, default 90).
set -euo pipefail

STATE=${WHISPERFORGE_SLURM_DIR:-/tmp/whisperforge-slurm}
PORT=${WHISPERFORGE_SLURM_PORT:-6817}
WAIT=${WHISPERFORGE_SLURM_WAIT:-90}
NODE=localhost
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
  local cpus mem_mb margin
  # The machine's CPUs, not a thread limit of the caller: nproc honours OMP_NUM_THREADS, which
  # a pytest-xdist worker sets to its share (tests/conftest.py).
  cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
  mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
  # slurmd drains a node that reports less memory than configured: keep a margin below it.
  margin=$((mem_mb / 10 > 512 ? mem_mb / 10 : 512))
  mem_mb=$((mem_mb - margin))
  mkdir -p "$STATE/ctld" "$STATE/spool" "$STATE/munge"
  cat >"$CONF" <<EOF
# Written by tests/slurm_cluster.sh: a single-node cluster for trying/testing profiles/slurm.
ClusterName=whisperforge
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.daemon.pid
SlurmdPidFile=$STATE/slurmd.daemon.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
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
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$STATE/gres.conf" <<EOF
# One pretend GPU: jobs asking for gpu:1 schedule here; there is no device behind it.
AutoDetect=off
NodeName=$NODE Name=gpu File=/dev/null
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

start_daemon() { # start_daemon NAME ARGS...: run NAME in the foreground, in the background
  local name=$1
  shift
  alive "$name" && return 0
  nohup "$name" -D "$@" >>"$STATE/$name.out" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
}

node_state() {
  sinfo --noheader --nodes="$NODE" --format=%t 2>/dev/null | head -1
}

wait_for_node() {
  local state="" deadline=$((SECONDS + WAIT))
  while ((SECONDS < deadline)); do
    state=$(node_state || true)
    case $state in
      idle | mix | alloc | comp) return 0 ;;
    esac
    for daemon in slurmctld slurmd; do
      alive "$daemon" || die "$daemon exited during start-up; last lines of its log:"$'\n'"$(
        tail -n 15 "$STATE/$daemon.log" "$STATE/$daemon.out" 2>&1)"
    done
    sleep 1
  done
  die "node $NODE not idle after ${WAIT}s (sinfo state: '${state:-no answer}'); see" \
    "$STATE/slurmctld.log and $STATE/slurmd.log:"$'\n'"$(tail -n 8 "$STATE/slurmctld.log" \
      "$STATE/slurmd.log" 2>&1)"
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
    for log in slurmctld slurmd; do # job ids restart at 1: keep one generation of old logs
      [[ -f $STATE/$log.log ]] && mv -f "$STATE/$log.log" "$STATE/$log.log.old"
    done
  fi
  if ! alive slurmctld || ! alive slurmd; then
    write_config
  fi
  link_etc_conf
  start_munge
  start_daemon slurmctld -i -f "$CONF"
  start_daemon slurmd -N "$NODE" -f "$CONF"
  wait_for_node
  echo "slurm_cluster.sh: node $NODE is up ($(node_state)); partition main; state in $STATE"
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
  for name in slurmd slurmctld munged; do
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
  for name in munged slurmctld slurmd; do
    if alive "$name"; then
      echo "$name: running (pid $(<"$STATE/$name.pid"))"
    else
      echo "$name: stopped"
      rc=1
    fi
  done
  if ((rc == 0)); then
    echo "node $NODE: $(node_state || echo 'no answer')"
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
