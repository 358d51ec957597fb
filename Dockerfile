# The operator image the Helm chart runs (`pcloud operator`, `pcloud node-agent`, `pcloud matchmaker`).
# The development machines have no container engine: the home-cluster tests build the same
# image without one (dev/images.ts operatorImage(): mmdebstrap's Debian bookworm with the
# packages of tools/operator-image/image.env, Node's own binary at /usr/local/bin/node, /app
# as below, user 65532, the same entrypoint). Keep the two in step.
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
# .npmrc: no dependency install scripts (see there)
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.image.json ./
# The runtime floors only (README "Layout"): no dev/ harness, tests, hack/ or bench/.
COPY generated generated
COPY api api
COPY kube kube
COPY operator operator
COPY matchmaker matchmaker
COPY node-agent node-agent
COPY portal portal
COPY cli cli
RUN npx tsc -p tsconfig.image.json && npm prune --omit=dev

FROM debian:bookworm-slim
# The node agent programs links, the VXLAN flood lists and nftables with iproute2 and nft;
# Node's binary links libstdc++ (tools/operator-image/image.env lists the same packages).
RUN apt-get update && apt-get install -y --no-install-recommends iproute2 nftables ca-certificates libstdc++6 \
  && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
# `pcloud match` validates manifests against the CRDs at run time (matchmaker/manifests/validate.ts).
COPY crds/*.yaml crds/
USER 65532:65532
ENTRYPOINT ["node", "--enable-source-maps", "dist/cli/pcloud.js"]
CMD ["operator"]
