#!/usr/bin/env bash
# Builds the redis-server the desktop app ships, from Redis's source release, into
# build/redis/<platform>-<arch>/ (platform and arch spelt as Node's process.platform and
# process.arch: linux-x64, darwin-arm64, win32-x64…), the folder the service searches first
# (electron/manager/redis/redis-binary.ts). Writes redis-server (redis-server.exe plus the
# MSYS2 runtime DLLs it needs on Windows), Redis's COPYING and a VERSION file.
#
#   bash scripts/build-redis.sh                 download, verify, build (skips a build already there)
#   bash scripts/build-redis.sh --tarball FILE  offline: build from a tarball you have
#   bash scripts/build-redis.sh --force         build again even if this version is there
#
# Other options: --out-root DIR (instead of build/redis), --jobs N, --arch x64|arm64 (macOS
# only: build for the other Mac architecture, which the release's one macOS job needs), and
# --version VER with --sha256 HEX (both, with --tarball) to try another release before
# pinning it below.
set -euo pipefail

# Redis 7.2.x is the last line under the BSD 3-clause licence: 7.4 and later are RSALv2/SSPL
# and 8.x adds AGPLv3, none of which an MIT-licensed app can bundle without changing its
# own terms. 7.2 still gets security fixes; 7.2.16 is the latest 7.2 release we could verify.
REDIS_VERSION=7.2.16
# sha256 of redis-7.2.16.tar.gz from download.redis.io, as Redis publishes it in its hash list
# (github.com/redis/redis-hashes); the same value is pinned by independent projects that
# build this release.
REDIS_SHA256=960a8ec15e34ff40e57ff16837b26b33bd81f2da6d24497bb63de532a323a18e
# The fallback mirror is GitHub's archive of the 7.2.16 tag: the same source tree (both are
# `git archive` of the tag) in a differently compressed file, hence its own sha256, the one
# the Docker official image redis:7.2.16 pins. Debian's pool is no mirror for 7.2: Debian
# only ever had 7.2.x in experimental (up to 7.2.5, since removed; it ships 7.0.15 and 8.x),
# and its .orig tarballs are GitHub's tag archives, not the download.redis.io files.
REDIS_ARCHIVE_SHA256=65fa69e66187cb5a4cf625bd587c743507e518749c5a0eec29c4f086495c8a7e

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
die() {
  echo "build-redis: $*" >&2
  exit 1
}

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
out_root="$repo_root/build/redis"
tarball=""
force=no
jobs=""
target_arch=""
version_override=""
sha_override=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tarball) tarball="${2:?--tarball needs a file}"; shift 2 ;;
    --force) force=yes; shift ;;
    --out-root) out_root="${2:?--out-root needs a folder}"; shift 2 ;;
    --jobs) jobs="${2:?--jobs needs a number}"; shift 2 ;;
    --arch) target_arch="${2:?--arch needs x64 or arm64}"; shift 2 ;;
    --version) version_override="${2:?--version needs a version}"; shift 2 ;;
    --sha256) sha_override="${2:?--sha256 needs a digest}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done

pinned=yes
if [ -n "$version_override$sha_override" ]; then
  # An unpinned build is for trying a release before moving the pin, from a file in hand.
  [ -n "$version_override" ] && [ -n "$sha_override" ] || die "--version and --sha256 go together"
  [ -n "$tarball" ] || die "--version/--sha256 build from a file: add --tarball FILE"
  [[ "$version_override" =~ ^7\.[0-9]+\.[0-9]+$ ]] || die "--version must be a Redis 7 release such as 7.2.16 (got '$version_override')"
  REDIS_VERSION="$version_override"
  REDIS_SHA256="$sha_override"
  REDIS_ARCHIVE_SHA256=""
  pinned=no
