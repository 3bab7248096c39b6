#!/usr/bin/env bash
# slurm-local.sh — a real one-node Slurm 22.05 cluster on localhost, for ckpt-run's
# integration tests (Debian 12, run as root, no systemd: daemons are started by hand and
# stopped through their pid files).
#
# Usage:
#   scripts/slurm-local.sh start    install (if needed), configure, start, wait until the node is idle
#   scripts/slurm-local.sh stop     stop slurmd, slurmctld and munged
#   scripts/slurm-local.sh status   say what runs (exit 0 = all up, 3 = something down)
#
# Why each `start` step exists:
#   1. packages — slurm-wlm (slurmctld, slurmd, sbatch, scontrol…) and munge, which
#                 authenticates every Slurm message. Skipped when installed. The package
#                 creates /etc/munge/munge.key.
#   2. config   — /etc/slurm/slurm.conf (and cgroup.conf) for one node (this host's online
#                 cores) and one partition; written only when absent or written by this
#                 script before (a site's own configuration is never touched).
#                 proctrack/cgroup, as on real clusters (each job's processes in
#                 /slurm_HOST/uid_U/job_J/step_S of the cgroup v1 freezer hierarchy: where a
#                 restored tree lands is then visible), or proctrack/linuxproc where no
#                 freezer hierarchy is mounted; task/none, no resource constraints;
#                 accounting off; JobRequeue=1 so
#                 that jobs may requeue themselves (what ckpt-run does after a checkpoint);
#                 AuthInfo=cred_expire=10: a requeued job is eligible 10 s after its requeue,
#                 not the default 120 s (the lifetime of the ended run's revoked credential:
#                 started sooner, with scontrol update StartTime=now, the requeued job may be
#                 refused by slurmd, "Job credential revoked", and fail with exit code 1).
#                 Preemption: besides "debug" (the default, never preempted), a preemptible
#                 partition "lowprio" (PreemptMode=REQUEUE, GraceTime=60) and "highprio",
#                 whose jobs preempt lowprio's (PreemptType=preempt/partition_prio, higher
#                 PriorityTier); SchedulerParameters=preempt_send_user_signal (22.05; later
#                 versions: PreemptParameters=send_user_signal): a preempted job that
#                 asked for --signal gets that signal at once, not SIGTERM. A configuration
#                 that changed while the daemons run restarts them (their jobs survive in
#                 StateSaveLocation).
#   3. munged   — runs as user munge, socket in /run/munge.
#   4. slurmctld, slurmd — as root (SlurmUser=root), state in /var/spool/slurm*. Jobs
#                 that slurmctld's saved state still has when it was not running belong to a
#                 run that ended without stopping them (a killed test run); left, they would
#                 hold the node or be requeued onto it, so they are cancelled, and said.
#   5. readiness — waits (bounded) until the node is idle (a down node is resumed once).
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK='# written by ckpt-run scripts/slurm-local.sh'
CTLD_PIDFILE=/run/slurmctld.pid
SLURMD_PIDFILE=/run/slurmd.pid
MUNGE_PIDFILE=/run/munge/munged.pid
LOG_DIR=/var/log/slurm
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}

log() { echo "slurm-local: $*"; }
die() { echo "slurm-local: ERROR: $*" >&2; exit 1; }

pid_alive() { [ -f "$1" ] && kill -0 "$(head -n1 "$1" | tr -dc 0-9)" 2>/dev/null; }

wait_until() {  # SECONDS WHAT COMMAND...
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${seconds}s waiting for $what"
    sleep 0.5
  done
}

# slurmctld's own view; sinfo's per-partition counts can stay stale ("mixed") after a recovered
# job is cancelled, until the next job is scheduled.
node_state() { scontrol -o show node localhost 2>/dev/null | sed -nE 's/.* State=([^ ]*).*/\1/p' | tr 'A-Z' 'a-z'; }
node_idle() { [ "$(node_state)" = idle ]; }

step_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    log "packages: already installed"
    return
  fi
  log "packages: installing slurm-wlm munge"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

