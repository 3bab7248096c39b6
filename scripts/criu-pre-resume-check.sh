#!/bin/sh
# ckpt-daemon's criu action script (criu dump/restore --action-script), for two of criu's
# actions; any other action passes.
#
# "post-dump": the tree is dumped and still frozen. First the files it holds open for writing
# are recorded (CKPT_OPEN_FILES, set by the daemon: "SIZE INODE BORN PATH" per regular file,
# BORN its birth time, which tells a file apart from one made under the inode number it freed): a job
# that resumes this checkpoint after the run went on without it (a crash) cuts each one back to
# that size; only now, frozen, are the sizes those of the images. The daemon checked it before the dump, but
# a process may have changed since (exec'd a setuid program, or its PID went to another
# process): the frozen tree is the one in the images, so it is checked again against the
# requester, for credentials and the "dumpable" flag. Then the content of those files that are
# not O_APPEND is kept (CKPT_KEEP_FILES, below). Refused, the dump is discarded: criu
# resumes the tree and fails.
#
# "pre-resume": images are user data, and criu restores as root: a crafted image can ask for
# uid 0, for capabilities, for namespaces of its own, for cgroups, scheduling, or files that
# root opens on the user's behalf. At "pre-resume" every restored process exists with what the
# images asked for, and none has run an instruction yet. This checks each one against the user
# who asked for the restore (CKPT_REQUESTER_UID, CKPT_REQUESTER_GIDS = that user's groups,
# space-separated, CKPT_REQUESTER_NAME):
#   - credentials: every thread's Uid (real, effective, saved, fs) is the requester's; its
#     Gid and Groups are among the requester's groups; no capabilities (CapInh, CapPrm,
#     CapEff, CapAmb all zero);
#   - scheduling: no real-time policy (FIFO, RR, DEADLINE), no negative nice, no negative
#     oom_score_adj (each needs a privilege);
#   - cgroups: first moved into the new job's (below); then, under OAR's /oar/, only a job of
#     the requester's (/oar/<name>_<job id without "_">);
#   - namespaces: the node's own, except PID (ckpt-run gives each program one) and time (criu
#     restores into a new one, to keep the monotonic clocks going on);
#   - files: each open file, file mapping and working directory is an inode the requester may
#     use that way by its mode bits (ACLs are not read: they could only allow more), reached
#     through folders the requester may search; an open file whose name was deleted has no
#     other name left, or is the requester's own (a working directory in the /proc folder of an
#     ended process is no file: accepted); the root directory is the node's.
# criu only logs a failing pre-resume script and resumes the tree anyway. So this script
# kills the tree itself (SIGKILL reaches the stopped tasks), on refusal and on any error of
# its own; criu then cannot detach from the dead tasks and reports the restore as failed.
set -eu
case ${CRTOOLS_SCRIPT_ACTION:-} in
  pre-resume) check='pre-resume check' who='restored process' outcome='the restored tree is killed' ;;
  post-dump) check='post-dump check' who='dumped process' outcome='the dump is discarded' ;;
  *) exit 0 ;;
esac

tree=
refused=
finish() {
  status=$?
  [ "$status" = 0 ] && return
  [ -n "$refused" ] || echo "Error (ckpt-daemon $check): the check itself failed (status $status); $outcome" >&2
  # A refused dump is discarded by criu, which resumes the tree; a refused restore is killed here.
  [ "$CRTOOLS_SCRIPT_ACTION" = pre-resume ] || return 0
  [ -z "$tree" ] || kill -KILL $tree 2>/dev/null || true
}
trap finish EXIT