fi
[[ "$REDIS_SHA256" =~ ^[0-9a-f]{64}$ ]] || die "--sha256 must be 64 lowercase hex digits"
[ -z "$jobs" ] || [[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "--jobs must be a positive number (got '$jobs')"

# Node's names for this machine, the ones redis-binary.ts builds the folder name from.
case "$(uname -s)" in
  Linux) platform=linux ;;
  Darwin) platform=darwin ;;
  MINGW* | MSYS* | CYGWIN*) platform=win32 ;;
  *) die "unsupported system '$(uname -s)' (Linux, macOS and Windows with MSYS2 are)" ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  arm64 | aarch64) arch=arm64 ;;
  armv7l | armv6l) arch=arm ;;
  *) die "unsupported machine '$(uname -m)'" ;;
esac
cross=no
if [ -n "$target_arch" ] && [ "$target_arch" != "$arch" ]; then
  # clang builds for either Mac architecture on either Mac; elsewhere that needs a cross
  # toolchain this script does not set up.
  [ "$platform" = darwin ] || die "--arch $target_arch: building for another architecture works on macOS only (this is $platform-$arch)"
  case "$target_arch" in x64 | arm64) ;; *) die "--arch must be x64 or arm64 (got '$target_arch')" ;; esac
  arch="$target_arch"
  cross=yes
  apple_arch="$([ "$arch" = x64 ] && echo x86_64 || echo arm64)"
fi
exe=redis-server
[ "$platform" = win32 ] && exe=redis-server.exe
dest="$out_root/$platform-$arch"

# Same version from either pinned file: nothing to do.
if [ "$force" = no ] && [ -x "$dest/$exe" ] && [ -f "$dest/VERSION" ] && grep -qx "redis $REDIS_VERSION" "$dest/VERSION" &&
  grep -qxE "sha256 ($REDIS_SHA256${REDIS_ARCHIVE_SHA256:+|$REDIS_ARCHIVE_SHA256})" "$dest/VERSION"; then
  echo "build-redis: Redis $REDIS_VERSION is already in $dest (--force builds it again)"
  exit 0
fi

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

work="$(mktemp -d "${TMPDIR:-/tmp}/build-redis.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The tarball to build and where it came from; its digest is checked before anything is
# unpacked, and a wrong one stops the build with nothing written under $out_root.
source_tar="$work/redis-$REDIS_VERSION.tar.gz"
source_from=""
if [ -n "$tarball" ]; then
  [ -f "$tarball" ] || die "no such tarball: $tarball"
  cp "$tarball" "$source_tar"
  actual="$(sha256_of "$source_tar")"
  if [ "$actual" != "$REDIS_SHA256" ] && { [ -z "$REDIS_ARCHIVE_SHA256" ] || [ "$actual" != "$REDIS_ARCHIVE_SHA256" ]; }; then
    expected="$REDIS_SHA256 (redis-$REDIS_VERSION.tar.gz)"
    [ -n "$REDIS_ARCHIVE_SHA256" ] && expected="$expected or $REDIS_ARCHIVE_SHA256 (GitHub's archive of tag $REDIS_VERSION)"
    die "sha256 mismatch for $tarball: expected $expected, got $actual. Not built; nothing written to $out_root. Use the release tarball from https://download.redis.io/releases/ (or move the pin in scripts/build-redis.sh, see RELEASING.md)."
  fi
  source_from="$tarball"
  REDIS_SHA256="$actual"
else
  command -v curl >/dev/null 2>&1 || die "curl is needed to download Redis (or pass --tarball FILE)"
  for candidate in "https://download.redis.io/releases/redis-$REDIS_VERSION.tar.gz $REDIS_SHA256" \
    "https://github.com/redis/redis/archive/refs/tags/$REDIS_VERSION.tar.gz $REDIS_ARCHIVE_SHA256"; do
    url="${candidate% *}"
    want="${candidate#* }"
    echo "build-redis: downloading $url"
    if ! curl --fail --silent --show-error --location --retry 3 --proto '=https' --output "$source_tar" "$url"; then
      echo "build-redis: could not download $url; trying the next source" >&2
      continue
    fi
    actual="$(sha256_of "$source_tar")"
    # A reachable source serving other bytes is not a network hiccup: stop rather than try on.
    [ "$actual" = "$want" ] || die "sha256 mismatch for $url: expected $want, got $actual. Not built; nothing written to $out_root."
    source_from="$url"
    REDIS_SHA256="$actual"
    break
  done
  [ -n "$source_from" ] || die "Redis $REDIS_VERSION could not be downloaded from any source; download redis-$REDIS_VERSION.tar.gz elsewhere and pass --tarball FILE"
