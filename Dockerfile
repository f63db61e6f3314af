# The hello service as a container image, for people who use Docker. ferry itself needs no
# daemon (`ferry build` assembles the same kind of image directly), but this file builds an
# equivalent one: a static binary in an empty image, run as a non-root user.
#
#   docker build -t hello .
#
# Works with BuildKit and with the classic builder. No `# syntax=` line: BuildKit would pull a
# frontend image for it, and nothing here needs one. CI checks this file with the classic
# builder and a stand-in rust image (scripts/check-infra, docs/infrastructure.md).

ARG RUST_VERSION=1.95.0
ARG TARGET=x86_64-unknown-linux-gnu

# --- builder: dependencies first, so they are cached until Cargo.lock changes -------------
FROM rust:${RUST_VERSION}-bookworm AS builder
ARG TARGET
WORKDIR /src
ENV RUSTFLAGS="-C target-feature=+crt-static"
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY crates/hello/Cargo.toml crates/hello/
COPY crates/ferry/Cargo.toml crates/ferry/
COPY crates/kube-fake/Cargo.toml crates/kube-fake/
RUN for c in hello ferry kube-fake; do mkdir -p crates/$c/src && echo 'fn main() {}' > crates/$c/src/main.rs && touch crates/$c/src/lib.rs; done \
 && cargo build --release --locked -p hello --target ${TARGET} \
 && rm -rf crates/*/src
COPY crates crates
RUN touch crates/hello/src/main.rs crates/hello/src/lib.rs \
 && cargo build --release --locked -p hello --bin hello --target ${TARGET} \
 && cp target/${TARGET}/release/hello /hello

# --- runtime: nothing but the binary ------------------------------------------------------
FROM scratch AS runtime
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="hello" \
      org.opencontainers.image.source="https://github.com/ferry-dev/ferry" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
COPY --from=builder /hello /hello
USER 65532:65532
ENV PORT=8000
EXPOSE 8000
# No HEALTHCHECK: a scratch image has no shell or curl. Kubernetes probes /healthz and /readyz.
# checkov:skip=CKV_DOCKER_2:a scratch image has nothing to run a health check with; Kubernetes probes /healthz and /readyz
ENTRYPOINT ["/hello"]