# The tree: the root, then every descendant (any thread may have forked one).
set -- "$CRTOOLS_INIT_PID"
while [ $# -gt 0 ]; do
  pid=$1
  shift
  tree="$tree $pid"
  set -- "$@" $(cat /proc/"$pid"/task/*/children)
done

if [ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] && [ -n "${CKPT_OPEN_FILES:-}" ]; then
  : >"$CKPT_OPEN_FILES"
  for pid in $tree; do
    for fd in /proc/"$pid"/fd/*; do
      [ -f "$fd" ] || continue # regular files only (pipes, sockets, devices have no size to keep)
      flags=0
      while read -r key value; do
        if [ "$key" = flags: ]; then flags=$value; break; fi
      done <"/proc/$pid/fdinfo/${fd##*/}"
      [ $((0$flags & 3)) != 0 ] || continue # read-only
      target=$(readlink "$fd")
      case $target in /*) ;; *) continue ;; esac
      case $target in *" (deleted)" | *"
"*) continue ;; esac # no name to cut back, or one the record cannot hold
      echo "$(stat -L -c '%s %i %.9W' "$fd") $target" >>"$CKPT_OPEN_FILES"
      # Its content too (CKPT_KEEP_FILES), unless O_APPEND: then its size says all.
      [ -z "${CKPT_KEEP_FILES:-}" ] || [ $((0$flags & 02000)) != 0 ] || echo "$fd $target" >>"$CKPT_KEEP_FILES.list"
    done
  done
fi

# The program's node-local state (CKPT_LOCAL_STATE, set by the daemon: the record to write; the
# archive goes beside it as CKPT_LOCAL_STATE.tar; protocol/local-state.ts): the next job may run
# on another node, whose /tmp, /var/tmp, /dev/shm (and the program's TMPDIR, where it is a tmpfs)
# lack what the program holds there (Open MPI's session folder, its shared-memory segments, a
# scratch file). While the tree is frozen, the top-level entry of such a folder that holds each
# file, mapping or working directory of the tree is archived whole (its owner the requester's:
# another's "stays"), and criu's link-remap files (link_remap.N, the second name criu gives a
# shared file whose name was deleted: POSIX semaphores) with them. tar runs as the requester
# (CKPT_AS_USER: setpriv): root never reads a user's folder, nor follows a user's symlink. All or
# nothing: over CKPT_LOCAL_LIMIT bytes in all, or a failed tar, nothing is carried and the record
# says why ("stays" lines); the dump itself goes on (the same node can still resume it).
# Record lines: "limit BYTES", "carried BYTES PATH", "stays WHY PATH" (WHY: owner:UID,
# over-limit:BYTES, unreadable, odd-name: a space in the name, device: a device of the node's);
# the daemon adds "socket ADDRESS STATE" lines (a socket bound to one of this node's addresses).
if [ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] && [ -n "${CKPT_LOCAL_STATE:-}" ]; then
  roots='/tmp /var/tmp /dev/shm'
  own_tmp=$(tr '\0' '\n' <"/proc/$CRTOOLS_INIT_PID/environ" | sed -n 's/^TMPDIR=//p' | head -n 1)
  case $own_tmp in
    /tmp | /tmp/* | /var/tmp | /var/tmp/* | /dev/shm | /dev/shm/* | *[[:space:]*?[]* | '') ;;
    /*) [ "$(stat -f -c %T "$own_tmp" 2>/dev/null)" != tmpfs ] || roots="$roots ${own_tmp%/}" ;;
  esac
  # What the tree holds by name: working directories, open files, mapped files; and the inodes of
  # those whose name was deleted (a link-remap file is another name of one of them).
  held=$(for pid in $tree; do
    readlink "/proc/$pid/cwd" || true
    for fd in /proc/"$pid"/fd/*; do readlink "$fd" || true; done
    sed -n 's|^[^ ]* [^ ]* [^ ]* [^ ]* [^ ]* *\(/.*\)$|\1|p' "/proc/$pid/maps"
  done | sort -u)
  deleted_inodes=' '
  for pid in $tree; do
    for fd in /proc/"$pid"/fd/*; do
      case $(readlink "$fd" || true) in *" (deleted)") deleted_inodes="$deleted_inodes$(stat -L -c %i "$fd" || true) " ;; esac
    done
    # Only the deleted mappings' inodes (one stat each): a program maps hundreds of files.
    for range in $(sed -n 's/^\([0-9a-f]*-[0-9a-f]*\) .* (deleted)$/\1/p' "/proc/$pid/maps"); do
      file=/proc/$pid/map_files/$(printf '%x-%x' "0x${range%-*}" "0x${range#*-}")
      deleted_inodes="$deleted_inodes$(stat -L -c %i "$file" || true) "
    done
  done
  entries=
  stays=
  add_entry() { # ROOT NAME: the top-level entry ROOT/NAME, once
    case " $entries " in *" $1/$2 "*) return ;; esac
    # The entry that holds the run folder (CKPT_RUN_DIR): the next job finds it where it is, or nowhere.
    case ${CKPT_RUN_DIR:-} in "$1/$2" | "$1/$2"/*) return ;; esac
    owner=$(stat -c %u "$1/$2") || return 0 # gone meanwhile: nothing held there any more
    if [ "$owner" = "$CKPT_REQUESTER_UID" ]; then entries="$entries $1/$2"
    else case $stays in *" owner:$owner $1/$2
"*) ;; *) stays="${stays}stays owner:$owner $1/$2
" ;; esac
    fi
  }
  while IFS= read -r path; do
    case $path in
      *" (deleted)") continue ;;
      # A device other than the ones every node has (a GPU, an InfiniBand adapter) is this node's.
      /dev/null | /dev/zero | /dev/full | /dev/random | /dev/urandom | /dev/tty | /dev/ptmx | /dev/pts/* | /dev/shm/*) ;;
      /dev/*) case $stays in *" $path
"*) ;; *) stays="${stays}stays device $path
" ;; esac ;;
    esac
    for root in $roots; do
      case $path in "$root"/*) ;; *) continue ;; esac
      rest=${path#"$root"/}
      case ${rest%%/*} in
        *" "*) case $stays in *" $root/${rest%%/*}
"*) ;; *) stays="${stays}stays odd-name $root/${rest%%/*}
" ;; esac ;;
        *) add_entry "$root" "${rest%%/*}" ;;
      esac
    done
  done <<EOF_HELD
$held
EOF_HELD
  for root in $roots; do
    for remap in "$root"/link_remap.*; do
      [ -f "$remap" ] && [ ! -L "$remap" ] || continue
      case $deleted_inodes in *" $(stat -c %i "$remap") "*) add_entry "$root" "${remap##*/}" ;; esac
    done
  done
  set -f # from here the names are split unquoted: a "*" in a user's name must not expand
  limit=${CKPT_LOCAL_LIMIT:-1000000000}
  echo "limit $limit" >"$CKPT_LOCAL_STATE"
  carried=
  total=0
  for entry in $entries; do
    bytes=$($CKPT_AS_USER du -s -B1 -- "$entry" 2>/dev/null | cut -f1) || bytes=
    if [ -z "$bytes" ]; then stays="${stays}stays unreadable $entry
