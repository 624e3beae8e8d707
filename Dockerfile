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
# npm ci runs the `prepare` script, which compiles the TypeScript into dist/.
RUN npm ci && npm prune --omit=dev
ENV NODE_ENV=production
VOLUME ["/data"]
# 7001 peers, 7101 clients, 2381 for --listen-metrics (metrics, probes, dashboard: deploy/kubernetes uses it)
EXPOSE 7001 7101 2381
ENTRYPOINT ["node", "/app/bin/raftkv.js"]
CMD ["serve", "--help"]
