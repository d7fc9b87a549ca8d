# Build: docker build -t slotgate .
# Run:   docker run -p 6380:6380 -p 9121:9121 slotgate --listen 0.0.0.0:6380 \
#          --metrics-listen 0.0.0.0:9121 --seed redis-node-0:6379
FROM rust:1.85-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin slotgate

FROM debian:bookworm-slim
RUN useradd --system --no-create-home slotgate
COPY --from=build /src/target/release/slotgate /usr/local/bin/slotgate
COPY config/slotgate.yaml /etc/slotgate/slotgate.yaml
USER slotgate
EXPOSE 6380 9121
ENTRYPOINT ["/usr/local/bin/slotgate"]
CMD ["--config", "/etc/slotgate/slotgate.yaml"]