"; continue; fi
    total=$((total + bytes))
    carried="${carried}carried $bytes $entry
"
  done
  if [ -n "$carried" ] && [ "$total" -gt "$limit" ]; then
    printf '%s' "$carried" | sed 's/^carried \([0-9]*\) /stays over-limit:\1 /' >>"$CKPT_LOCAL_STATE"
    carried=
  elif [ -n "$carried" ]; then
    # Names relative to /, extracted from / by the next job's daemon as the requester.
    relative=$(printf '%s' "$carried" | sed 's|^carried [0-9]* /||')
    # shellcheck disable=SC2086 # the names hold no space (see above); the command is split on purpose
    if ! (cd / && $CKPT_AS_USER tar --sparse -cf - -- $relative) >"$CKPT_LOCAL_STATE.tar"; then
      printf '%s' "$carried" | sed 's/^carried [0-9]* /stays unreadable /' >>"$CKPT_LOCAL_STATE"
      rm -f "$CKPT_LOCAL_STATE.tar"
      carried=
    else
      # criu names its link-remap files by the file's id in the tree (link_remap.26): left in the
      # folder, the next dump of a tree shaped alike on this node fails ("Can't link remap to ...:
      # File exists"), seen. Archived, they are put back for the restore, wherever it runs.
      for remap in $(printf '%s' "$carried" | sed -n 's|^carried [0-9]* \(/.*/link_remap\.[0-9]*\)$|\1|p'); do
        $CKPT_AS_USER rm -f -- "$remap" || true
      done
    fi
  fi
  # Then what the user made or changed in those folders since the program started (CKPT_LOCAL_SINCE,
  # epoch seconds; protocol/local-state.ts: createdEntries and withinLimit, the same rule), where
  # the held entries travel or there are none: R's session folder, a scratch file written, closed
  # and read again later. find lists, as the user, the user's top-level entries changed since (their
  # ctime); those the tree holds are the held tier's (above), criu's link-remap files too, and the
  # entry holding the run folder stays. A socket, a fifo, a device, a name with a space or a line
  # break stays, said ("stays-created WHY PATH"). Smallest first while they fit in what the bound
  # leaves; one tar for all, appended to the held entries' (the restore reads on past the first
  # archive's end); failing, one tar each, so that an entry another process changes meanwhile
  # (another job's of the user: tar exits 1) or that cannot be read stays alone, never half-copied.
  made=
  left=
  if [ -n "${CKPT_LOCAL_SINCE:-}" ] && { [ -n "$carried" ] || [ -z "$entries" ]; }; then
    nl='
