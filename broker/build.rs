//! Generates the gRPC service of broker/proto/runnel.proto (needs `protoc`, Debian's
//! protobuf-compiler, as etcd-client does). Messages are decoded by the strict codec,
//! which refuses fields this version does not know instead of dropping them.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        .codec_path("crate::rpc::codec::StrictCodec")
        // Replicated batches pass through as the buffers the log read, not copies.
        .bytes(".runnel.v1.ReplicaFetchResponse.records")
        .compile_protos(&["proto/runnel.proto"], &["proto"])?;
    Ok(())
}
