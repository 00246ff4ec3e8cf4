# syncline image: TypeScript compiled in a build stage, run by Node 20 as a non-root user.
#
#   docker build -t syncline .
#   docker run --rm syncline --help
#   docker run --rm -v "$PWD/configs:/app/configs:ro" syncline start --config /app/configs/data-sync-config.yaml

# ---------------------------------------------------------------- build: tsc -> dist/
FROM node:20-slim AS build
WORKDIR /app
# Dependencies first, so this layer is reused while only sources change.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# configs/ and schemas/ may be absent in a fresh checkout; the runtime stage copies both.
RUN npm run build && mkdir -p configs schemas

# ---------------------------------------------------------------- runtime
FROM node:20-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Production dependencies only. package.json also carries "type": "module", which the compiled
# ESM files in dist/ need.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY --from=build /app/configs ./configs
COPY --from=build /app/schemas ./schemas
# The console's stylesheet (src/console/console.ts reads it beside the sources when running dist/).
COPY --from=build /app/src/console/assets ./src/console/assets
# `syncline` on the PATH, for `docker compose exec syncline syncline <command>`: the package's bin,
# which runs dist/ here (no sources, no tsx) with the node flags of its shebang.
COPY bin ./bin
RUN ln -s /app/bin/syncline.js /usr/local/bin/syncline
# The audit trail's local spool (config audit.spoolDir, default audit-spool in the working
# directory): the one place under /app the process writes. Mount a volume there to keep entries
# across a container's replacement while the audit database is down.
RUN mkdir -p /app/audit-spool && chown node:node /app/audit-spool
# The image's built-in unprivileged user (uid 1000); it owns nothing else under /app.
USER node
# Prometheus metrics.
EXPOSE 9464
# A V8 heap that grows by 50 % over what is live after a full GC (the default lets it reach about 4×
# the live data before collecting): peak RSS stays under 300 MB without a hard limit (BENCHMARKS.md).
ENTRYPOINT ["node", "--heap-growing-percent=50", "--max-semi-space-size=8", "dist/src/cli/main.js"]
CMD ["start", "--config", "/app/configs/data-sync-config.yaml"]