'
    tab='	'
    # shellcheck disable=SC2086 # the roots hold no space (see above)
    listed=$($CKPT_AS_USER find $roots -mindepth 1 -maxdepth 1 -uid "$CKPT_REQUESTER_UID" -newerct "@$CKPT_LOCAL_SINCE" \
      \( -name "*$nl*" -printf 'line-break %h\n' -o -printf '%y %p\n' \) 2>/dev/null) || true
    candidates=
    while read -r kind path; do
      case $kind in
        '') continue ;;
        line-break) left="${left}stays-created line-break $path$nl"; continue ;;
      esac
      case " $entries " in *" $path "*) continue ;; esac
      case $stays in *" $path$nl"*) continue ;; esac
      case ${path##*/} in link_remap.*) continue ;; esac
      case ${CKPT_RUN_DIR:-} in "$path" | "$path"/*) continue ;; esac
      case $kind:$path in
        *[[:space:]]*) left="${left}stays-created odd-name $path$nl" ;;
        f:* | d:* | l:*) candidates="$candidates $path" ;;
        s:*) left="${left}stays-created socket $path$nl" ;;
        p:*) left="${left}stays-created fifo $path$nl" ;;
        b:* | c:*) left="${left}stays-created device $path$nl" ;;
        *) left="${left}stays-created special $path$nl" ;;
      esac
    done <<EOF_CREATED
$listed
EOF_CREATED
    room=$((limit - total))
    take=
    relative=
    sizes=
    # shellcheck disable=SC2086 # no space in these names (see above)
    [ -z "$candidates" ] || sizes=$($CKPT_AS_USER du -s -B1 -- $candidates 2>/dev/null | sort -n) || true
    while IFS="$tab" read -r bytes path; do
      [ -n "$path" ] || continue
      if [ "$bytes" -le "$room" ]; then
        room=$((room - bytes))
        take="${take}carried-created $bytes $path$nl"
        relative="$relative ${path#/}"
      else
        left="${left}stays-created over-limit:$bytes $path$nl"
      fi
    done <<EOF_SIZES
$sizes
EOF_SIZES
    archive=$CKPT_LOCAL_STATE.tar
    start=0
    [ ! -e "$archive" ] || start=$(stat -c %s "$archive")
    # shellcheck disable=SC2086 # the names hold no space; the command is split on purpose
    if [ -z "$take" ]; then :
    elif (cd / && $CKPT_AS_USER tar --sparse -cf - -- $relative) >>"$archive"; then
      made=$take
    else
      truncate -s "$start" "$archive"
      while read -r _ bytes path; do
        [ -n "$path" ] || continue
        if (cd / && $CKPT_AS_USER tar --sparse -cf - -- "${path#/}") >>"$archive"; then
          made="${made}carried-created $bytes $path$nl"
          start=$(stat -c %s "$archive")
        else
          case $? in 1) why=changed ;; *) why=unreadable ;; esac
          truncate -s "$start" "$archive"
          left="${left}stays-created $why $path$nl"
        fi
      done <<EOF_TAKE
$take
EOF_TAKE
    fi
    [ -s "$archive" ] || rm -f "$archive"
  fi
  printf '%s%s%s%s' "$carried" "$made" "$stays" "$left" >>"$CKPT_LOCAL_STATE"
  set +f
fi

# The content of the files changed in place (protocol/kept-files.ts): the keep tool reads them
# and writes their bases AS THE USER; the index and blocks go to files root opens here. No such
# file, no tool: starting node alone would hold the tree frozen ~0.1 s longer.
if [ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] && [ -s "${CKPT_KEEP_FILES:-/}.list" ]; then
  if ! $CKPT_AS_USER "$CKPT_KEEP_NODE" "$CKPT_KEEP_TOOL" <"$CKPT_KEEP_FILES.list" >"$CKPT_KEEP_DATA" 3>"$CKPT_KEEP_FILES"; then
    refused=1
    echo "Error (ckpt-daemon $check): the content of the files open for writing could not be kept; $outcome" >&2
    exit 1
  fi
  rm -f "$CKPT_KEEP_FILES.list"
fi

# The new job's cgroups (CKPT_JOB_CGROUPS, space-separated): the restored tree goes there before
# it runs an instruction, so that nothing it forks starts (and stays) outside the job. Where criu
# had put it is left in CKPT_RESTORED_CGROUPS for the daemon, which removes the dumped job's
# cgroups that criu recreated. A cgroup that refuses a process is the daemon's to report.
if [ "$CRTOOLS_SCRIPT_ACTION" = pre-resume ] && [ -n "${CKPT_JOB_CGROUPS:-}" ]; then
  cat "/proc/$CRTOOLS_INIT_PID/cgroup" >"$CKPT_RESTORED_CGROUPS"
  for cgroup in $CKPT_JOB_CGROUPS; do
    for pid in $tree; do echo "$pid" 2>/dev/null >"$cgroup/cgroup.procs" || true; done
  done
fi

uid=$CKPT_REQUESTER_UID
gids=" $CKPT_REQUESTER_GIDS "
user_name=${CKPT_REQUESTER_NAME:-}
if [ "$uid" = 0 ]; then exit 0; fi

refuse() { # PID WHY
  refused=1
  echo "Error (ckpt-daemon $check): $who $1 $2; $outcome" >&2
  exit 1
}

in_groups() { case $gids in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# may NEED PATH: may the requester use the inode at PATH for NEED (4 read, 2 write, 1 search),
# by its owner, group and mode?
may() {
  set -- "$1" $(stat -L -c '%u %g %f' "$2")
  mode=$((0x$4))
  if [ "$2" = "$uid" ]; then
    bits=$((mode >> 6 & 7))
  elif in_groups "$3"; then
    bits=$((mode >> 3 & 7))
  else
    bits=$((mode & 7))
  fi
  [ $((bits & $1)) = "$1" ]
}

searchable=' '
# reachable NAME: the requester may search every folder on the way to NAME.
reachable() {
  dir=${1%/*}
  while [ -n "$dir" ]; do
    case $searchable in *" $dir "*) return 0 ;; esac
    may 1 "$dir" || return 1
    searchable="$searchable$dir "
    dir=${dir%/*}
  done
  may 1 /
}

# check_file PID WHAT NAME INODE NEED: NAME is how /proc shows it, INODE a path to it.
check_file() {
  case $3 in
    *" (deleted)")
      # Its other names cannot be checked (which folders lead to them?): it must have none, or be
      # the requester's own file (a POSIX semaphore mapped under the temporary name glibc deleted,
      # restored through criu's link-remap name: the requester's, as it was at the dump).
      [ "$(stat -L -c %h "$4")" = 0 ] || [ "$(stat -L -c %u "$4")" = "$uid" ] ||
        refuse "$1" "has $2 on a deleted name of a file that still has other names and is not $user_name's ($3)" ;;
    *)
      reachable "$3" || refuse "$1" "has $2 on $3, behind a folder uid $uid may not search" ;;
  esac
  may "$5" "$4" || refuse "$1" "has $2 on $3, which uid $uid may not use that way"
}

# check_sched PID STAT: the scheduling of one thread, from its stat line.
check_sched() {
  pid=$1
  read -r line <"$2"
  set -- ${line##*) } # field 3 (state) onwards, past the command name: $1 is field 3
  shift 16            # $1: field 19, nice
  nice=$1
  shift 21                      # $1: field 40, rt_priority; $2: field 41, policy
  case $2 in 1 | 2 | 6) refuse "$pid" "has the real-time scheduling policy $2 (priority $1)" ;; esac
  [ "$nice" -ge 0 ] || refuse "$pid" "has nice $nice"
}

# check_cgroups PID: under OAR's /oar/, only a cgroup of a job of the requester's.
check_cgroups() {
  while IFS=: read -r _ controllers path; do
    case $path in /oar | /oar/*) ;; *) continue ;; esac
    job=${path#/oar/} rest=/
    [ -z "$user_name" ] || case $job in "$user_name"_*) rest=${job#"$user_name"_} ;; esac
    case $rest in '' | */* | *_*) refuse "$1" "is in the cgroup $path ($controllers), not in a job of $user_name" ;; esac
  done <"/proc/$1/cgroup"
}

