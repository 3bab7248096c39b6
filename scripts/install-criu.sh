#!/usr/bin/env bash
# install-criu.sh — install a CRIU that works on this node, for ckpt-daemon.
#
# Why this script exists (and does not just `apt-get install criu`):
#   * Debian 12's criu 3.17 fails on recent kernels: `criu check` stops with a
#     vDSO error (3.17 does not understand the vDSO layout of new kernels, so
#     it can neither dump nor restore anything).
#   * Debian 13 ("trixie") ships criu 4.1.1, which works. But its binary and
#     its libraries need trixie's glibc, and we must not upgrade the node's
#     libc nor mix suites in the system's apt configuration.
#   * So the trixie .debs (criu and exactly the libraries it loads, glibc
#     included) are downloaded with a PRIVATE apt sources list and private
#     state/cache dirs (the system's apt configuration, lists and dpkg
#     database are not touched), unpacked with `dpkg -x` into a prefix, and
#     criu is always started through trixie's own dynamic loader:
#         $P/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 \
#             --library-path $P/usr/lib/x86_64-linux-gnu $P/usr/sbin/criu ARGS
#     The loader option (not LD_LIBRARY_PATH) keeps the private libraries
#     away from everything criu starts (action scripts, iptables, ...).
#   * If a criu already on PATH passes `criu check` (a node with an older
#     kernel, or a newer distribution), that one is used and nothing is
#     installed, unless --force-trixie.
#
# Usage: see --help (or the usage() text below).
set -euo pipefail

PREFIX=${CKPT_CRIU_PREFIX:-/opt/ckpt-run/criu}
SUITE=trixie
PACKAGES=(criu libcompel1 libc6 libgnutls30t64 libnettle8t64 libhogweed6t64 libunistring5
  libp11-kit0 libtasn1-6 libidn2-0 libgmp10 libnftables1 libnftnl11 libmnl0 libjansson4
  libxtables12 libnl-3-200 libprotobuf-c1 libnet1 libbsd0 libmd0 libuuid1 libffi8 libedit2)
LINK=/usr/local/bin/criu
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHIM_SRC=$SCRIPT_DIR/criu-prlimit-shim.c

