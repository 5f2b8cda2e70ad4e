# syntax=docker/dockerfile:1
#
# The pushdial image: the one `pushdial` binary (api, worker, migrate, admin) on a
# distroless base, running as uid 10001. The Helm chart (helm/pushdial) deploys it.
#
#   docker build -t ghcr.io/pushdial/pushdial:0.1.0 .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=… -e REDIS_URL=… ghcr.io/pushdial/pushdial:0.1.0 serve
#
# The build needs no database: sqlx checks the queries against the committed .sqlx/ data.

# Builder and runtime are both Debian 12 (bookworm), so the binary's glibc matches.
ARG RUST_VERSION=1.95
ARG NODE_VERSION=20


FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0
# The whole workspace (see .dockerignore): every member's manifest is needed to resolve it.
COPY . .
# Cache mounts keep the registry and target/ between builds; the binary is copied out of
# the cached target/ since a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p pushdial \
    && install -D -m 0755 target/release/pushdial /out/pushdial

# The web surfaces (console, widget.js, web agent): static files the api serves.
FROM node:${NODE_VERSION}-bookworm-slim AS web
COPY openapi/ /src/openapi/
COPY sdk/ts/ /src/sdk/ts/
COPY web/ /src/web/
WORKDIR /src/web/console
RUN npm ci --no-audit --no-fund && npm run build
WORKDIR /src/web/widget
RUN npm ci --no-audit --no-fund && npm run build
WORKDIR /src/web/agent
RUN npm ci --no-audit --no-fund && npm run build

# glibc, libgcc and CA certificates; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="pushdial" \
      org.opencontainers.image.description="Click-to-call through the caller's own phone"
COPY --from=builder /out/pushdial /usr/local/bin/pushdial
COPY --from=web /src/web/dist /usr/share/pushdial/web
# In a container the listener must not be loopback-only; JSON logs suit log collectors.
ENV PUSHDIAL_LISTEN=0.0.0.0:8080 \
    PUSHDIAL_LOG_FORMAT=json \
    PUSHDIAL_WEB_DIR=/usr/share/pushdial/web
# Numeric, so Kubernetes' runAsNonRoot can verify it without a passwd entry.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/pushdial"]
CMD ["serve"]