# has_memory PID: whether its status shows memory (a zombie's, or an exiting process's, does not).
has_memory() {
  while read -r key _; do [ "$key" = VmSize: ] && return 0; done <"/proc/$1/status"
  return 1
}

# The node's namespaces (" NAME:INODE …"), but those a restored tree has of its own by design
# (PID: ckpt-run gives each program one; time: criu restores into a new one). Each process is
# then compared with one stat, not a readlink per namespace: this script is on every user's
# restore path, and every fork costs on a loaded node.
node_ns=' ' node_ns_count=0
for ns in /proc/self/ns/*; do
  case ${ns##*/} in pid | pid_for_children | time | time_for_children) continue ;; esac
  node_ns="$node_ns${ns##*/}:$(stat -L -c %i "$ns") "
  node_ns_count=$((node_ns_count + 1))
done

# check_namespaces PID: every namespace of the node's list is the node's own.
check_namespaces() {
  shared=0
  set -- $(stat -L -c '%n %i' /proc/"$1"/ns/*)
  while [ $# -ge 2 ]; do
    name=${1##*/}
    case $node_ns in
      *" $name:$2 "*) shared=$((shared + 1)) ;;
      *" $name:"*) refuse "$pid" "has a $name namespace of its own" ;;
    esac
    shift 2
  done
  [ "$shared" = "$node_ns_count" ] || refuse "$pid" "has namespaces that cannot be read"
}

