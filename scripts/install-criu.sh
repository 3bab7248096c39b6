#!/usr/bin/env bash
# install-criu.sh — install a CRIU that works on this node, for ckpt-daemon.
#
# Why this script exists (and does not just `apt-get install criu`):
#   * Debian 12's criu 3.17 fails on recent kernels: `criu check` stops with a
#     vDSO error (3.17 does not understand the vDSO layout of new kernels, so
#     it can neither dump nor restore anything).
#   * Debian 13 ("trixie") ships criu 4.1.1, which hangs on every dump on
#     nodes whose hardware breakpoints never trap (a Firecracker VM on kernel
#     6.18, measured 2026-12-04: criu waits for ever for the parasite's
#     rt_sigreturn to hit a debug-register breakpoint) and cannot dump a
#     program holding a socket there (SO_PASSCRED: "Operation not supported").
#     Debian forky/sid's criu 4.2.1 notices broken breakpoints by itself and
#     dumps sockets: it is the default; trixie's stays a fallback (--suite).
#   * Both need a newer glibc than the node's, and we must not upgrade the
#     node's libc nor mix suites in the system's apt configuration.
#   * So the .debs (criu and exactly the libraries it loads, glibc
#     included) are downloaded with a PRIVATE apt sources list and private
#     state/cache dirs (the system's apt configuration, lists and dpkg
#     database are not touched), unpacked with `dpkg -x` into a prefix, and
#     criu is always started through that suite's own dynamic loader:
#         $P/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 \
#             --library-path $P/usr/lib/x86_64-linux-gnu $P/usr/sbin/criu ARGS
#     The loader option (not LD_LIBRARY_PATH) keeps the private libraries
#     away from everything criu starts (action scripts, iptables, ...).
#   * If a criu already on PATH passes `criu check` (a node with an older
#     kernel, or a newer distribution), that one is used and nothing is
#     installed, unless --force-private.
#   * At the end a canary (a `sleep` of its own) is dumped and restored with a
#     bound, to say whether hardware breakpoints trap on this node; ckpt-daemon
#     runs the same probe at start (`ckpt-daemon --check` prints it).
#
# Usage: see --help (or the usage() text below).
set -euo pipefail

PREFIX=${CKPT_CRIU_PREFIX:-/opt/ckpt-run/criu}
# Tried in this order: the first whose index has criu is used (forky is Debian's testing,
# sid may have it alone for a while after a release). --suite picks one.
SUITES=(forky sid trixie)
# criu and exactly the libraries its loader lists (checked below); libnet's soname is the one
# that differs between suites, so it is read from criu's own Depends.
PACKAGES=(criu libcompel1 libc6 libgnutls30t64 libnettle8t64 libhogweed6t64 libunistring5
  libp11-kit0 libtasn1-6 libidn2-0 libgmp10 libnftables1 libnftnl11 libmnl0 libjansson4
  libxtables12 libnl-3-200 libprotobuf-c1 libbsd0 libmd0 libuuid1 libffi8 libedit2)
LINK=/usr/local/bin/criu
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHIM_SRC=$SCRIPT_DIR/criu-prlimit-shim.c

