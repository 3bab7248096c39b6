#!/usr/bin/env bash
# oar-local.sh — a real one-node OAR 2.5.9 cluster on localhost, for ckpt-run's
# integration tests (Debian 12, run as root, no systemd: daemons are started by
# hand and stopped through their pid files).
#
# Usage:
#   scripts/oar-local.sh start          install (if needed), configure, start, wait until ready
#   scripts/oar-local.sh stop           stop oar-server, the OAR sshd and PostgreSQL
#   scripts/oar-local.sh status         say what runs (exit 0 = all up, 3 = something down)
#   scripts/oar-local.sh adduser NAME   create a non-root user that can submit jobs
#
# Environment:
#   OAR_LOCAL_TIMEOUT=60          seconds `start` waits for each readiness condition
#   OAR_LOCAL_SCHED_MIN_INTERVAL  if set (e.g. 1), written as SCHEDULER_MIN_TIME_BETWEEN_2_CALLS
#                                 in oar.conf (OAR default 5). With the default, a job submitted
#                                 < 5 s after the previous scheduler run waits for Almighty's
#                                 10 s idle tick: oarsub->Running is 2-15 s instead of ~2.5 s.
#
# Why each `start` step exists:
#   1. packages   — oar-server (Almighty, the scheduler, sarko/bipbip), oar-node
#                   (the node-side sshd config and oarexec), oar-user (oarsub,
#                   oarstat, oardel…), the -pgsql backends and PostgreSQL itself.
#                   Skipped when already installed.
#   2. cgroups    — OAR's default job resource manager
#                   (/etc/oar/job_resource_manager_cgroups.pl) puts every job in
#                   /oar/<user>_<jobid> under the cgroup v1 cpuset, cpu, cpuacct,
#                   devices and freezer hierarchies. If one of them is not mounted
#                   the job cannot start, so JOB_RESOURCE_MANAGER_PROPERTY_DB_FIELD
#                   is commented out in oar.conf (jobs then run without cgroups).
#   3. postgres   — OAR keeps all state (jobs, resources, events) in PostgreSQL;
#                   every OAR command talks to it directly.
#   4. passwords  — DB_BASE_PASSWD / DB_BASE_PASSWD_RO ship empty in oar.conf and
#                   oar-database (and every OAR command) fails without them.
#                   (Also applies OAR_LOCAL_SCHED_MIN_INTERVAL when given.)
#   5. database   — `oar-database --create` creates the oar DB, the oar and oar_ro
#                   roles and the schema; only run when the DB does not exist.
#   6. resources  — one OAR resource per online core of this host
#                   (network_address=localhost, cpuset=N), so that the cgroup job
#                   manager pins each job to its cores; only missing ones are added.
#   7. node sshd  — the server launches jobs by ssh-ing as user "oar" to the node
#                   on port 6667 (OPENSSH_CMD in oar.conf); that is OAR's own sshd
#                   (/etc/oar/sshd_config), which needs /run/sshd to exist.
#   8. server     — /usr/sbin/oar-server daemonizes Almighty (listens on
#                   SERVER_PORT 6666, runs the scheduler, sarko for walltime and
#                   checkpoint signals, bipbip to launch jobs).
#      orphans    — before it starts: jobs the database still has as active belong to
#                   a run that ended without stopping them (a killed test run: no server
#                   ran since); left, they hold the node's resources until their walltime
#                   and every new job waits. What OAR's cgroup job manager would do at their
#                   end is done (their processes killed, their cgroups removed) and OAR's own
#                   OAR::IO::set_job_state sets them Error.
#   9. readiness  — waits (bounded) until Almighty listens, ssh as oar to the node
#                   works and every localhost resource is Alive (Suspected/Absent
#                   ones are set back to Alive once).
# `stop` stops the three daemons in reverse order via their pid files
# (/run/oar-server.pid, /run/oar-node_sshd.pid, PostgreSQL's own postmaster pid
# file via pg_ctlcluster); jobs still running are reported, not killed.
set -euo pipefail

