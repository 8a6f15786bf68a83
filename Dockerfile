# One image with both binaries: runnel-broker (the brokers) and runnel-operator (the
# operator, and the brokers' rack init container), non-root, no shell.
#   docker build -t ghcr.io/runnel-dev/runnel:0.1.0 .
# Not built in this repository's CI (no container engine there); hadolint checks it.

FROM rust:1.89-bookworm AS build
# protoc compiles the gRPC contract (broker/proto) and etcd-client's protos. Versions
# come from the pinned base image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin runnel-broker --bin runnel-operator

# glibc and libgcc only: compression codecs are linked statically, TLS is rustls.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/runnel-broker /src/target/release/runnel-operator /usr/local/bin/
USER 10001:10001
EXPOSE 9092 9095 9096 9097
ENTRYPOINT ["/usr/local/bin/runnel-broker"]