usage() {
  cat <<EOF
Usage: sudo bash scripts/install-criu.sh [--with-prlimit-shim] [--force-trixie] [--no-link]

Installs CRIU 4.1.1 from Debian 13 (trixie) into a private prefix, because
Debian 12's criu 3.17 fails \`criu check\` with a vDSO error on recent kernels.

  1. If a criu on PATH (other than ours) passes \`criu check\`, say so and stop
     (exit 0) — unless --force-trixie. With --with-prlimit-shim the shim is
     still built, around that criu.
  2. Download the trixie .debs with \`apt-get download\`, through a private
     sources list and private apt state/cache in PREFIX/.apt (the mirror is the
     one of the system's own Debian sources; the system's apt setup is not
     changed), and unpack them with \`dpkg -x\` into PREFIX.
  3. Write the wrapper PREFIX/bin/criu, which runs criu through trixie's own
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

A second run with everything in place does no network access and only re-runs
the check. Must run as root.

Options:
  --with-prlimit-shim  also build the prlimit shim and its wrapper (see 5)
  --force-trixie       install the trixie criu even if a working criu is on PATH
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

WITH_SHIM=0 FORCE_TRIXIE=0 DO_LINK=1
while [ $# -gt 0 ]; do
  case $1 in
    --with-prlimit-shim) WITH_SHIM=1 ;;
    --force-trixie) FORCE_TRIXIE=1 ;;
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
STAMP_WANT="suite=$SUITE packages=${PACKAGES[*]}"

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
if [ "$FORCE_TRIXIE" = 0 ]; then
  existing=$(command -v criu || true)
  if [ -n "$existing" ]; then
    real=$(readlink -f "$existing")
    if [ "$real" = "$(readlink -f "$WRAPPER" 2>/dev/null || echo "$WRAPPER")" ]; then
      log "criu on PATH is our own wrapper ($existing)"
    elif head -c 4096 "$real" 2>/dev/null | grep -qa "Written by ckpt-run's scripts/install-criu.sh"; then
      log "criu on PATH ($existing) is a wrapper from another install-criu.sh prefix; installing into $PREFIX anyway"
    elif check_criu "$existing"; then
      log "criu on PATH passes 'criu check': $existing ($("$existing" --version 2>/dev/null | head -n1)); nothing to install (use --force-trixie to install the trixie criu anyway)"
      if [ "$WITH_SHIM" = 1 ]; then
        # the system loader also knows --preload (glibc >= 2.30)
        sys_loader=$( (readelf -l "$real" 2>/dev/null || true) | sed -n 's/.*program interpreter: \(.*\)]/\1/p')
        [ -n "$sys_loader" ] || die "$real is not a dynamically linked ELF program: cannot preload the prlimit shim into it (use --force-trixie)"
        build_shim "$sys_loader" "\"$real\""
      fi
      exit 0
    else
      log "criu on PATH ($existing) fails 'criu check': $(grep -i -m1 -E 'error|fail' <<<"$CHECK_OUT" || tail -n1 <<<"$CHECK_OUT")"
    fi
  fi
fi

[ "$(dpkg --print-architecture)" = amd64 ] || die "only amd64 is supported (the loader path is x86_64)"

# --- 2. download and unpack the trixie packages -----------------------------
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_WANT" ] && [ -x "$CRIU_BIN" ] && [ -f "$LOADER" ]; then
  log "trixie criu already unpacked in $PREFIX"
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
  log "downloading criu and its libraries from $mirror $SUITE (private apt lists in $APTDIR)"
  mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/sourceparts" "$APTDIR/prefparts" "$DEBDIR"
  echo "deb [signed-by=$keyring] $mirror $SUITE main" >"$APTDIR/sources.list"
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
  apt-get "${APT_OPTS[@]}" -qq update >"$APTDIR/update.log" 2>&1 \
    || die "apt-get update of the private $SUITE list failed (see $APTDIR/update.log): $(tail -n1 "$APTDIR/update.log")"
  rm -f "$DEBDIR"/*.deb
  (cd "$DEBDIR" && apt-get "${APT_OPTS[@]}" -qq download "${PACKAGES[@]/%/:amd64}") >"$APTDIR/download.log" 2>&1 \
    || die "apt-get download failed (see $APTDIR/download.log): $(grep -m1 -E '^E:' "$APTDIR/download.log" || tail -n1 "$APTDIR/download.log")"
  n=$(find "$DEBDIR" -maxdepth 1 -name '*.deb' | wc -l)
  [ "$n" -eq "${#PACKAGES[@]}" ] || die "expected ${#PACKAGES[@]} .debs in $DEBDIR, got $n"
  log "unpacking $n packages into $PREFIX"
  rm -f "$STAMP"
  for deb in "$DEBDIR"/*.deb; do dpkg -x "$deb" "$PREFIX"; done
  if [ ! -x "$CRIU_BIN" ] || [ ! -f "$LOADER" ]; then die "unpacking did not produce $CRIU_BIN and $LOADER"; fi
  # every library criu loads must come from the prefix, none from the system
  libs=$("$LOADER" --library-path "$LIBDIR" --list "$CRIU_BIN" 2>&1) || die "the trixie loader cannot load criu: $libs"
  leaked=$(grep -v -e "$PREFIX/" -e 'linux-vdso' -e '^[[:space:]]*$' <<<"$libs" || true)
  [ -z "$leaked" ] || die "criu would load libraries from outside $PREFIX: $(tr '\n' ' ' <<<"$leaked")"
  echo "$STAMP_WANT" >"$STAMP"
  rm -rf "$APTDIR/lists" "$APTDIR/cache"   # ~20 MB of indexes, re-fetched if ever needed
  log "installed $("$LOADER" --library-path "$LIBDIR" "$CRIU_BIN" --version 2>/dev/null | head -n1)"
fi

# --- 3. the wrapper ---------------------------------------------------------
mkdir -p "$PREFIX/bin"
if write_if_changed "$WRAPPER" 0755 <<EOF
#!/bin/sh
# Written by ckpt-run's scripts/install-criu.sh: Debian 13's criu 4.1.1, run
# through trixie's own loader and libraries (Debian 12's criu 3.17 fails
# 'criu check' on this kernel with a vDSO error).
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
