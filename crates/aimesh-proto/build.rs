//! Compiles `proto/` with protox (pure Rust, no protoc) into prost/tonic code and writes the
//! encoded FileDescriptorSet that reflection and Envoy's transcoder read.

use std::{env, error::Error, fs, path::PathBuf};

use prost::Message;

/// The proto files of the mesh, relative to `proto/`.
const PROTOS: &[&str] = &[
    "aimesh/identity/v1/identity.proto",
    "aimesh/notes/v1/notes.proto",
    "aimesh/bench/v1/echo.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());

    let fds = protox::compile(PROTOS, [&root])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("aimesh_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
