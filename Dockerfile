# Switchboard's container image: build with the Rust toolchain, run on a small distroless base as a
# non-root user, with the templates and audio prompts beside the binary.
#   docker build -t switchboard:0.1.0 .
# (Not built on the development machines, which have no Docker engine; see README.)

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
# Embedded in the binary at compile time.
COPY config config
COPY templates templates
RUN cargo build --release --locked --bin switchboard \
 && strip target/release/switchboard

FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
COPY templates templates
COPY audio/*.wav audio/
# distroless "nonroot": uid/gid 65532, as the Kubernetes manifests expect.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/switchboard"]
