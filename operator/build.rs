//! Compiles the broker's gRPC contract (client side only): the proto is the contract
//! between the operator and a cluster, so the operator never links the broker crate.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&["../broker/proto/runnel.proto"], &["../broker/proto"])?;
    Ok(())
}
