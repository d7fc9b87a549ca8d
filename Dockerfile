# slotgate container image: a Rust build stage, then a small Debian runtime running as UID 10001.
#
# Build: docker build -t slotgate .
# Run:   docker run -p 6380:6380 -p 8379:8379 slotgate --seed redis-node-0:6379
#
# The image's config (config/slotgate.docker.yaml, at /etc/slotgate/slotgate.yaml) listens on
# 0.0.0.0:6380 for clients and 0.0.0.0:8379 for /metrics, /livez and /readyz, and names no seed:
# give at least one with --seed (arguments after the image name are appended to the entrypoint),
# or mount a whole config file of your own over /etc/slotgate/slotgate.yaml.

FROM rust:1.89-slim-bookworm AS build
WORKDIR /src
# Cargo reads every target the manifest declares before building any, so benches/ comes along
# even though only the binary is built; tests/ is discovered, not declared, and stays out.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# Cargo.toml keeps line tables in release builds for profiling on a developer's machine; the
# image needs neither them nor the symbol table.
ENV CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=symbols
RUN cargo build --release --locked --bin slotgate

FROM debian:bookworm-slim
# A fixed numeric UID and GID, so that Kubernetes' runAsNonRoot can verify the user and file
# ownership on mounted volumes is predictable; the passwd entry only gives it a name in `ps`.
RUN groupadd --system --gid 10001 slotgate \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin slotgate
COPY --from=build /src/target/release/slotgate /usr/local/bin/slotgate
COPY config/slotgate.docker.yaml /etc/slotgate/slotgate.yaml
USER 10001:10001
EXPOSE 6380 8379
# The runtime image has no curl or wget; bash's /dev/tcp sends the request and the status line
# is read back. /livez, not /readyz: a cluster that lost slots should not make every container
# of a proxy tier unhealthy at once (Kubernetes uses its own probes and ignores this one).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8379 && printf 'GET /livez HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 2 _ status _ <&3 && [ \"$status\" = 200 ]"]
ENTRYPOINT ["/usr/local/bin/slotgate", "--config", "/etc/slotgate/slotgate.yaml"]