OAR_CONF=/etc/oar/oar.conf
SERVER_PIDFILE=/run/oar-server.pid          # hard-coded in /usr/sbin/oar-server
SSHD_PIDFILE=/run/oar-node_sshd.pid         # same path as /etc/init.d/oar-node
SSHD_CONF=/etc/oar/sshd_config
SSHD_LOG=/var/log/oar-node-sshd.log
NODE=localhost
SERVER_PORT=6666
NODE_SSH_PORT=6667
DB_PASS_DEFAULT=oar
DB_PASS_RO_DEFAULT=oar_ro
TIMEOUT=${OAR_LOCAL_TIMEOUT:-60}
PACKAGES=(oar-server oar-server-pgsql oar-node oar-user oar-user-pgsql postgresql)
CGROUP_CONTROLLERS=(cpuset cpu cpuacct devices freezer)  # what the cgroup job manager links
CGROUP_MARK="# oar-local: disabled, cgroup v1 controllers missing:"
# Every state of a job that is not over (Terminated and Error are).
ACTIVE_STATES="'Waiting','Hold','toLaunch','toError','toAckReservation','Launching','Running','Suspended','Resuming','Finishing'"

log() { echo "oar-local: $*"; }
die() { echo "oar-local: ERROR: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }

# pid_alive PIDFILE REGEX: the pid in PIDFILE is alive and its cmdline matches
pid_alive() {
  local f=$1 re=$2 pid
  [ -r "$f" ] || return 1
  pid=$(head -n1 "$f" 2>/dev/null | tr -dc 0-9)
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -Eq -- "$re"
}
pidof_file() { head -n1 "$1" | tr -dc 0-9; }

port_listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# wait_until SECONDS DESCRIPTION CMD...: poll CMD every 0.2 s
wait_until() {
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$end" ] || die "timed out after ${secs}s waiting for: $what"
    sleep 0.2
  done
}

# --- postgres helpers --------------------------------------------------------
pg_cluster() {  # prints "VERSION NAME PORT STATUS" of the first cluster
  pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $1, $2, $3, $4}'
}
psql_admin() { (cd / && runuser -u postgres -- psql -X -q -tA "$@"); }
conf_get() { sed -nE "s/^[[:space:]]*$1=\"?([^\"]*)\"?.*/\1/p" "$OAR_CONF" | tail -n1; }

pg_running() {
  local ver name _rest
  read -r ver name _rest <<<"$(pg_cluster)"
  [ -n "$ver" ] && pid_alive "/run/postgresql/$ver-$name.pid" postgres
}

# --- state probes ------------------------------------------------------------
resources_states() {  # "state" per resource of $NODE, one per line
  psql_admin -d oar -c "select state from resources where network_address='$NODE' order by resource_id" 2>/dev/null
}
all_alive() {
  local s; s=$(resources_states) || return 1
  [ -n "$s" ] && ! grep -qv '^Alive$' <<<"$s"
}
node_ssh_ok() {
  (cd / && runuser -u oar -- /usr/bin/ssh -p "$NODE_SSH_PORT" -o BatchMode=yes \
      -o ConnectTimeout=3 "$NODE" true) </dev/null
}
server_ready() { pid_alive "$SERVER_PIDFILE" Almighty && port_listening "$SERVER_PORT"; }

online_cpus() {  # expand /sys/devices/system/cpu/online ("0-3,6") into "0 1 2 3 6"
  local r a b out=()
  IFS=, read -ra ranges </sys/devices/system/cpu/online
  for r in "${ranges[@]}"; do
    a=${r%-*}; b=${r#*-}
    for ((i = a; i <= b; i++)); do out+=("$i"); done
  done
  echo "${out[@]}"
}

# --- start steps ---------------------------------------------------------------
step_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then log "packages: already installed"; return; fi
  log "packages: installing ${missing[*]}"
  local apt=(apt-get -y -q -o DPkg::Lock::Timeout=300 install "${missing[@]}")
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" >/var/log/oar-local-apt.log 2>&1; then
    log "packages: install failed, running apt-get update and retrying"
    apt-get -q -o DPkg::Lock::Timeout=300 update >>/var/log/oar-local-apt.log 2>&1 || true
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" >>/var/log/oar-local-apt.log 2>&1 \
      || die "apt-get install failed, see /var/log/oar-local-apt.log"
  fi
}