step_config() {
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    log "config: $CONF is a site's own: used as it is"
    return
  fi
  local cpus proctrack=proctrack/cgroup
  cpus=$(nproc)
  [ -d /sys/fs/cgroup/freezer ] || proctrack=proctrack/linuxproc
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$LOG_DIR"
  local before
  before=$(cat "$CONF" 2>/dev/null || true)
  cat >"$CONF" <<EOF
$MARK
ClusterName=ckptlocal
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PIDFILE
SlurmdPidFile=$SLURMD_PIDFILE
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=$proctrack
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SchedulerParameters=preempt_send_user_signal
NodeName=localhost CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=OFF
PartitionName=lowprio Nodes=localhost MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=60
PartitionName=highprio Nodes=localhost MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
  if [ -n "$before" ] && [ "$before" != "$(cat "$CONF")" ] && { pid_alive "$CTLD_PIDFILE" || pid_alive "$SLURMD_PIDFILE"; }; then
    log "config: $CONF changed, restarting the running daemons"
    stop_pidfile slurmd "$SLURMD_PIDFILE"
    stop_pidfile slurmctld "$CTLD_PIDFILE"
  fi
  if [ -f /etc/slurm/cgroup.conf ] && ! grep -qF "$MARK" /etc/slurm/cgroup.conf; then
    log "config: /etc/slurm/cgroup.conf is a site's own: used as it is"
  else
    cat >/etc/slurm/cgroup.conf <<EOF
$MARK
CgroupPlugin=cgroup/v1
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF
  fi
  log "config: wrote $CONF (localhost, $cpus CPUs, $proctrack)"
}

step_munge() {
  if pid_alive "$MUNGE_PIDFILE"; then log "munged: already running"; return; fi
  [ -f /etc/munge/munge.key ] || die "/etc/munge/munge.key is missing (reinstall munge, or run mungekey)"
  mkdir -p /run/munge
  chown munge:munge /run/munge
  runuser -u munge -- /usr/sbin/munged
  wait_until "$TIMEOUT" "munged" sh -c 'munge -n | unmunge >/dev/null 2>&1'
  log "munged: started"
}

step_daemons() {
  local orphans=()
  if pid_alive "$CTLD_PIDFILE"; then log "slurmctld: already running"; else /usr/sbin/slurmctld; log "slurmctld: started"; fi
  wait_until "$TIMEOUT" "slurmctld to answer" sh -c 'scontrol ping 2>/dev/null | grep -q UP'
  if pid_alive "$SLURMD_PIDFILE"; then log "slurmd: already running"; else /usr/sbin/slurmd; log "slurmd: started"; fi
  [ -z "$CTLD_WAS_DOWN" ] || mapfile -t orphans < <(squeue -h -o '%i %u %T')
  if [ ${#orphans[@]} -gt 0 ]; then
    # After slurmd started: the kill reaches their steps at once, not at slurmctld's next retry.
    scancel "${orphans[@]%% *}"
    log "orphans: job(s) left by a run that ended without stopping them: ${orphans[*]}; cancelled"
  fi
}

step_ready() {
  local deadline=$((SECONDS + TIMEOUT)) resumed=
  until node_idle; do
    case "$(node_state)" in
      *down*|*drain*) [ -n "$resumed" ] || { scontrol update NodeName=localhost State=RESUME; resumed=1; log "node: resumed from $(node_state)"; } ;;
    esac
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${TIMEOUT}s waiting for the node to be idle (state: $(node_state); see $LOG_DIR)"
    sleep 0.5
  done
  log "ready: localhost idle in partitions debug, lowprio, highprio"
}

cmd_start() {
  [ "$(id -u)" -eq 0 ] || die "must run as root"
  local started=$SECONDS
  # Read before step_config, which may restart running daemons on purpose (their jobs survive).
  CTLD_WAS_DOWN=$(pid_alive "$CTLD_PIDFILE" || echo yes)
  step_packages
  step_config
  step_munge
  step_daemons
  step_ready
  log "started in $((SECONDS - started))s"
}

stop_pidfile() {  # NAME PIDFILE
  if ! pid_alive "$2"; then log "$1: not running"; return; fi
  local pid
  pid=$(head -n1 "$2" | tr -dc 0-9)
  kill "$pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || { kill -KILL "$pid" 2>/dev/null || true; break; }
    sleep 0.2
  done
  log "$1: stopped (pid $pid)"
}

cmd_stop() {
  stop_pidfile slurmd "$SLURMD_PIDFILE"
  stop_pidfile slurmctld "$CTLD_PIDFILE"
  stop_pidfile munged "$MUNGE_PIDFILE"
  log "stopped"
}

cmd_status() {
  local down=0
  for pair in munged:$MUNGE_PIDFILE slurmctld:$CTLD_PIDFILE slurmd:$SLURMD_PIDFILE; do
    if pid_alive "${pair#*:}"; then log "${pair%%:*}: running"; else log "${pair%%:*}: not running"; down=1; fi
  done
  log "node: $(node_state || true)"
  [ "$down" = 0 ] || exit 3
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
