# raftkv node image. Build: docker build -t raftkv .   (see docker-compose.yml for a 3-node cluster)
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY proto ./proto
COPY dashboard ./dashboard
COPY src ./src
COPY test ./test
COPY bench ./bench
COPY cluster ./cluster
COPY scripts ./scripts
COPY patches ./patches
# npm ci runs the `postinstall` script, which builds classic-level's LevelDB from source with raftkv's fix for
# google/leveldb issue 320 (scripts/build-leveldb.mjs: it needs g++, make and python3, removed again after),
# and the `prepare` script, which compiles the TypeScript into dist/.
RUN apt-get update && apt-get install -y --no-install-recommends g++ make python3 \
  && npm ci && npm prune --omit=dev \
  && apt-get purge -y g++ make python3 && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
VOLUME ["/data"]
# 7001 peers, 7101 clients, 2381 for --listen-metrics (metrics, probes, dashboard: deploy/kubernetes uses it)
EXPOSE 7001 7101 2381
ENTRYPOINT ["node", "/app/bin/raftkv.js"]
CMD ["serve", "--help"]