step_cgroups() {
  local missing=() c
  for c in "${CGROUP_CONTROLLERS[@]}"; do
    [ -e "/sys/fs/cgroup/$c/tasks" ] || missing+=("$c")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    if grep -qF "$CGROUP_MARK" "$OAR_CONF"; then   # re-enable what we disabled earlier
      sed -i -E "/^$CGROUP_MARK/{N;s/^[^\n]*\n#(JOB_RESOURCE_MANAGER_PROPERTY_DB_FIELD=)/\1/}" "$OAR_CONF"
      log "cgroups: v1 ${CGROUP_CONTROLLERS[*]} mounted, cgroup job manager re-enabled"
    else
      log "cgroups: v1 ${CGROUP_CONTROLLERS[*]} mounted, cgroup job manager on"
    fi
  elif grep -qE '^JOB_RESOURCE_MANAGER_PROPERTY_DB_FIELD=' "$OAR_CONF"; then
    sed -i -E "s/^(JOB_RESOURCE_MANAGER_PROPERTY_DB_FIELD=.*)/$CGROUP_MARK ${missing[*]}\n#\1/" "$OAR_CONF"
    log "cgroups: missing v1 ${missing[*]}, job cgroups disabled in oar.conf"
  else
    log "cgroups: missing v1 ${missing[*]}, job cgroups already disabled"
  fi
}

step_postgres() {
  local ver name port _rest
  read -r ver name port _rest <<<"$(pg_cluster)"
  if [ -z "$ver" ]; then
    ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n1)
    log "postgres: creating cluster $ver/main"
    pg_createcluster "$ver" main >/dev/null
    read -r ver name port _rest <<<"$(pg_cluster)"
  fi
  [ "$port" = "$(conf_get DB_PORT)" ] || die "postgres cluster $ver/$name listens on $port, oar.conf DB_PORT is $(conf_get DB_PORT)"
  if pg_running; then
    log "postgres: $ver/$name already running (pid $(pidof_file "/run/postgresql/$ver-$name.pid"))"
  else
    log "postgres: starting $ver/$name"
    pg_ctlcluster "$ver" "$name" start
  fi
  wait_until "$TIMEOUT" "postgres accepting connections" pg_isready -q -h 127.0.0.1 -p "$port"
}

