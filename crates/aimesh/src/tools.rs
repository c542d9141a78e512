//! Command-line helpers of the binary that need no running mesh: installing and listing the
//! pinned models, and checking a server's health (container healthchecks use it).

use std::{path::Path, time::Duration};

use anyhow::Context;

/// Where the container image carries the REST API's documentation (the Dockerfile's `docs`
/// stage puts it there).
pub const DOCS_SOURCE: &str = "/usr/share/aimesh/docs";

/// The files of the REST API's documentation the edge serves (`scripts/openapi --assets`
/// writes them): the OpenAPI document, the page, and Swagger UI's script, style sheet and
/// licence.
pub const DOCS_FILES: &[&str] = &[
    "openapi.json",
    "index.html",
    "swagger-ui-bundle.js",
    "swagger-ui.css",
    "swagger-ui-LICENSE",
];

/// Copies the documentation's files from `source` into `target` (created when missing), for
/// an edge that serves them; fails naming the first file missing.
pub fn copy_docs(source: &Path, target: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(target)
        .with_context(|| format!("failed to create {}", target.display()))?;
    for name in DOCS_FILES {
        let from = source.join(name);
        std::fs::copy(&from, target.join(name)).with_context(|| {
            format!(
                "failed to copy {} (the documentation: scripts/openapi --assets DIR)",
                from.display()
            )
        })?;
    }
    Ok(())
}

/// Installs every pinned model missing from `models_dir` (or failing verification), the
/// optional ones only when named in `optional`, and prepares the derived files (the Whisper
/// conversion), printing what it did. Blocking.
pub fn fetch_models(
    models_dir: &std::path::Path,
    optional: &[String],
    clients: &aimesh_ai::models::Clients,
) -> anyhow::Result<()> {
    use aimesh_ai::models::{self, Fetched};

    for id in optional {
        match models::spec(id) {
            Some(spec) if spec.optional => {}
            Some(_) => anyhow::bail!("{id} is not optional: it is always fetched"),
            None => anyhow::bail!(
                "{id} is not in the catalog; optional models: {}",
                models::CATALOG
                    .iter()
                    .filter(|spec| spec.optional)
                    .map(|spec| spec.id)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    let wanted = models::CATALOG
        .iter()
        .filter(|spec| !spec.optional || optional.iter().any(|id| id == spec.id));
    for spec in wanted {
        let started = std::time::Instant::now();
        let fetched = models::fetch(models_dir, spec, clients)
            .with_context(|| format!("failed to install {}", spec.id))?;
        let what = match fetched {
            Fetched::Present => "present, verified",
            Fetched::Installed => "installed, verified",
        };
        println!(
            "{:<24} {what} ({:.1} s)",
            spec.id,
            started.elapsed().as_secs_f64()
        );
    }
    for id in aimesh_ai::speech::convert::MODEL_IDS {
        let started = std::time::Instant::now();
        let converted = aimesh_ai::speech::prepare_model(models_dir, id)
            .with_context(|| format!("failed to convert the {id} weights"))?;
        let what = if converted {
            "converted, verified"
        } else {
            "converted weights verified"
        };
        println!("{id:<24} {what} ({:.1} s)", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Prints each pinned model, its size and whether it is installed and intact. Fails when
/// any is not, so scripts can test it.
pub fn list_models(models_dir: &std::path::Path) -> anyhow::Result<()> {
    use aimesh_ai::models::{self, ModelError};

    println!(
        "{:<24} {:<14} {:>9}  {:<10} source",
        "model", "capability", "MB", "state"
    );
    let mut broken = 0;
    for spec in models::CATALOG {
        let bytes: u64 = spec.files.iter().map(|file| file.bytes).sum();
        let state = match spec.verify(models_dir) {
            Ok(_) => "ok".to_owned(),
            // Optional models are fetched when named: not having one is no fault.
            Err(ModelError::Missing { .. }) if spec.optional => "optional".to_owned(),
            Err(ModelError::Missing { .. }) => {
                broken += 1;
                "missing".to_owned()
            }
            Err(error) => {
                broken += 1;
                format!("INVALID: {error}")
            }
        };
        println!(
            "{:<24} {:<14} {:>9.1}  {:<10} {}",
            spec.id,
            spec.capability.as_str(),
            bytes as f64 / 1e6,
            state,
            spec.source()
        );
    }
    anyhow::ensure!(
        broken == 0,
        "{broken} model(s) missing or invalid in {}: {}",
        models_dir.display(),
        aimesh_ai::models::FETCH_HINT
    );
    Ok(())
}

/// Asks the server at `addr` for the health of `service` (empty: the whole server), failing
/// unless it is SERVING. With a certificate in `tls` the server is taken to serve TLS: the
/// check speaks TLS, verifies the server as `server_name` and presents that certificate.
pub async fn health_check(
    addr: &str,
    service: &str,
    tls: &aimesh_kit::tls::TlsConfig,
    server_name: &str,
) -> anyhow::Result<()> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };

    let endpoint = match &tls.tls_cert {
        Some(_) => tls.endpoint_named(&format!("https://{addr}"), Some(server_name))?,
        None => tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?,
    };
    let endpoint = endpoint
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(3));
    let mut client = HealthClient::new(endpoint.connect().await?);
    let status = client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?
        .into_inner()
        .status();
    anyhow::ensure!(
        status == ServingStatus::Serving,
        "{addr} reports {}",
        status.as_str_name()
    );
    println!("SERVING");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documentation_is_copied_whole_or_the_missing_file_named() {
        let source = tempfile::tempdir().unwrap();
        for name in DOCS_FILES {
            std::fs::write(source.path().join(name), name.as_bytes()).unwrap();
        }
        let target = tempfile::tempdir().unwrap();
        let docs = target.path().join("edge/docs");
        copy_docs(source.path(), &docs).unwrap();
        for name in DOCS_FILES {
            assert_eq!(std::fs::read(docs.join(name)).unwrap(), name.as_bytes());
        }
        std::fs::remove_file(source.path().join("swagger-ui.css")).unwrap();
        let error = copy_docs(source.path(), &docs).unwrap_err();
        assert!(format!("{error:#}").contains("swagger-ui.css"), "{error:#}");
    }
}
