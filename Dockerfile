# The single `outrigger` image: control plane, injector, sidecar proxy and the
# outrigger-init (iptables) step all run from it, e.g.
#   docker build -t ghcr.io/outrigger/outrigger:0.1.0 .
#   docker run --rm ghcr.io/outrigger/outrigger:0.1.0 --help

FROM node:20-bookworm-slim AS build
# The SO_ORIGINAL_DST addon (native/original-dst) is built with node-gyp
# against this image's Node headers (/usr/local/include/node).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# Scripts off: `prepare` would build before the sources are copied.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY native native
RUN OUTRIGGER_REQUIRE_NATIVE=1 node native/original-dst/build.mjs
COPY tsconfig.json tsconfig.build.json tsconfig.plugin-types.json ./
COPY bin bin
COPY src src
COPY sidecar sidecar
COPY injector injector
COPY examples examples
RUN npx tsc -p tsconfig.build.json && npx tsc -p tsconfig.plugin-types.json && npm prune --omit=dev --ignore-scripts

FROM node:20-bookworm-slim
# iptables (nft backend, Debian's default) and ip6tables for `outrigger redirect`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY --from=build /app/bin bin
COPY --from=build /app/native/original-dst/build/Release/original_dst.node native/original-dst/build/Release/original_dst.node
# `outrigger demo` finds its config above dist/ (src/core/find-up.ts).
COPY --from=build /app/examples/demo examples/demo
# The plugin example's sidecar.yaml loads its modules from source (docs/plugins.md; tsx is a runtime dependency).
COPY --from=build /app/examples/plugins examples/plugins
RUN ln -s /app/bin/outrigger.js /usr/local/bin/outrigger
ENV NODE_ENV=production
# The proxy's UID: the injector runs the sidecar as 1337 (excluded from
# capture); outrigger-init overrides it with runAsUser 0.
USER 1337:1337
EXPOSE 15000 15001 15006 15010 15014 15017 15021
ENTRYPOINT ["outrigger"]