step_passwords() {
  local changed=()
  if [ -z "$(conf_get DB_BASE_PASSWD)" ]; then
    sed -i -E "s/^DB_BASE_PASSWD=.*/DB_BASE_PASSWD=\"$DB_PASS_DEFAULT\"/" "$OAR_CONF"; changed+=(DB_BASE_PASSWD)
  fi
  if [ -z "$(conf_get DB_BASE_PASSWD_RO)" ]; then
    sed -i -E "s/^DB_BASE_PASSWD_RO=.*/DB_BASE_PASSWD_RO=\"$DB_PASS_RO_DEFAULT\"/" "$OAR_CONF"; changed+=(DB_BASE_PASSWD_RO)
  fi
  if [ -n "${OAR_LOCAL_SCHED_MIN_INTERVAL:-}" ]; then
    local v=$OAR_LOCAL_SCHED_MIN_INTERVAL
    [[ "$v" =~ ^[0-9]+$ ]] || die "OAR_LOCAL_SCHED_MIN_INTERVAL must be an integer"
    if [ "$(conf_get SCHEDULER_MIN_TIME_BETWEEN_2_CALLS)" != "$v" ]; then
      sed -i -E '/^SCHEDULER_MIN_TIME_BETWEEN_2_CALLS=/d' "$OAR_CONF"
      echo "SCHEDULER_MIN_TIME_BETWEEN_2_CALLS=\"$v\"" >>"$OAR_CONF"
      changed+=("SCHEDULER_MIN_TIME_BETWEEN_2_CALLS=$v")
      if pid_alive "$SERVER_PIDFILE" Almighty; then
        log "oar.conf: scheduler interval changed, restarting the running server"
        kill_pidfile server "$SERVER_PIDFILE" Almighty 15
      fi
    fi
  fi
  if [ ${#changed[@]} -gt 0 ]; then log "oar.conf: set ${changed[*]}"; else log "oar.conf: DB passwords already set"; fi
}

step_database() {
  if [ "$(psql_admin -c "select 1 from pg_database where datname='oar'")" = 1 ]; then
    log "database: oar already exists"
  else
    log "database: creating oar"
    oar-database --create --db-is-local -y >/var/log/oar-local-db.log 2>&1 \
      || die "oar-database --create failed, see /var/log/oar-local-db.log"
  fi
  if ! oar-database --check >/dev/null 2>&1; then
    # DB exists but oar.conf passwords differ (e.g. oar.conf reinstalled): realign roles
    log "database: check failed, resetting oar/oar_ro role passwords from oar.conf"
    psql_admin -c "ALTER ROLE $(conf_get DB_BASE_LOGIN) PASSWORD '$(conf_get DB_BASE_PASSWD)'" >/dev/null
    psql_admin -c "ALTER ROLE $(conf_get DB_BASE_LOGIN_RO) PASSWORD '$(conf_get DB_BASE_PASSWD_RO)'" >/dev/null
    oar-database --check >/dev/null 2>&1 || die "oar-database --check fails: $(oar-database --check 2>&1 | tail -n1)"
  fi
}

step_resources() {
  local have want=() c added=()
  have=" $(psql_admin -d oar -c "select cpuset from resources where network_address='$NODE'" | tr '\n' ' ') "
  for c in $(online_cpus); do want+=("$c"); done
  for c in "${want[@]}"; do
    case "$have" in *" $c "*) ;; *)
      oarnodesetting -a -h "$NODE" -p "cpuset=$c" >/dev/null 2>&1 \
        || die "oarnodesetting -a -h $NODE -p cpuset=$c failed"
      added+=("$c") ;;
    esac
  done
  if [ ${#added[@]} -gt 0 ]; then log "resources: added $NODE cpuset=${added[*]}"
  else log "resources: $NODE cpuset=${want[*]} already defined"; fi
}

step_sshd() {
  if pid_alive "$SSHD_PIDFILE" sshd; then
    log "node sshd: already running on port $NODE_SSH_PORT (pid $(pidof_file "$SSHD_PIDFILE"))"
  else
    log "node sshd: starting on port $NODE_SSH_PORT"
    mkdir -p /run/sshd && chmod 0755 /run/sshd
    /usr/sbin/sshd -t -f "$SSHD_CONF" 2>>"$SSHD_LOG" || die "sshd -t -f $SSHD_CONF failed, see $SSHD_LOG"
    /usr/sbin/sshd -f "$SSHD_CONF" -o PidFile="$SSHD_PIDFILE" -E "$SSHD_LOG" \
      || die "sshd failed to start, see $SSHD_LOG"
  fi
  wait_until "$TIMEOUT" "ssh as oar to $NODE:$NODE_SSH_PORT" node_ssh_ok
}

# end_job_processes USER ID: kills what is left in the job's cgroups and removes them; bounded.
end_job_processes() {
  local dirs=() d left deadline=$((SECONDS + 10))
  for d in /sys/fs/cgroup/*/oar/"$1_$2"; do [ -d "$d" ] && dirs+=("$d"); done
  [ ${#dirs[@]} -gt 0 ] || return 0
  while left=$(cat "${dirs[@]/%//cgroup.procs}" | xargs); [ -n "$left" ]; do
    [ "$SECONDS" -lt "$deadline" ] || { log "orphans: job $2's processes $left outlived 10 s of SIGKILL, its cgroups stay"; return 0; }
    # shellcheck disable=SC2086  # list of pids
    kill -KILL $left 2>/dev/null || true
    sleep 0.2
  done
  rmdir "${dirs[@]}" 2>/dev/null || log "orphans: job $2's cgroups could not all be removed: ${dirs[*]}"
}

step_orphans() {
  local rows id user state ids=() said=()
  rows=$(psql_admin -d oar -F ' ' -c "select job_id, job_user, state from jobs where state in ($ACTIVE_STATES) order by job_id")
  [ -n "$rows" ] || return 0
  while read -r id user state; do
    end_job_processes "$user" "$id"
    ids+=("$id"); said+=("$id ($user, $state)")
  done <<<"$rows"
  OARCONFFILE="$OAR_CONF" perl -MOAR::IO -e 'my $dbh = OAR::IO::connect();
    for my $id (@ARGV) {
      OAR::IO::set_job_message($dbh, $id, "left active when OAR stopped; set to Error by oar-local.sh start");
      OAR::IO::set_job_state($dbh, $id, "Error");
    }
    OAR::IO::disconnect($dbh);' "${ids[@]}" >/dev/null 2>&1 \
    || die "could not set the jobs left active to Error: ${said[*]}"
  log "orphans: job(s) left active by a run that ended without stopping them: ${said[*]}; their processes killed, their cgroups removed, set to Error"
}

step_server() {
  if pid_alive "$SERVER_PIDFILE" Almighty; then
    log "server: already running (Almighty pid $(pidof_file "$SERVER_PIDFILE"))"
  else
    step_orphans
    log "server: starting oar-server"
    /usr/sbin/oar-server
  fi
  wait_until "$TIMEOUT" "Almighty listening on port $SERVER_PORT" server_ready
}

step_ready() {
  if ! all_alive; then
    log "ready: resources not all Alive ($(resources_states | sort | uniq -c | xargs)), setting $NODE Alive"
    oarnodesetting -h "$NODE" -s Alive >/dev/null 2>&1 || true
  fi
  wait_until "$TIMEOUT" "all $NODE resources Alive (oarnodes -s)" all_alive
  log "ready: $(resources_states | wc -l) resource(s) Alive on $NODE, server on :$SERVER_PORT"
}

cmd_start() {
  need_root
  local t0=$SECONDS
  step_packages
  step_cgroups
  step_postgres
  step_passwords
  step_database
  step_resources
  step_sshd
  step_server
  step_ready
  log "started in $((SECONDS - t0))s"
}

# --- stop ----------------------------------------------------------------------
# kill_pidfile NAME PIDFILE REGEX SECS: TERM the pid, wait, then KILL what is left
# of its session (Almighty's helpers share the session oar-server created).
kill_pidfile() {
  local name=$1 f=$2 re=$3 secs=$4 pid sid end left
  if ! pid_alive "$f" "$re"; then
    log "$name: not running"; rm -f "$f"; return
  fi
  pid=$(pidof_file "$f")
  sid=$(ps -o sid= -p "$pid" | tr -d ' ')
  log "$name: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  end=$((SECONDS + secs))
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: still alive after ${secs}s, sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  if [ "$name" = server ] && [ -n "$sid" ] && [ "$sid" != 0 ]; then
    left=$(ps -o pid= --sid "$sid" 2>/dev/null | xargs || true)
    if [ -n "$left" ]; then
      log "$name: killing leftover session $sid processes: $left"
      # shellcheck disable=SC2086  # list of pids
      kill -KILL $left 2>/dev/null || true
    fi
  fi
  rm -f "$f"
}

cmd_stop() {
  need_root
  if pg_running; then
    local n
    n=$(psql_admin -d oar -c "select count(*) from jobs where state in ($ACTIVE_STATES)" 2>/dev/null || echo 0)
    [ "${n:-0}" = 0 ] || log "warning: $n job(s) still active, left as they are (oardel them first for a clean state; the next start sets them to Error)"
  fi
  # Almighty only checks its stop flag between 10 s blocking reads
  kill_pidfile server "$SERVER_PIDFILE" Almighty 15
  kill_pidfile "node sshd" "$SSHD_PIDFILE" sshd 5
  if pg_running; then
    local ver name _rest
    read -r ver name _rest <<<"$(pg_cluster)"
    log "postgres: stopping $ver/$name"
    pg_ctlcluster "$ver" "$name" stop -m fast
  else
    log "postgres: not running"
  fi
  log "stopped"
}

# --- status --------------------------------------------------------------------
cmd_status() {
  local down=0 ver name _rest
  read -r ver name _rest <<<"$(pg_cluster || true)"
  if pg_running; then
    log "postgres: running $ver/$name (pid $(pidof_file "/run/postgresql/$ver-$name.pid"))"
  else log "postgres: stopped"; down=1; fi
  if pid_alive "$SSHD_PIDFILE" sshd; then
    log "node sshd: running on port $NODE_SSH_PORT (pid $(pidof_file "$SSHD_PIDFILE"))"
  else log "node sshd: stopped"; down=1; fi
  if pid_alive "$SERVER_PIDFILE" Almighty; then
    log "server: running (Almighty pid $(pidof_file "$SERVER_PIDFILE"))"
  else log "server: stopped"; down=1; fi
  if pg_running && [ "$(id -u)" -eq 0 ]; then
    log "resources: $(resources_states | sort | uniq -c | xargs || true)"
    log "jobs: $(psql_admin -d oar -c "select count(*)||' '||state from jobs where state not in ('Terminated','Error') group by state" 2>/dev/null | xargs || true)"
  fi
  if [ "$down" = 0 ]; then log "status: up"; return 0; else log "status: down"; return 3; fi
}

# --- adduser -------------------------------------------------------------------
# A plain local user with a home and a login shell is all oarsub needs: oarsub,
# oarstat, oardel are setuid wrappers that run as "oar"; the job runs as the
# user through oardodo with the user's login shell, in OAR_WORKDIR (the
# submission directory, which must be readable by the user). No ssh key is
# needed for batch jobs on this single node (oar itself uses ~oar/.ssh).
cmd_adduser() {
  need_root
  local u=${1:-}
  [[ "$u" =~ ^[a-z_][a-z0-9_-]*$ ]] || die "usage: $0 adduser NAME (lowercase login name)"
  case "$u" in root|oar|postgres) die "refusing to use $u as a test user";; esac
  if id "$u" >/dev/null 2>&1; then
    log "adduser: $u already exists (uid $(id -u "$u"))"
    [ "$(id -u "$u")" -ne 0 ] || die "$u has uid 0"
  else
    # Bounded retries: another process (a test lane beside this one) may hold /etc/passwd's lock.
    local tries=0
    until useradd -m -s /bin/bash "$u" 2>/dev/null || id "$u" >/dev/null 2>&1; do
      tries=$((tries + 1))
      [ "$tries" -lt 50 ] || die "adduser: useradd $u failed 50 times over ~5 s (is /etc/passwd locked?)"
      sleep 0.1
    done
    log "adduser: created $u (uid $(id -u "$u"))"
  fi
  local home shell
  home=$(getent passwd "$u" | cut -d: -f6)
  shell=$(getent passwd "$u" | cut -d: -f7)
  if [ ! -d "$home" ]; then mkdir -p "$home"; cp -rT /etc/skel "$home"; chown -R "$u:" "$home"; log "adduser: created $home"; fi
  case "$shell" in */nologin|*/false|"") usermod -s /bin/bash "$u"; log "adduser: login shell set to /bin/bash";; esac
  log "adduser: $u ready (submit from a directory under $home, never from /tmp)"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  adduser) shift; cmd_adduser "$@" ;;
  *) echo "usage: $0 start|stop|status|adduser NAME" >&2; exit 2 ;;
esac
