//! Compiles `proto/` with protox (pure Rust, no protoc) into prost/tonic code and writes the
//! encoded FileDescriptorSet that reflection and Envoy's transcoder read.

use std::{env, error::Error, fs, path::PathBuf};

/// The proto files of the mesh, relative to `proto/`.
const PROTOS: &[&str] = &[
    "aimesh/identity/v1/identity.proto",
    "aimesh/jobs/v1/jobs.proto",
    "aimesh/notes/v1/notes.proto",
    "aimesh/models/v1/models.proto",
    "aimesh/processing/v1/processing.proto",
    "aimesh/processing/v1/tasks.proto",
    "aimesh/processing/v1/quizzes.proto",
    "aimesh/reports/v1/reports.proto",
    "aimesh/gallery/v1/gallery.proto",
    "aimesh/speech/v1/speech.proto",
    "aimesh/conversation/v1/conversation.proto",
    "aimesh/admin/v1/admin.proto",
    "aimesh/files/v1/files.proto",
    "aimesh/events/v1/events.proto",
    "aimesh/bench/v1/echo.proto",
    // Error details, so Envoy can render `grpc-status-details-bin` as JSON.
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());

    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTOS)?;
    // Encoded by protox itself: re-encoding the prost types would drop the `google.api.http`
    // method options (extensions), which Envoy's transcoder needs.
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out.join("aimesh_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    let fds = compiler.file_descriptor_set();

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // prost's codec, with undecodable requests INVALID_ARGUMENT (src/codec.rs).
        .codec_path("crate::codec::AimeshCodec")
        .compile_fds_with_config(fds, {
            // `prost::Name` on every message: job results are typed `Any`s.
            let mut config = tonic_prost_build::Config::new();
            config.enable_type_names();
            config
        })?;
    Ok(())
}
