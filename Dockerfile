# syntax=docker/dockerfile:1
# One image for every cutover process: `cutover worker --engine pgboss|legacy` (the default
# command below), `cutover dashboard`, and the operator commands (`cutover db migrate`,
# `cutover status`, `cutover rollout ...`). compose.yaml and deploy/k8s/ run it.
#
# Not built on the machines this repository is developed on (they have no container runtime):
# test/scripts/deploy-files.test.ts checks that this file's entry point is the one the tests run
# (dist/cli/main.js) and that the probe port matches compose.yaml and the manifests.

# --- build: every dependency, the Prisma Client generated offline, TypeScript compiled ---------
FROM node:22-slim AS build
WORKDIR /app
# The lock file first, so a source change does not re-run `npm ci`. --ignore-scripts: install
# scripts would build before the sources are here (and embedded Postgres's is for the demo);
# `npm run build` below generates the Prisma Client offline and compiles.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY prisma.config.ts tsconfig.json tsconfig.build.json ./
COPY scripts/prisma-generate.mjs scripts/require-node.mjs ./scripts/
COPY prisma ./prisma
COPY src ./src
RUN npm run build

# --- production: runtime dependencies only, run as a non-root user under an init process -----
FROM node:22-slim AS production
# tini is PID 1: it forwards SIGTERM to node (node as PID 1 would get no default signal
# handling) and reaps the legacy runner's job processes.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: install scripts build or generate, and dist/ is built above. Nothing at run
# time needs the Prisma CLI or embedded Postgres: give DATABASE_URL (without it cutover would
# look for an embedded Postgres, which is the demo's).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# Read at run time: the dashboard's page, the SQL migrations `cutover db migrate` applies
# (relative to the working directory), the rollout plans.
COPY src/dashboard/public ./src/dashboard/public
COPY prisma ./prisma
COPY rollout ./rollout
# The `node` user (uid 1000) of the official image; nothing here writes to /app.
USER node
# The probes' port of the default command (compose.yaml and deploy/k8s use the same).
EXPOSE 8081
# No HEALTHCHECK here: the same image runs the dashboard and one-shot commands, which serve no
# probes. compose.yaml and the Kubernetes manifests probe the workers themselves.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/cli/main.js"]
CMD ["worker", "--engine", "pgboss", "--probe-port", "8081", "--shutdown-timeout", "30"]
