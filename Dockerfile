# Multi-stage build of the `clientlog` binary for the scaled deployment (docker-compose.yml).
# The build stage compiles with the bundled librdkafka (cmake/perl are not needed: it uses its
# own configure script); the runtime stage carries the binary and CA certificates only.

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so that editing the project's code does not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY src ./src
COPY projections ./projections
COPY schemas ./schemas
COPY tests ./tests
RUN cargo build --release --locked --bin clientlog

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/clientlog --create-home clientlog \
    && install -d -o clientlog -g clientlog /var/lib/clientlog/tokens /var/lib/clientlog/data
COPY --from=build /src/target/release/clientlog /usr/local/bin/clientlog
USER clientlog
WORKDIR /var/lib/clientlog
ENTRYPOINT ["/usr/local/bin/clientlog"]
