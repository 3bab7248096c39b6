#!/bin/sh
# ckpt-daemon's criu action script (criu restore --action-script). Images are user data, and
# criu restores as root: a crafted image can ask for uid 0, for capabilities, for namespaces
# of its own, or for files that root opens on the user's behalf. At "pre-resume" every
# restored process exists with what the images asked for, and none has run an instruction
# yet. This checks each one against the user who asked for the restore (CKPT_REQUESTER_UID,
# CKPT_REQUESTER_GIDS = that user's groups, space-separated):
#   - credentials: every thread's Uid (real, effective, saved, fs) is the requester's; its
#     Gid and Groups are among the requester's groups; no capabilities (CapInh, CapPrm,
#     CapEff, CapAmb all zero);
#   - namespaces: the node's own, except PID (ckpt-run gives each program one) and time (criu
#     restores into a new one, to keep the monotonic clocks going on);
#   - files: each open file, file mapping and working directory is an inode the requester may
#     use that way by its mode bits (ACLs are not read: they could only allow more), reached
#     through folders the requester may search; an open file whose name was deleted has no
#     other name left; the root directory is the node's.
# criu only logs a failing pre-resume script and resumes the tree anyway. So this script
# kills the tree itself (SIGKILL reaches the stopped tasks), on refusal and on any error of
# its own; criu then cannot detach from the dead tasks and reports the restore as failed.
set -eu
[ "${CRTOOLS_SCRIPT_ACTION:-}" = pre-resume ] || exit 0

tree=
refused=
finish() {
  status=$?
  [ "$status" = 0 ] && return
  [ -n "$refused" ] || echo "Error (ckpt-daemon pre-resume check): the check itself failed (status $status); the restored tree is killed" >&2
  [ -z "$tree" ] || kill -KILL $tree 2>/dev/null || true
}
trap finish EXIT

# The restored tree: the root, then every descendant (any thread may have forked one).
set -- "$CRTOOLS_INIT_PID"
while [ $# -gt 0 ]; do
  pid=$1
  shift
  tree="$tree $pid"
  set -- "$@" $(cat /proc/"$pid"/task/*/children)
done

uid=$CKPT_REQUESTER_UID
gids=" $CKPT_REQUESTER_GIDS "
if [ "$uid" = 0 ]; then exit 0; fi

refuse() { # PID WHY
  refused=1
  echo "Error (ckpt-daemon pre-resume check): restored process $1 $2; the restored tree is killed" >&2
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
      [ "$(stat -L -c %h "$4")" = 0 ] || refuse "$1" "has $2 on a deleted name of a file that still has other names ($3)" ;;
    *)
      reachable "$3" || refuse "$1" "has $2 on $3, behind a folder uid $uid may not search" ;;
  esac
  may "$5" "$4" || refuse "$1" "has $2 on $3, which uid $uid may not use that way"
}

root=$(stat -L -c %d:%i /)
for pid in $tree; do
  for status in /proc/"$pid"/task/*/status; do
    while read -r key rest; do
      case $key in
        Uid:) for id in $rest; do [ "$id" = "$uid" ] || refuse "$pid" "runs as uid $(echo $rest), not as uid $uid"; done ;;
        Gid: | Groups:) for gid in $rest; do in_groups "$gid" || refuse "$pid" "has group $gid, which uid $uid is not in"; done ;;
        CapInh: | CapPrm: | CapEff: | CapAmb:) [ "$rest" = 0000000000000000 ] || refuse "$pid" "has capabilities ($key $rest)" ;;
      esac
    done <"$status"
  done

  for ns in /proc/self/ns/*; do
    name=${ns##*/}
    case $name in pid | pid_for_children | time | time_for_children) continue ;; esac
    [ "$(readlink "/proc/$pid/ns/$name")" = "$(readlink "$ns")" ] || refuse "$pid" "has a $name namespace of its own"
  done

  [ "$(stat -L -c %d:%i "/proc/$pid/root")" = "$root" ] || refuse "$pid" "has another root directory"
  check_file "$pid" "its working directory" "$(readlink "/proc/$pid/cwd")" "/proc/$pid/cwd" 1

  for fd in /proc/"$pid"/fd/*; do
    target=$(readlink "$fd")
    case $target in /*) ;; *) continue ;; esac # pipes, sockets, anonymous inodes: no name to open
    flags=$(sed -n 's/^flags:[[:space:]]*//p' "/proc/$pid/fdinfo/${fd##*/}")
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