usage() {
  cat <<EOF
Usage: sudo bash scripts/install-criu.sh [--suite NAME] [--with-prlimit-shim] [--force-private] [--no-link]

Installs CRIU into a private prefix: 4.2.1 from Debian forky/sid by default
(trixie's 4.1.1 hangs on every dump where hardware breakpoints do not trap, and
Debian 12's 3.17 fails \`criu check\` with a vDSO error on recent kernels).

  1. If a criu on PATH (other than ours) passes \`criu check\`, say so, run the
     canary (7) and stop (exit 0) — unless --force-private. With
     --with-prlimit-shim the shim is still built, around that criu.
  2. Download the suite's .debs with \`apt-get download\`, through a private
     sources list and private apt state/cache in PREFIX/.apt (the mirror is the
     one of the system's own Debian sources; the system's apt setup is not
     changed), and unpack them with \`dpkg -x\` into PREFIX. Suites tried in
     order: ${SUITES[*]} (the first whose index has criu); --suite picks one.
  3. Write the wrapper PREFIX/bin/criu, which runs criu through the suite's own
     loader: ld-linux-x86-64.so.2 --library-path PREFIX/usr/lib/x86_64-linux-gnu.
  4. Symlink $LINK -> PREFIX/bin/criu (not with --no-link).
  5. With --with-prlimit-shim (opt-in, never the default): build
     scripts/criu-prlimit-shim.c with the system gcc into
     PREFIX/lib/ckpt-prlimit-shim.so and write PREFIX/bin/criu-prlimit-shim, the
     same wrapper plus the loader's --preload of the shim. ONLY for machines
     whose root lacks CAP_SYS_RESOURCE (containers, sandboxes): there a root
     \`criu dump\` of another user's process fails with "Can't get rlimit 0:
     Operation not permitted"; the shim answers such read-only rlimit queries
     from /proc/PID/limits. Real cluster nodes do not need it.
  6. Run \`criu check\` through the wrapper; exit non-zero with one clear line
     unless it says "Looks good".
  7. The canary: dump and restore a \`sleep\` of its own, each bounded to
     ${CANARY_SECONDS} s, first with criu's defaults, then, if the dump stalls, with
     hardware breakpoints off (CRIU_FAULT=130); say which mode works. ckpt-daemon
     probes the same way at start; \`ckpt-daemon --check\` prints its findings.

A second run with everything in place does no network access and only re-runs
the check and the canary. Must run as root.

Options:
  --suite NAME         install criu from this Debian suite (forky, sid, trixie)
  --with-prlimit-shim  also build the prlimit shim and its wrapper (see 5)
  --force-private      install the private criu even if a working criu is on PATH
  --no-link            do not create $LINK
  -h, --help           this text

Environment:
  CKPT_CRIU_PREFIX     install prefix (default /opt/ckpt-run/criu)
  CKPT_CRIU_MIRROR     Debian mirror URL (default: taken from the system's apt
                       sources, e.g. the URI used for the "$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-bookworm}")" suite)
EOF
}

log() { echo "install-criu: $*"; }
die() { echo "install-criu: ERROR: $*" >&2; exit 1; }

CANARY_SECONDS=10
WITH_SHIM=0 FORCE_PRIVATE=0 DO_LINK=1 WANT_SUITE=
while [ $# -gt 0 ]; do
  case $1 in
    --suite)
      [ $# -ge 2 ] || die "--suite needs a name (one of: ${SUITES[*]})"
      WANT_SUITE=$2; shift
      case " ${SUITES[*]} " in *" $WANT_SUITE "*) ;; *) die "unknown suite '$WANT_SUITE' (one of: ${SUITES[*]})" ;; esac ;;
    --with-prlimit-shim) WITH_SHIM=1 ;;
    --force-private|--force-trixie) FORCE_PRIVATE=1 ;;
    --no-link) DO_LINK=0 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done

[ "$(id -u)" -eq 0 ] || die "must run as root (criu check, dump and restore need root)"
case $PREFIX in /*) ;; *) die "CKPT_CRIU_PREFIX must be an absolute path: $PREFIX" ;; esac
PREFIX=${PREFIX%/}

LIBDIR=$PREFIX/usr/lib/x86_64-linux-gnu
LOADER=$LIBDIR/ld-linux-x86-64.so.2
CRIU_BIN=$PREFIX/usr/sbin/criu
WRAPPER=$PREFIX/bin/criu
SHIM_WRAPPER=$PREFIX/bin/criu-prlimit-shim
SHIM_SO=$PREFIX/lib/ckpt-prlimit-shim.so
SHIM_SRC_COPY=$PREFIX/lib/ckpt-prlimit-shim.c
APTDIR=$PREFIX/.apt
DEBDIR=$PREFIX/.debs
STAMP=$PREFIX/.installed

# write_if_changed FILE MODE: stdin -> FILE, only when the content differs
write_if_changed() {
  local f=$1 mode=$2 tmp
  tmp=$(mktemp "$f.XXXXXX")
  cat >"$tmp"
  if [ -f "$f" ] && cmp -s "$tmp" "$f"; then
    rm -f "$tmp"; chmod "$mode" "$f"; return 1
  fi
  chmod "$mode" "$tmp"; mv -f "$tmp" "$f"
}

# check_criu CMD...: run `CMD check`; 0 when it says "Looks good". Output in $CHECK_OUT.
CHECK_OUT=
check_criu() {
  local rc=0
  CHECK_OUT=$("$@" check 2>&1) || rc=$?
  grep -q "Looks good" <<<"$CHECK_OUT" && return 0
  [ -n "$CHECK_OUT" ] || CHECK_OUT="(no output, exit status $rc)"
  return 1
}

# build_shim LOADER REST: build the prlimit shim (if its source changed) and write
# PREFIX/bin/criu-prlimit-shim = exec LOADER --preload SHIM REST "$@", where REST is
# the (already quoted) rest of the loader command line: [--library-path DIR] CRIU.
build_shim() {
  local loader=$1 rest=$2
  [ -f "$SHIM_SRC" ] || die "shim source not found: $SHIM_SRC"
  mkdir -p "$PREFIX/lib" "$PREFIX/bin"
  if [ -f "$SHIM_SO" ] && [ -f "$SHIM_SRC_COPY" ] && cmp -s "$SHIM_SRC" "$SHIM_SRC_COPY"; then
    log "prlimit shim: $SHIM_SO up to date"
  else
    command -v gcc >/dev/null || die "--with-prlimit-shim needs gcc (apt-get install gcc)"
    log "prlimit shim: building $SHIM_SO with $(command -v gcc)"
    gcc -O2 -Wall -Wextra -fPIC -shared -o "$SHIM_SO.tmp" "$SHIM_SRC" -ldl \
      || die "building the prlimit shim failed"
    mv -f "$SHIM_SO.tmp" "$SHIM_SO"
    cp -f "$SHIM_SRC" "$SHIM_SRC_COPY"
  fi
  if write_if_changed "$SHIM_WRAPPER" 0755 <<EOF
#!/bin/sh
# Written by ckpt-run's scripts/install-criu.sh --with-prlimit-shim.
# criu with the prlimit shim preloaded: ONLY for machines whose root lacks
# CAP_SYS_RESOURCE (see $SHIM_SRC_COPY).
exec "$loader" --preload "$SHIM_SO" $rest "\$@"
EOF
  then log "prlimit shim: wrote $SHIM_WRAPPER"; else log "prlimit shim: $SHIM_WRAPPER up to date"; fi
  # the loader only warns ("cannot be preloaded: ignored") when a preload fails
  local out
  out=$("$SHIM_WRAPPER" --version 2>&1) || die "$SHIM_WRAPPER --version failed: $out"
  if grep -qi "preload" <<<"$out"; then die "the prlimit shim does not load: $out"; fi
}

# --- 1. a working criu already on PATH? -------------------------------------
if [ "$FORCE_PRIVATE" = 0 ]; then
  existing=$(command -v criu || true)
  if [ -n "$existing" ]; then
    real=$(readlink -f "$existing")
    if [ "$real" = "$(readlink -f "$WRAPPER" 2>/dev/null || echo "$WRAPPER")" ]; then
      log "criu on PATH is our own wrapper ($existing)"
    elif head -c 4096 "$real" 2>/dev/null | grep -qa "Written by ckpt-run's scripts/install-criu.sh"; then
      log "criu on PATH ($existing) is a wrapper from another install-criu.sh prefix; installing into $PREFIX anyway"
    elif check_criu "$existing"; then
      log "criu on PATH passes 'criu check': $existing ($("$existing" --version 2>/dev/null | head -n1)); nothing to install (use --force-private to install the private criu anyway)"
      if [ "$WITH_SHIM" = 1 ]; then
        # the system loader also knows --preload (glibc >= 2.30)
        sys_loader=$( (readelf -l "$real" 2>/dev/null || true) | sed -n 's/.*program interpreter: \(.*\)]/\1/p')
        [ -n "$sys_loader" ] || die "$real is not a dynamically linked ELF program: cannot preload the prlimit shim into it (use --force-private)"
        build_shim "$sys_loader" "\"$real\""
      fi
      exit 0
    else
      log "criu on PATH ($existing) fails 'criu check': $(grep -i -m1 -E 'error|fail' <<<"$CHECK_OUT" || tail -n1 <<<"$CHECK_OUT")"
    fi
  fi
fi

[ "$(dpkg --print-architecture)" = amd64 ] || die "only amd64 is supported (the loader path is x86_64)"

# --- 2. download and unpack the private criu ---------------------------------
installed_suite=$(sed -n 's/^suite=\([a-z]*\) .*/\1/p' "$STAMP" 2>/dev/null || true)
if [ -n "$WANT_SUITE" ]; then stamp_ok=$([ "$installed_suite" = "$WANT_SUITE" ] && echo 1 || true)
else stamp_ok=$([ -n "$installed_suite" ] && [ "$installed_suite" != "${SUITES[-1]}" ] && echo 1 || true); fi
if [ -n "$stamp_ok" ] && [ -x "$CRIU_BIN" ] && [ -f "$LOADER" ]; then
  log "criu from $installed_suite already unpacked in $PREFIX"
else
  # the mirror: the URI the system's own apt sources use for its Debian release
  mirror=${CKPT_CRIU_MIRROR:-}
  if [ -z "$mirror" ]; then
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || die "no VERSION_CODENAME in /etc/os-release; set CKPT_CRIU_MIRROR"
    srcfiles=()
    [ -f /etc/apt/sources.list ] && srcfiles+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] && srcfiles+=("$f")
    done
    # one-line format: "deb [opts] URI SUITE COMPONENTS..."; deb822: URIs:/Suites: stanzas
    mirror=$(awk -v want="$codename" '
      FILENAME ~ /\.sources$/ {
        if ($0 ~ /^[ \t]*$/) { uris = ""; suites = ""; types = ""; next }
        if ($0 ~ /^[ \t]*#/) next
        if (tolower($1) == "types:") types = $0
        if (tolower($1) == "uris:") uris = $2
        if (tolower($1) == "suites:") suites = " " substr($0, index($0, ":") + 1) " "
        if (uris != "" && suites ~ (" " want " ") && (types == "" || types ~ / deb( |$)/)) { print uris; exit }
        next
      }
      $1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == want) { print $i; exit }
      }' "${srcfiles[@]}")
    [ -n "$mirror" ] || die "found no '$codename' Debian source in the system's apt sources; set CKPT_CRIU_MIRROR"
  fi
  mirror=${mirror%/}
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$keyring" ] || die "missing $keyring (package debian-archive-keyring)"
  mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/sourceparts" "$APTDIR/prefparts" "$DEBDIR"
  chown -R _apt:root "$APTDIR/lists" "$APTDIR/cache" "$DEBDIR" 2>/dev/null || true
  APT_OPTS=(
    -o "Dir::Etc::SourceList=$APTDIR/sources.list"
    -o "Dir::Etc::SourceParts=$APTDIR/sourceparts"
    -o "Dir::Etc::Preferences=$APTDIR/preferences"
    -o "Dir::Etc::PreferencesParts=$APTDIR/prefparts"
    -o "Dir::State::Lists=$APTDIR/lists"
    -o "Dir::Cache=$APTDIR/cache"
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
    -o "APT::Architecture=amd64" -o "APT::Architectures=amd64"
    -o "Acquire::Languages=none"
  )
  suite=
  for try in ${WANT_SUITE:-${SUITES[*]}}; do
    echo "deb [signed-by=$keyring] $mirror $try main" >"$APTDIR/sources.list"
    rm -rf "$APTDIR/lists"/*_dists_* 2>/dev/null || true
    if ! apt-get "${APT_OPTS[@]}" -qq update >"$APTDIR/update.log" 2>&1; then
      log "the private $try list cannot be fetched (see $APTDIR/update.log): $(tail -n1 "$APTDIR/update.log")"
      continue
    fi
    depends=$(apt-cache "${APT_OPTS[@]}" show criu:amd64 2>/dev/null | sed -n 's/^Depends: //p' | head -n1)
    if [ -n "$depends" ]; then suite=$try; break; fi
    log "Debian $try has no criu; trying the next suite"
  done
  [ -n "$suite" ] || die "no criu found in the Debian suites ${WANT_SUITE:-${SUITES[*]}} of $mirror"
  libnet=$(grep -o 'libnet[0-9]\+' <<<"$depends" | head -n1)
  [ -n "$libnet" ] || die "criu in $suite does not depend on a libnetN package (Depends: $depends): this script needs updating"
  packages=("${PACKAGES[@]}" "$libnet")
  log "downloading criu and its libraries from $mirror $suite (private apt lists in $APTDIR)"
  rm -f "$DEBDIR"/*.deb
  (cd "$DEBDIR" && apt-get "${APT_OPTS[@]}" -qq download "${packages[@]/%/:amd64}") >"$APTDIR/download.log" 2>&1 \
    || die "apt-get download failed (see $APTDIR/download.log): $(grep -m1 -E '^E:' "$APTDIR/download.log" || tail -n1 "$APTDIR/download.log")"
  n=$(find "$DEBDIR" -maxdepth 1 -name '*.deb' | wc -l)
  [ "$n" -eq "${#packages[@]}" ] || die "expected ${#packages[@]} .debs in $DEBDIR, got $n"
  log "unpacking $n packages into $PREFIX"
  rm -f "$STAMP"
  # another suite's files must not stay behind: its libraries would mix with this one's
  rm -rf "$PREFIX/usr" "$PREFIX/etc"
  for deb in "$DEBDIR"/*.deb; do dpkg -x "$deb" "$PREFIX"; done
  if [ ! -x "$CRIU_BIN" ] || [ ! -f "$LOADER" ]; then die "unpacking did not produce $CRIU_BIN and $LOADER"; fi
  # every library criu loads must come from the prefix, none from the system
  libs=$("$LOADER" --library-path "$LIBDIR" --list "$CRIU_BIN" 2>&1) || die "the $suite loader cannot load criu: $libs"
  leaked=$(grep -v -e "$PREFIX/" -e 'linux-vdso' -e '^[[:space:]]*$' <<<"$libs" || true)
  [ -z "$leaked" ] || die "criu would load libraries from outside $PREFIX: $(tr '\n' ' ' <<<"$leaked")"
  echo "suite=$suite packages=${packages[*]}" >"$STAMP"
  installed_suite=$suite
  rm -rf "$APTDIR/lists" "$APTDIR/cache"   # ~20 MB of indexes, re-fetched if ever needed
  log "installed $("$LOADER" --library-path "$LIBDIR" "$CRIU_BIN" --version 2>/dev/null | head -n1) from Debian $suite"
fi

# --- 3. the wrapper ---------------------------------------------------------
mkdir -p "$PREFIX/bin"
if write_if_changed "$WRAPPER" 0755 <<EOF
#!/bin/sh
# Written by ckpt-run's scripts/install-criu.sh: Debian $installed_suite's criu, run
# through that suite's own loader and libraries (the node's glibc is older).
exec "$LOADER" --library-path "$LIBDIR" "$CRIU_BIN" "\$@"
EOF
then log "wrote $WRAPPER"; else log "$WRAPPER up to date"; fi

# --- 4. the link on PATH ----------------------------------------------------
if [ "$DO_LINK" = 1 ]; then
  if [ "$(readlink "$LINK" 2>/dev/null || true)" = "$WRAPPER" ]; then
    log "$LINK -> $WRAPPER already"
  else
    if [ -e "$LINK" ] && [ ! -L "$LINK" ]; then die "$LINK exists and is not a symlink; remove it or use --no-link"; fi
    mkdir -p "$(dirname "$LINK")"
    ln -sfn "$WRAPPER" "$LINK"
    log "linked $LINK -> $WRAPPER"
  fi
else
  log "not linking $LINK (--no-link)"
fi

# --- 5. the opt-in prlimit shim ---------------------------------------------
if [ "$WITH_SHIM" = 1 ]; then
  build_shim "$LOADER" "--library-path \"$LIBDIR\" \"$CRIU_BIN\""
fi

# --- 6. criu check ----------------------------------------------------------
if check_criu "$WRAPPER"; then
  log "criu check: Looks good ($WRAPPER)"
else
  die "'criu check' through $WRAPPER does not say \"Looks good\": $(grep -i -m1 -E 'error|fail' <<<"$CHECK_OUT" || tail -n1 <<<"$CHECK_OUT")"
fi

# --- 7. the canary -------------------------------------------------------------
# `criu check` says "Looks good" on nodes where every dump then hangs for ever: criu waits for
# the parasite's rt_sigreturn to hit a hardware breakpoint that the hypervisor never delivers
# (criu issues #162, #107). Only a real dump shows it, bounded, first with criu's defaults, then
# with breakpoints off (CRIU_FAULT=130, criu's FI_NO_BREAKPOINTS: it steps with PTRACE_SYSCALL).
# canary_once ENV-ASSIGNMENT: 0 when a sleep of our own dumps and restores within the bound.
CANARY_DIR=
canary_once() {
  local fault=$1 pid rc=0
  CANARY_DIR=$(mktemp -d /tmp/ckpt-criu-canary.XXXXXX)
  # The canary holds nothing of its caller's: an admin's wrapper (flock, a CI runner) may have
  # left open a descriptor with a file lock, which criu refuses to dump without --file-locks.
  (
    for fd in /proc/self/fd/*; do fd=${fd##*/}; [ "$fd" -le 2 ] || eval "exec $fd>&-"; done
    exec setsid sleep 600
  ) </dev/null >/dev/null 2>&1 &
  pid=$!
  timeout -s KILL "$CANARY_SECONDS" env $fault "$WRAPPER" dump -t "$pid" -D "$CANARY_DIR" -o dump.log -v4 >/dev/null 2>&1 || rc=$?
  # a timed-out dump released it, a good one killed it; reaped, so that the restore can take its
  # PID again
  { kill -KILL "$pid"; wait "$pid"; } 2>/dev/null || true
  [ "$rc" = 0 ] || return 1
  timeout -s KILL "$CANARY_SECONDS" env $fault "$WRAPPER" restore -d -D "$CANARY_DIR" -o restore.log -v4 --pidfile "$CANARY_DIR/pid" >/dev/null 2>&1 || return 2
  kill -KILL "$(cat "$CANARY_DIR/pid")" 2>/dev/null || true
}
canary_cleanup() { [ -z "$CANARY_DIR" ] || rm -rf "$CANARY_DIR"; CANARY_DIR=; }

started=$(date +%s%N)
if canary_once "" 2>/dev/null; then
  ms=$(( ($(date +%s%N) - started) / 1000000 ))
  if grep -q "Hardware breakpoints don't seem to work" "$CANARY_DIR/dump.log"; then
    log "canary: dump and restore with criu's defaults in $ms ms (hardware breakpoints do not trap on this node; this criu noticed and runs without them)"
  else
    log "canary: dump and restore with criu's defaults in $ms ms"
  fi
  canary_cleanup
else
  stage=$(grep -v '^pie:' "$CANARY_DIR/dump.log" 2>/dev/null | tail -n1)
  canary_cleanup
  if canary_once CRIU_FAULT=130 2>/dev/null; then
    log "canary: hardware breakpoints do not trap on this node: criu's dump stalled (last log line: $stage); with breakpoints off (CRIU_FAULT=130) it works. ckpt-daemon finds the same at start and runs criu without them."
    canary_cleanup
  else
    tail_line=$(grep -h -E 'Error|error' "$CANARY_DIR"/*.log 2>/dev/null | tail -n1)
    canary_cleanup
    die "criu is installed but cannot dump and restore a sleep on this node, with or without hardware breakpoints (${tail_line:-no error in its log: it ran out of ${CANARY_SECONDS} s}); run: ckpt-daemon --check"
  fi
fi
