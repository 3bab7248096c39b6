#!/usr/bin/env bash
# build.sh LIST: fetch CRIU's own test suite (zdtm) from the Debian source package of the criu
# that scripts/install-criu.sh installed, and build its library and the static tests named in
# LIST (one a line, '#' comments), for test/e2e/zdtm.e2e.test.ts. Everything lives in a cache
# (CKPT_ZDTM_DIR, default /opt/ckpt-run/zdtm-src): a second run downloads nothing and make finds
# nothing to do. Prints, last, "static=DIR" (where the tests are) and one line per built test:
# NAME<TAB>its command line as zdtm's Makefile starts it (make -n NAME.pid), from the test's folder.
#
# Why the Debian source package: the tests must be the ones of the criu version that runs here
# (4.2.1 from forky), and only Debian packages are reachable from the machines this runs on.
# The source index comes through a private apt setup (like install-criu.sh's, the system's apt
# configuration is not touched) with one deb-src line for the suite criu came from.
# Needs: gcc, make, pkg-config, libaio-dev, libcap-dev (scripts/test-all.sh installs them).
set -euo pipefail
LIST=${1:?usage: build.sh LIST}
CACHE=${CKPT_ZDTM_DIR:-/opt/ckpt-run/zdtm-src}
CRIU_PREFIX=${CKPT_CRIU_PREFIX:-/opt/ckpt-run/criu}
say() { echo "zdtm-build: $*" >&2; }
die() { echo "zdtm-build: ERROR: $*" >&2; exit 1; }

suite=$(sed -n 's/^suite=\([a-z]*\) .*/\1/p' "$CRIU_PREFIX/.installed" 2>/dev/null || true)
[ -n "$suite" ] || die "no private criu in $CRIU_PREFIX (sudo bash scripts/install-criu.sh): its suite names the source package"
version=$("$CRIU_PREFIX/bin/criu" --version | sed -n 's/^Version: *//p')
[ -n "$version" ] || die "$CRIU_PREFIX/bin/criu --version says no version"
SRC=$CACHE/criu-$version
ZDTM=$SRC/test/zdtm

if [ ! -f "$ZDTM/static/Makefile" ]; then
  apt=$CACHE/.apt
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sourceparts" "$apt/prefparts" "$CACHE/download"
  mirror=$(sed -n 's/^deb \[[^]]*\] \([^ ]*\) .*/\1/p' "$CRIU_PREFIX/.apt/sources.list" 2>/dev/null | head -n1)
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror:-http://deb.debian.org/debian} $suite main" >"$apt/sources.list"
  opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/sourceparts"
    -o "Dir::Etc::Preferences=$apt/preferences" -o "Dir::Etc::PreferencesParts=$apt/prefparts"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "Acquire::Languages=none")
  say "fetching the source index of Debian $suite"
  timeout 120 apt-get "${opts[@]}" -qq update >"$apt/update.log" 2>&1 || die "apt-get update of the deb-src list failed (see $apt/update.log)"
  debversion=$(apt-cache "${opts[@]}" showsrc criu | sed -n 's/^Version: //p' | grep "^$version-" | head -n1)
  [ -n "$debversion" ] || die "Debian $suite has no criu source of version $version"
  say "apt-get source --download-only criu=$debversion"
  # Only the upstream tarball is needed (zdtm is upstream's); the Debian part may be missing on a
  # partial mirror, so the result is judged by the tarball, checked against the signed .dsc.
  (cd "$CACHE/download" && timeout 300 apt-get "${opts[@]}" -qq source --download-only "criu=$debversion") >"$apt/source.log" 2>&1 || true
  dsc=$CACHE/download/criu_$debversion.dsc
  orig=$CACHE/download/criu_$version.orig.tar.xz
  [ -f "$dsc" ] && [ -f "$orig" ] || die "apt-get source did not fetch $dsc and $orig (see $apt/source.log): $(tail -n1 "$apt/source.log")"
  want=$(awk -v f="$(basename "$orig")" '/^Checksums-Sha256:/ { on = 1; next } /^[^ ]/ { on = 0 } on && $3 == f { print $1 }' "$dsc")
  [ "$(sha256sum "$orig" | cut -d' ' -f1)" = "$want" ] || die "$orig does not match the sha256 in $dsc"
  rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp"
  tar -xJf "$orig" -C "$SRC.tmp" --strip-components=1 "criu-$version/test/zdtm"
  rm -rf "$SRC" && mv "$SRC.tmp" "$SRC"
  rm -rf "$apt/lists" "$apt/cache"
fi

mapfile -t tests < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$LIST" | grep -v '^$')
[ "${#tests[@]}" -gt 0 ] || die "no test named in $LIST"
started=$SECONDS
make -s -C "$ZDTM/lib" -j"$(nproc)" >"$CACHE/build.log" 2>&1 || die "building zdtm's library failed: $(tail -n3 "$CACHE/build.log")"
make -s -k -C "$ZDTM/static" -j"$(nproc)" "${tests[@]}" >>"$CACHE/build.log" 2>&1 || die "building zdtm's tests failed (see $CACHE/build.log): $(grep -m1 -E 'error|Error' "$CACHE/build.log")"
say "built ${#tests[@]} tests in $ZDTM/static in $((SECONDS - started)) s"
# One make for all command lines (one per test, in order): a make per test took ~30 s more.
mapfile -t commands < <(make -s -n -C "$ZDTM/static" "${tests[@]/%/.pid}" | grep "^\./")
[ "${#commands[@]}" -eq "${#tests[@]}" ] || die "make -n gave ${#commands[@]} command lines for ${#tests[@]} tests"
echo "static=$ZDTM/static"
for i in "${!tests[@]}"; do printf '%s\t%s\n' "${tests[$i]}" "${commands[$i]}"; done
