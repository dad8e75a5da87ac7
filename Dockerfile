# syntax=docker/dockerfile:1
#
# Tollgate's two images, from one build of the workspace:
#
#   docker build --target controller -t ghcr.io/tollgate-dev/tollgate-controller:0.1.0 .
#   docker build --target proxy      -t ghcr.io/tollgate-dev/tollgate-proxy:0.1.0 .
#
# The controller's `--proxy-image` defaults to ghcr.io/tollgate-dev/tollgate-proxy:0.1.0: tag
# the proxy so, or pass the flag. Build with BuildKit (the default builder since Docker 23);
# the cache mounts below keep the cargo registry and target folder between builds.
#
# Runtime: glibc binaries on distroless/cc, not static musl binaries on scratch.
# - Speed: the proxy allocates on every request from many threads. musl's allocator is much
#   slower there, and the workspace sets no other global allocator; the figures in
#   bench/RESULTS.md were measured with glibc's.
# - C code: ring (rustls's crypto provider) compiles C and assembly with the builder's gcc.
#   Nothing links OpenSSL. The proxy trusts the Mozilla roots compiled into it
#   (webpki-roots), so the image needs no CA bundle.
# - distroless/cc holds glibc, libgcc_s and little else: no shell, no package manager. The
#   builder and the runtime are both Debian 13 (trixie), so the binaries find the glibc they
#   were linked against.
# - Both base images are pinned by tag here. Pin them by digest (`@sha256:...`) where images
#   are built for release.

# The toolchain the workspace is built and tested with (rust-version in Cargo.toml is the
# oldest that builds it: 1.89).
ARG RUST_VERSION=1.95.0
# The workspace version (Cargo.toml, [workspace.package]), for the image labels.
ARG VERSION=0.1.0
# The commit built, for the image labels: --build-arg REVISION=$(git rev-parse HEAD).
ARG REVISION=unknown

# === builder ===
FROM docker.io/library/rust:${RUST_VERSION}-trixie AS builder
WORKDIR /src
COPY . .
# --locked: exactly the dependency versions of Cargo.lock. The target folder is a cache
# mount, so the binaries are copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p tollgate-controller -p tollgate-proxy \
 && install -D -m 0755 -t /out \
      target/release/tollgate-controller target/release/tollgate-proxy

# === runtime base ===
FROM gcr.io/distroless/cc-debian13:nonroot AS runtime
ARG VERSION
ARG REVISION
LABEL org.opencontainers.image.source="https://github.com/tollgate-dev/tollgate" \
      org.opencontainers.image.url="https://github.com/tollgate-dev/tollgate" \
      org.opencontainers.image.documentation="https://github.com/tollgate-dev/tollgate/tree/main/docs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# Numeric, so that Kubernetes' runAsNonRoot can check it (the fleet's pods set runAsNonRoot).
USER 65532:65532

# === controller ===
FROM runtime AS controller
LABEL org.opencontainers.image.title="tollgate-controller" \
      org.opencontainers.image.description="Tollgate's operator: compiles ApiGateway, Route and UsagePlan resources, reports their status and serves routing tables to the proxies"
COPY --from=builder /out/tollgate-controller /usr/local/bin/tollgate-controller
# 8080: /metrics, /healthz, /readyz (--metrics-listen). 9443: the snapshot service, HTTPS
# (--snapshot-listen).
EXPOSE 8080 9443
ENTRYPOINT ["/usr/local/bin/tollgate-controller"]

# === proxy ===
FROM runtime AS proxy
LABEL org.opencontainers.image.title="tollgate-proxy" \
      org.opencontainers.image.description="Tollgate's data plane: serves Amazon API Gateway-style APIs from tables pushed by the controller, or standalone from YAML files"
COPY --from=builder /out/tollgate-proxy /usr/local/bin/tollgate-proxy
# 8080: API traffic (--listen). 8443: HTTPS (--tls-listen, off unless given). 9901: /healthz,
# /readyz, /metrics, /config (--admin-listen; its default 127.0.0.1:9901 is reachable only
# inside the container: the controller's fleet passes --admin-listen 0.0.0.0:9901).
# Fleet mode writes its last good table to --state-dir (an emptyDir in the fleet's pods).
# Standalone: docker run -p 8080:8080 -v "$PWD/deploy/examples/quickstart:/config:ro" IMAGE --config /config
EXPOSE 8080 8443 9901
ENTRYPOINT ["/usr/local/bin/tollgate-proxy"]
