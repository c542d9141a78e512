# syntax=docker/dockerfile:1
# aimesh: one image for every role of the mesh. The same binary serves a service
# (`aimesh serve --services notes`), runs the job worker, applies migrations (`aimesh migrate`),
# checks health (`aimesh health`) and writes Envoy's descriptor set and the REST API's
# documentation (`aimesh descriptor-set --docs DIR`).
#
#   docker build -t aimesh .
#   docker run --rm -p 127.0.0.1:50051:50051 aimesh serve
#
# No HEALTHCHECK here: the image plays several roles (services, worker, one-shot migrations), so
# docker-compose.yml and the Helm chart define the check per role (`aimesh health --addr ...`).

ARG RUST_VERSION=1.95.0

# ---- build ---------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src

# Everything the workspace build reads: manifests, lock file, build flags (.cargo), crates (with their migrations)
# and the protos that aimesh-proto's build script compiles (pure Rust, no protoc needed).
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
COPY crates ./crates
COPY proto ./proto

# Cache mounts keep the downloaded crates and the target directory between builds; the binary
# is copied out of the cached target directory in the same step.
# CMake and make build the libopus and LAME sources the audio crates carry (linked statically, so
# the runtime images need no audio libraries).
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake=3.25.1-1 make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/*

RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p aimesh \
    && install -D -m 0755 target/release/aimesh /out/aimesh \
    && install -d -m 0755 /out/data

# ---- docs ----------------------------------------------------------------------------------
# The REST API's documentation the edge serves at /docs and /api/openapi.json: the committed
# OpenAPI document, its page, and Swagger UI's files from the npm package web/package-lock.json
# pins (what `scripts/openapi --assets DIR` writes). The edge's pods copy them out of the image
# with `aimesh descriptor-set --docs DIR`.
FROM node:22-bookworm-slim AS docs
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
# Install scripts off: Swagger UI's pings its publisher's analytics.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY docs/openapi.json web/docs/index.html /out/docs/
RUN cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css \
       /out/docs/ \
    && cp node_modules/swagger-ui-dist/LICENSE /out/docs/swagger-ui-LICENSE

# ---- worker --------------------------------------------------------------------------------
# The job worker with the engines its jobs run: Apertium with the English<->Spanish pair (note
# translation). A worker claims only the job kinds whose engines it has, so a worker built from
# the slim runtime image below would never claim a translation.
#   docker build --target worker -t aimesh-worker .
#   docker run --rm -e AIMESH_DATABASE_URL=postgres://... aimesh-worker
FROM debian:12.11-slim AS worker
RUN apt-get update \
    && apt-get install -y --no-install-recommends apertium=3.8.3-1+b2 apertium-eng-spa=0.8.1-2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /out/aimesh /usr/local/bin/aimesh
COPY --from=builder --chown=65532:65532 /out/data /var/lib/aimesh
COPY --from=docs /out/docs /usr/share/aimesh/docs
ENV AIMESH_DATA_DIR=/var/lib/aimesh \
    AIMESH_LOG_FORMAT=json
USER 65532:65532
WORKDIR /var/lib/aimesh
ENTRYPOINT ["/usr/local/bin/aimesh"]
CMD ["worker"]

# ---- runtime -------------------------------------------------------------------------------
# Distroless "cc": glibc, libgcc and CA certificates, no shell or package manager; Debian 12 like
# the builder, so the binary's glibc requirement is met. Its nonroot user is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot

LABEL org.opencontainers.image.title="aimesh" \
      org.opencontainers.image.description="A gRPC-first mesh of AI services" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=builder /out/aimesh /usr/local/bin/aimesh
# The data directory (SQLite and local files when no PostgreSQL/object store is configured),
# owned by the runtime user. Mount a volume here to keep it.
COPY --from=builder --chown=65532:65532 /out/data /var/lib/aimesh
# The REST API's documentation, for the edge (`aimesh descriptor-set --docs DIR`).
COPY --from=docs /out/docs /usr/share/aimesh/docs

# Listen on every interface inside the container; log JSON lines; keep local data in the volume.
ENV AIMESH_GRPC_ADDR=0.0.0.0:50051 \
    AIMESH_DATA_DIR=/var/lib/aimesh \
    AIMESH_LOG_FORMAT=json

USER 65532:65532
WORKDIR /var/lib/aimesh
# gRPC, gRPC-web (HTTP/1.1) and grpc.health.v1 on one port.
EXPOSE 50051

ENTRYPOINT ["/usr/local/bin/aimesh"]
CMD ["serve"]
