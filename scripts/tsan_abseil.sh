#!/usr/bin/env bash
# Builds Debian's own abseil (the source of the installed libabsl-dev
# version, with Debian's patches) with ThreadSanitizer into PREFIX, for
# scripts/test.sh --tsan.
#   scripts/tsan_abseil.sh PREFIX
#
# Why: TSan sees a lock only if the code taking it is instrumented. Debian's
# libabsl is not, so every hand-off through absl::Mutex, absl::CondVar or
# absl::Notification (ours and gRPC's) looks like a race to it. The libraries
# built here have the same SONAMEs as Debian's; the TSan run puts PREFIX/lib
# on LD_LIBRARY_PATH so that corral and libgrpc both load them.
#
# The source comes from Debian's archive (deb-src of the suites the machine
# already uses), through apt, which checks it against the signed index. A
# finished PREFIX is reused while the installed version stays the same.
set -euo pipefail
prefix=${1:?usage: scripts/tsan_abseil.sh PREFIX}
version=$(dpkg-query -W -f='${Version}' libabsl-dev)
stamp=$prefix/.corral-abseil-version
if [[ -f $stamp && $(cat "$stamp") == "$version" ]]; then
  exit 0
fi

work=$prefix.work
rm -rf "$work" "$prefix"
mkdir -p "$work/apt/lists/partial" "$work/apt/cache" "$work/apt/parts" "$work/dl"
# The same suites as the machine's own apt sources, as deb-src.
cat >"$work/apt/parts/corral-src.sources" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt_opts=(-o Dir::Etc::SourceList=/dev/null
  -o "Dir::Etc::SourceParts=$work/apt/parts"
  -o "Dir::State::Lists=$work/apt/lists"
  -o "Dir::Cache=$work/apt/cache"
  -o APT::Sandbox::User=root)
echo "tsan_abseil: fetching Debian's abseil $version source"
apt-get -qq "${apt_opts[@]}" update
(cd "$work/dl" && apt-get -qq "${apt_opts[@]}" source --download-only "abseil=$version")
# Unpacking applies Debian's patches (among them the SONAME).
dpkg-source -x "$work"/dl/abseil_*.dsc "$work/src" >/dev/null

# As debian/rules builds the shared libraries (C++17, Debian's patches),
# plus TSan.
echo "tsan_abseil: building it with ThreadSanitizer (a few minutes)"
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_STANDARD=17 -DBUILD_SHARED_LIBS=ON -DBUILD_TESTING=OFF \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
  -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
  -DCMAKE_INSTALL_PREFIX="$prefix" "${launcher[@]}" >/dev/null
cmake --build "$work/build" -j "$(nproc)" >/dev/null
cmake --install "$work/build" >/dev/null
echo "$version" >"$stamp"
rm -rf "$work"
echo "tsan_abseil: $prefix/lib ready"