fi
echo "build-redis: $source_from verified (sha256 $REDIS_SHA256)"

top_dir="$(tar -tzf "$source_tar" | sed -n '1{s#/.*##;p;q}')" || true
[ "$top_dir" = "redis-$REDIS_VERSION" ] || die "$source_from does not hold redis-$REDIS_VERSION/ (its first entry is '$top_dir/')"
tar -xzf "$source_tar" -C "$work"
src="$work/redis-$REDIS_VERSION"
# The licence guard behind the version choice: never bundle a Redis that is not BSD-3.
grep -q 'Redistribution and use in source and binary forms' "$src/COPYING" && ! grep -qiE 'source available|affero' "$src/COPYING" ||
  die "redis-$REDIS_VERSION/COPYING is not the BSD 3-clause licence: the app only bundles BSD-licensed Redis (7.2.x)"

if [ -z "$jobs" ]; then
  jobs="$(getconf _NPROCESSORS_ONLN 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)"
fi
# libc malloc rather than the bundled jemalloc: the embedded Redis holds little data, the
# build is the same on every platform, and a jemalloc built on a 4 KiB-page machine aborts
# on arm64 kernels with 16 or 64 KiB pages (some Raspberry Pi and Asahi kernels).
# No TLS (boards speak plain RESP, PROTOCOL.md) and no systemd: no OpenSSL or libsystemd to
# ship or find on the user's machine.
build_settings=(BUILD_TLS=no MALLOC=libc USE_SYSTEMD=no)
make_args=("${build_settings[@]}")
if [ "$platform" = darwin ]; then
  # Run on the macOS versions Electron supports, not only on the build machine's.
  export MACOSX_DEPLOYMENT_TARGET="${MACOSX_DEPLOYMENT_TARGET:-12.0}"
  # Make passes a command-line CC down to the bundled deps (hiredis, lua…) as well.
  [ "$cross" = no ] || make_args+=("CC=clang -arch $apple_arch")
fi
if [ "$platform" = win32 ]; then
  # MSYS2's <dlfcn.h> declares dladdr (used by debug.c) only for _GNU_SOURCE, which Redis
  # defines on Linux alone. A private copy with the guard lifted, first on Redis's include
  # path, avoids editing the MSYS2 installation (what the community Windows builds do).
  if grep -q '__GNU_VISIBLE' /usr/include/dlfcn.h 2>/dev/null; then
    mkdir -p "$work/msys-include"
    sed 's/__GNU_VISIBLE/1/' /usr/include/dlfcn.h >"$work/msys-include/dlfcn.h"
    make_args+=("REDIS_CFLAGS=-I$work/msys-include")
  fi
fi
echo "build-redis: building Redis $REDIS_VERSION for $platform-$arch (make -j$jobs ${make_args[*]})"
make -C "$src" -j"$jobs" "${make_args[@]}" redis-server >"$work/make.log" 2>&1 || {
  tail -n 40 "$work/make.log" >&2
  die "make failed (last lines above)"
}