root=$(stat -L -c %d:%i /)
for pid in $tree; do
  # A zombie (a shell's child that exited, not yet reaped when the tree froze; criu restores it as
  # one) has no memory, no files, no working directory and runs nothing: nothing to check. The
  # kernel shows its /proc as root's, and criu gives a restored zombie no credentials of its own.
  has_memory "$pid" || continue

  for status in /proc/"$pid"/task/*/status; do
    while read -r key rest; do
      case $key in
        Uid:) for id in $rest; do [ "$id" = "$uid" ] || refuse "$pid" "runs as uid $(echo $rest), not as uid $uid"; done ;;
        Gid: | Groups:) for gid in $rest; do in_groups "$gid" || refuse "$pid" "has group $gid, which uid $uid is not in"; done ;;
        CapInh: | CapPrm: | CapEff: | CapAmb:) [ "$rest" = 0000000000000000 ] || refuse "$pid" "has capabilities ($key $rest)" ;;
      esac
    done <"$status"
  done

  if [ "$CRTOOLS_SCRIPT_ACTION" = post-dump ]; then
    # A process that ran a setuid program keeps no "dumpable" flag: the kernel gives its /proc to root.
    [ "$(stat -c %u "/proc/$pid/status")" = "$uid" ] || refuse "$pid" "is not dumpable (it ran a setuid or setgid program)"
    continue
  fi

  for stat in /proc/"$pid"/task/*/stat; do check_sched "$pid" "$stat"; done
  read -r adjust <"/proc/$pid/oom_score_adj"
  [ "$adjust" -ge 0 ] || refuse "$pid" "has oom_score_adj $adjust"
  check_cgroups "$pid"

  check_namespaces "$pid"

  [ "$(stat -L -c %d:%i "/proc/$pid/root")" = "$root" ] || refuse "$pid" "has another root directory"
  cwd=$(readlink "/proc/$pid/cwd")
  case $cwd in
    # A working directory on procfs whose name is gone: /proc/N of a process that has ended
    # (zdtm's unhashed_proc; root's, with links). It is no file of anyone's: procfs decides each
    # lookup under it when it is made, against the looking process's own credentials, and finds
    # nothing under a task that is gone; holding it gives the requester no access. Only procfs,
    # by the magic of the folder itself (PROC_SUPER_MAGIC 0x9fa0), not by its name: a deleted
    # name of another's real file is still refused (check_file).
    *" (deleted)") [ "$(stat -f -L -c %t "/proc/$pid/cwd")" = 9fa0 ] || check_file "$pid" "its working directory" "$cwd" "/proc/$pid/cwd" 1 ;;
    *) check_file "$pid" "its working directory" "$cwd" "/proc/$pid/cwd" 1 ;;
  esac

  for fd in /proc/"$pid"/fd/*; do
    # a process with no descriptor at all (zdtm's fd test) leaves the pattern as it is: under
    # set -e its readlink ended the check ("the check itself failed")
    [ -L "$fd" ] || continue
    target=$(readlink "$fd")
    case $target in /*) ;; *) continue ;; esac # pipes, sockets, anonymous inodes: no name to open
    flags=0
    while read -r key value; do
      if [ "$key" = flags: ]; then flags=$value; break; fi
    done <"/proc/$pid/fdinfo/${fd##*/}"
    case $((0$flags & 3)) in 0) need=4 ;; 1) need=2 ;; *) need=6 ;; esac
    check_file "$pid" "file descriptor ${fd##*/}" "$target" "$fd" "$need"
  done

  seen='|'
  while read -r range perms _ _ _ name; do
    case $name in /*) ;; *) continue ;; esac
    need=4
    case $perms in ?w?s) need=6 ;; esac
    case $seen in *"|$need$name|"*) continue ;; esac
    seen="$seen$need$name|"
    # map_files names the range without the leading zeros that maps shows
    check_file "$pid" "a mapping" "$name" "/proc/$pid/map_files/$(printf '%x-%x' "0x${range%-*}" "0x${range#*-}")" "$need"
  done <"/proc/$pid/maps"
done
exit 0