built="$src/src/$exe"
[ -f "$built" ] || die "the build did not produce src/$exe"
stage="$work/stage"
mkdir -p "$stage"
cp "$built" "$stage/$exe"
cp "$src/COPYING" "$stage/COPYING"
strip "$stage/$exe"
shared_libs=""
case "$platform" in
  linux)
    # Expect the C library family only (libc, libm, libdl, libpthread, librt, the loader);
    # anything else would have to be on the user's machine.
    shared_libs="$(ldd "$stage/$exe" | awk '{print $1}' | sort -u | tr '\n' ' ')"
    others="$(tr ' ' '\n' <<<"$shared_libs" | grep -vE '^(linux-vdso\.so\.1|/?.*ld-linux[^ ]*|lib(c|m|dl|pthread|rt)\.so\.[0-9]+)$' | grep -v '^$' || true)"
    [ -z "$others" ] || die "redis-server links libraries beyond glibc: $others"
    # The oldest glibc it runs on: the newest symbol version it asks for.
    glibc_floor="$(objdump -T "$stage/$exe" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n1 || true)"
    shared_libs="$shared_libs(needs ${glibc_floor:-glibc, version unknown})"
    ;;
  darwin)
    shared_libs="$(otool -L "$stage/$exe" | tail -n +2 | awk '{print $1}' | tr '\n' ' ')"
    # strip invalidates the linker's ad-hoc signature, without which arm64 macOS kills the
    # process; electron-builder signs it again with the Developer ID when signing is set up.
    codesign --force --sign - "$stage/$exe"
    ;;
  win32)
    # An MSYS2 program needs msys-2.0.dll (the POSIX layer) and maybe other msys-*.dll
    # from /usr/bin: copy every one ldd names; Windows's own DLLs are on every machine.
    for dll in $(ldd "$stage/$exe" | awk '{print $3}' | grep -iE '^/usr/bin/msys-.*\.dll$' || true); do
      cp "$dll" "$stage/"
    done
    [ -f "$stage/msys-2.0.dll" ] || die "ldd did not list msys-2.0.dll for $exe; is this an MSYS2 shell?"
    # msys-2.0.dll is MSYS2's Cygwin-derived runtime, under the LGPL: its licence goes with it.
    # MSYS2 has kept it in either of two places.
    if [ -d /usr/share/licenses/msys2-runtime ]; then
      cp -R /usr/share/licenses/msys2-runtime "$stage/msys2-runtime-licence"
    elif [ -f /usr/share/doc/Cygwin/COPYING ]; then
      mkdir -p "$stage/msys2-runtime-licence" && cp /usr/share/doc/Cygwin/COPYING "$stage/msys2-runtime-licence/"
    else
      die "msys-2.0.dll's licence is not in /usr/share/licenses/msys2-runtime or /usr/share/doc/Cygwin; find it and add it here"
    fi
    shared_libs="$(cd "$stage" && ls ./*.dll | tr '\n' ' ')"
    ;;
esac

if [ "$cross" = no ]; then
  reported="$("$stage/$exe" --version)"
elif ! reported="$(arch "-$apple_arch" "$stage/$exe" --version 2>/dev/null)"; then
  # An x64 binary runs on Apple silicon only through Rosetta; without it, check what was built.
  lipo -archs "$stage/$exe" | grep -qw "$apple_arch" || die "the cross build is not a $apple_arch binary"
  reported="Redis server v=$REDIS_VERSION (built for $apple_arch, not run here)"
fi
[[ "$reported" == *"v=$REDIS_VERSION "* ]] || die "the built binary reports '$reported', not v=$REDIS_VERSION"

{
  echo "redis $REDIS_VERSION"
  echo "sha256 $REDIS_SHA256"
  echo "source $source_from"
  [ "$pinned" = yes ] || echo "pinned no (built with --version/--sha256)"
  echo "build make ${build_settings[*]} on $(uname -s) $(uname -m)$([ "$cross" = no ] || echo " for $arch")"
  echo "libraries $shared_libs"
} >"$stage/VERSION"

# Replace the folder only now, so a failed build leaves the previous one as it was.
mkdir -p "$out_root"
rm -rf "$dest.old"
[ ! -e "$dest" ] || mv "$dest" "$dest.old"
mv "$stage" "$dest"
rm -rf "$dest.old"
echo "build-redis: $dest/$exe: $reported"
echo "build-redis: shared libraries: $shared_libs"
