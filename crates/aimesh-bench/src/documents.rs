//! Documents through a real mesh: upload throughput (one call, resumable in chunks) over gRPC
//! directly and through Envoy, with `curl`'s raw-body REST uploads through the same Envoy as
//! the HTTP peer (`upload`); the time from uploading a generated 100-page PDF until a search
//! finds it (`searchable`); and SearchDocuments latency at 10,000 and 100,000 stored chunks,
//! beside the exact scan's arithmetic alone (`search`). `scripts/bench-upload` runs all three
//! with Envoy in front.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use aimesh::{Mesh, MeshConfig, ServiceKind, WorkerMode};
use aimesh_models::{EngineKind, ModelsConfig};
use aimesh_processing::domain::{Document, NewChunk, Processed, Status};
use aimesh_proto::{
    google::api::HttpBody,
    identity::v1::{LoginRequest, RegisterRequest, identity_service_client::IdentityServiceClient},
    jobs::v1::{self as jpb, jobs_service_client::JobsServiceClient},
    processing::v1::{self as pb, processing_service_client::ProcessingServiceClient},
};
use anyhow::Context;
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};

const MIB: usize = 1 << 20;

/// Options of the upload throughput benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct UploadOptions {
    /// Size of the uploaded file, in MiB.
    #[arg(long, default_value_t = 50)]
    size_mib: usize,
    /// Runs of each case; the median is printed.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Address the mesh listens on (Envoy's upstream when --edge is given).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Envoy in front of --listen (http://HOST:PORT): the same cases through it, gRPC and REST.
    #[arg(long)]
    edge: Option<String>,
    /// The curl executable of the REST peer.
    #[arg(long, default_value = "curl")]
    curl: String,
    /// Only write the descriptor set Envoy's transcoder reads to this file and exit.
    #[arg(long)]
    write_descriptor_set: Option<PathBuf>,
}

/// Options of the upload-to-searchable benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct SearchableOptions {
    /// Pages of the generated PDF.
    #[arg(long, default_value_t = 100)]
    pages: usize,
    /// The models directory holding all-minilm-l6-v2.
    #[arg(long, env = "AIMESH_MODELS_DIR")]
    models_dir: PathBuf,
}

/// Options of the search latency benchmark.
#[derive(Debug, clap::Args)]
pub(crate) struct SearchOptions {
    /// Stored chunks at each measured scale, ascending (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000usize, 100_000])]
    chunks: Vec<usize>,
    /// Searches timed at each scale.
    #[arg(long, default_value_t = 40)]
    queries: usize,
    /// The models directory holding all-minilm-l6-v2.
    #[arg(long, env = "AIMESH_MODELS_DIR")]
    models_dir: PathBuf,
    /// Database of the mesh (default: SQLite in a temporary directory).
    #[arg(long, env = "AIMESH_BENCH_DATABASE_URL")]
    database_url: Option<String>,
}

// === the mesh and its clients ===

#[derive(Clone)]
pub(crate) struct Bearer(pub(crate) MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Client = ProcessingServiceClient<InterceptedService<Channel, Bearer>>;

/// A mesh serving identity, jobs and processing (or the services given) in this process.
pub(crate) struct Running {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) core: aimesh::Core,
    shutdown: tokio_util::sync::CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _data: tempfile::TempDir,
}

impl Running {
    async fn start(
        listen: std::net::SocketAddr,
        models_dir: Option<&Path>,
        worker: bool,
        database_url: Option<String>,
    ) -> anyhow::Result<Self> {
        let services = [
            ServiceKind::Identity,
            ServiceKind::Jobs,
            ServiceKind::Processing,
        ];
        let engines = models_dir.map(|dir| (dir, vec![EngineKind::Embeddings]));
        Self::start_with(listen, engines, worker, database_url, &services, |_| {}).await
    }

    /// Starts `services`, with `engines` loaded from their models directory when given, and
    /// the settings `configure` changes.
    pub(crate) async fn start_with(
        listen: std::net::SocketAddr,
        engines: Option<(&Path, Vec<EngineKind>)>,
        worker: bool,
        database_url: Option<String>,
        services: &[ServiceKind],
        configure: impl FnOnce(&mut MeshConfig),
    ) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let mut config = MeshConfig::for_tests(data.path().to_path_buf(), database_url);
        config.server.grpc_addr = listen;
        config.auth.rate_limit_per_sec = 0;
        config.processing.max_upload_bytes = 64 << 20;
        config.processing.storage_quota_bytes = 64 << 30;
        config.worker.mode = if worker {
            WorkerMode::On
        } else {
            WorkerMode::Off
        };
        if let Some((dir, engines)) = engines {
            let mut models = ModelsConfig::new(dir.to_path_buf());
            models.engines = engines;
            config.models = models;
        }
        configure(&mut config);
        let mesh = Mesh::build(&config, services).await?;
        let addr = mesh.local_addr();
        let core = mesh.core().clone();
        let shutdown = mesh.shutdown_token();
        let server = tokio::spawn(mesh.run_until_stopped());
        Ok(Self {
            addr,
            core,
            shutdown,
            server,
            _data: data,
        })
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.server.await??;
        Ok(())
    }
}

pub(crate) async fn channel(url: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())?.connect().await?)
}

fn client(channel: &Channel, bearer: &MetadataValue<Ascii>) -> Client {
    ProcessingServiceClient::with_interceptor(channel.clone(), Bearer(bearer.clone()))
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX)
}

/// Registers the benchmark's user and logs in: its bearer header value and user id.
pub(crate) async fn login(channel: Channel) -> anyhow::Result<(MetadataValue<Ascii>, String)> {
    let mut identity = IdentityServiceClient::new(channel);
    identity
        .register(RegisterRequest {
            username: "bench".into(),
            email: "bench@example.com".into(),
            password: "Load-Test-Secret-42".into(),
            password2: String::new(),
        })
        .await?;
    let login = identity
        .login(LoginRequest {
            email: "bench@example.com".into(),
            username: String::new(),
            password: "Load-Test-Secret-42".into(),
        })
        .await?
        .into_inner();
    let user = login.user.context("login returns the user")?.id;
    Ok((format!("Bearer {}", login.access).parse()?, user))
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// === upload throughput ===

/// A file of `size` bytes of text lines, its first line naming the run (so no two runs upload
/// the same bytes: an identical re-upload would be recognised and stored no more).
fn file_bytes(size: usize, run: &str) -> Vec<u8> {
    let mut data = format!("{run}\n").into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog while the upload benchmark runs.\n";
    while data.len() < size {
        data.extend_from_slice(line);
    }
    data.truncate(size);
    data
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    OneCall,
    Chunks(usize),
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::OneCall, Mode::Chunks(MIB), Mode::Chunks(4 * MIB)];
}

/// Uploads `data` over gRPC in `mode`; returns the document's id.
async fn grpc_upload(client: &Client, data: &[u8], mode: Mode) -> anyhow::Result<String> {
    let mut client = client.clone();
    let document = match mode {
        Mode::OneCall => {
            client
                .upload_document(pb::UploadDocumentRequest {
                    body: Some(HttpBody {
                        content_type: "text/plain".into(),
                        data: data.to_vec(),
                        extensions: Vec::new(),
                    }),
                    filename: "bench.txt".into(),
                    generate_notes: Some(false),
                })
                .await?
                .into_inner()
                .document
        }
        Mode::Chunks(chunk) => {
            let upload = client
                .create_upload(pb::CreateUploadRequest {
                    filename: "bench.txt".into(),
                    size_bytes: data.len() as i64,
                    content_type: "text/plain".into(),
                    generate_notes: Some(false),
                })
                .await?
                .into_inner()
                .upload
                .context("an upload")?;
            for (i, part) in data.chunks(chunk).enumerate() {
                client
                    .append_upload(pb::AppendUploadRequest {
                        upload_id: upload.id.clone(),
                        offset: (i * chunk) as i64,
                        data: part.to_vec(),
                    })
                    .await?;
            }
            client
                .finish_upload(pb::FinishUploadRequest {
                    upload_id: upload.id,
                })
                .await?
                .into_inner()
                .document
        }
    };
    let document = document.context("a document")?;
    anyhow::ensure!(
        document.size_bytes == data.len() as i64,
        "stored {} bytes",
        document.size_bytes
    );
    Ok(document.id)
}

/// Runs curl with `args` and returns its standard output.
fn curl(curl: &str, args: &[String]) -> anyhow::Result<String> {
    let output = Command::new(curl)
        .args(["-sS", "--fail-with-body"])
        .args(args)
        .output()
        .with_context(|| format!("cannot run {curl}"))?;
    anyhow::ensure!(
        output.status.success(),
        "curl failed: {}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Uploads the file at `path` over REST with curl in `mode` (the chunks of a resumable upload
/// in one curl process, one connection); returns the document's id.
fn curl_upload(
    program: &str,
    edge: &str,
    auth: &str,
    path: &Path,
    size: usize,
    mode: Mode,
    work: &Path,
) -> anyhow::Result<String> {
    let header = format!("authorization: {auth}");
    let response = match mode {
        Mode::OneCall => curl(
            program,
            &[
                "-X".into(),
                "POST".into(),
                "-H".into(),
                header,
                "-H".into(),
                "content-type: text/plain".into(),
                "--data-binary".into(),
                format!("@{}", path.display()),
                format!("{edge}/api/v1/documents?filename=bench.txt&generate_notes=false"),
            ],
        )?,
        Mode::Chunks(chunk) => {
            let created = curl(
                program,
                &[
                    "-X".into(),
                    "POST".into(),
                    "-H".into(),
                    header.clone(),
                    "-H".into(),
                    "content-type: application/json".into(),
                    "--data".into(),
                    format!(
                        r#"{{"filename":"bench.txt","size_bytes":{size},"content_type":"text/plain","generate_notes":false}}"#
                    ),
                    format!("{edge}/api/v1/uploads"),
                ],
            )?;
            let id = json_string(&created, "id").context("the upload's id")?;
            let mut args: Vec<String> = Vec::new();
            for (i, offset) in (0..size).step_by(chunk).enumerate() {
                if i > 0 {
                    args.push("--next".into());
                    args.extend(["-sS".into(), "--fail-with-body".into()]);
                }
                args.extend([
                    "-o".into(),
                    "/dev/null".into(),
                    "-X".into(),
                    "PUT".into(),
                    "-H".into(),
                    header.clone(),
                    "-H".into(),
                    "content-type: application/octet-stream".into(),
                    "--data-binary".into(),
                    format!("@{}", work.join(format!("part-{i}")).display()),
                    format!("{edge}/api/v1/uploads/{id}/content?offset={offset}"),
                ]);
            }
            args.extend([
                "--next".into(),
                "-sS".into(),
                "--fail-with-body".into(),
                "-X".into(),
                "POST".into(),
                "-H".into(),
                header,
                "-H".into(),
                "content-type: application/json".into(),
                "--data".into(),
                "{}".into(),
                format!("{edge}/api/v1/uploads/{id}:finish"),
            ]);
            curl(program, &args)?
        }
    };
    let document = response
        .split("\"document\"")
        .nth(1)
        .context("a document in the answer")?;
    json_string(document, "id").context("the document's id")
}

/// The first `"key":"value"` string value in a JSON text (enough for the answers read here).
fn json_string(text: &str, key: &str) -> Option<String> {
    let start = text.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = text[start..].find('"')?;
    Some(text[start..start + end].to_owned())
}

/// Runs the upload throughput benchmark.
pub(crate) async fn upload(options: UploadOptions) -> anyhow::Result<()> {
    if let Some(path) = &options.write_descriptor_set {
        std::fs::write(path, aimesh_proto::FILE_DESCRIPTOR_SET)?;
        return Ok(());
    }
    let size = options.size_mib * MIB;
    let mesh = Running::start(options.listen, None, false, None).await?;
    let direct = channel(&format!("http://{}", mesh.addr)).await?;
    let (bearer, _) = login(direct.clone()).await?;
    let auth = bearer.to_str()?.to_owned();
    println!(
        "aimesh-bench: {} MiB text file, median of {} runs, MiB/s (processing off: upload only)",
        options.size_mib, options.runs
    );
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    let mut paths = vec![("gRPC direct".to_owned(), direct)];
    if let Some(edge) = &options.edge {
        let through = channel(edge).await?;
        wait_for_edge(&client(&through, &bearer)).await?;
        paths.push(("gRPC through Envoy".to_owned(), through));
    }
    let deleter = client(&paths[0].1, &bearer);
    let mut run = 0;
    for (name, channel) in &paths {
        let processing = client(channel, &bearer);
        let mut figures = Vec::new();
        for mode in Mode::ALL {
            let mut rates = Vec::new();
            for _ in 0..options.runs {
                run += 1;
                let data = file_bytes(size, &format!("run {run}"));
                let began = Instant::now();
                let id = grpc_upload(&processing, &data, mode).await?;
                rates.push(options.size_mib as f64 / began.elapsed().as_secs_f64());
                delete(&deleter, id).await?;
            }
            figures.push(median(rates));
        }
        rows.push((name.clone(), figures));
    }
    if let Some(edge) = &options.edge {
        let work = tempfile::tempdir()?;
        let file = work.path().join("bench.txt");
        let mut figures = Vec::new();
        for mode in Mode::ALL {
            let mut rates = Vec::new();
            for _ in 0..options.runs {
                run += 1;
                let data = file_bytes(size, &format!("run {run}"));
                std::fs::write(&file, &data)?;
                if let Mode::Chunks(chunk) = mode {
                    for (i, part) in data.chunks(chunk).enumerate() {
                        std::fs::write(work.path().join(format!("part-{i}")), part)?;
                    }
                }
                let began = Instant::now();
                let id = curl_upload(&options.curl, edge, &auth, &file, size, mode, work.path())?;
                rates.push(options.size_mib as f64 / began.elapsed().as_secs_f64());
                delete(&deleter, id).await?;
            }
            figures.push(median(rates));
        }
        rows.push(("REST through Envoy (curl)".to_owned(), figures));
    }
    println!(
        "{:<28} {:>10} {:>18} {:>18}",
        "path", "one call", "resumable 1 MiB", "resumable 4 MiB"
    );
    for (name, figures) in rows {
        println!(
            "{name:<28} {:>10.1} {:>18.1} {:>18.1}",
            figures[0], figures[1], figures[2]
        );
    }
    mesh.stop().await
}

async fn delete(client: &Client, id: String) -> anyhow::Result<()> {
    client
        .clone()
        .delete_document(pb::DeleteDocumentRequest { id })
        .await?;
    Ok(())
}

/// Waits until calls through the edge reach the mesh (Envoy's health checks pass).
async fn wait_for_edge(client: &Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = client
            .clone()
            .list_documents(pb::ListDocumentsRequest::default())
            .await;
        match answer {
            Ok(_) => return Ok(()),
            Err(status) if Instant::now() > deadline => {
                anyhow::bail!("the edge does not reach the mesh: {status}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

// === upload to searchable ===

/// A PDF of `pages` A4 pages of Helvetica text, each page about a subject of its own with a
/// marker sentence (`page N` in words a search can find).
fn pdf(pages: usize, run: &str) -> anyhow::Result<Vec<u8>> {
    use lopdf::{
        Document as Pdf, Object, Stream,
        content::{Content, Operation},
        dictionary,
    };

    const SUBJECTS: &[&str] = &[
        "volcanoes erupt when magma pressure builds below the crust",
        "tomato plants need full sun and deep watering twice a week",
        "the french revolution began with the storming of the bastille",
        "photosynthesis turns light water and carbon dioxide into sugar",
        "a bridge spreads its load through arches cables and piers",
        "glaciers carve valleys as they slowly move down mountains",
        "the heart pumps blood through arteries veins and capillaries",
        "compound interest grows savings faster the longer they stay",
    ];
    let mut doc = Pdf::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
    });
    let mut kids: Vec<Object> = Vec::new();
    for page in 0..pages {
        let subject = SUBJECTS[page % SUBJECTS.len()];
        let mut lines = vec![format!("{run}. Chapter {} of the study guide.", page + 1)];
        for sentence in 0..40 {
            lines.push(format!(
                "Point {} of chapter {}: {subject}, as the class observed.",
                sentence + 1,
                page + 1
            ));
        }
        if page == pages * 3 / 4 {
            lines.push("The lighthouse keeper polished the great brass lens every night.".into());
        }
        let mut operations = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 10.into()]),
            Operation::new("TL", vec![14.into()]),
            Operation::new("Td", vec![40.into(), 800.into()]),
        ];
        for line in &lines {
            operations.push(Operation::new(
                "Tj",
                vec![Object::string_literal(line.as_str())],
            ));
            operations.push(Operation::new("T*", vec![]));
        }
        operations.push(Operation::new("ET", vec![]));
        let content = Content { operations }.encode()?;
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
            "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    doc.compress();
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes)?;
    Ok(bytes)
}

/// Runs the upload-to-searchable benchmark.
pub(crate) async fn searchable(options: SearchableOptions) -> anyhow::Result<()> {
    let mesh = Running::start(
        "127.0.0.1:0".parse()?,
        Some(&options.models_dir),
        true,
        None,
    )
    .await?;
    let direct = channel(&format!("http://{}", mesh.addr)).await?;
    let (bearer, _) = login(direct.clone()).await?;
    let processing = client(&direct, &bearer);
    let mut jobs = JobsServiceClient::with_interceptor(direct.clone(), Bearer(bearer.clone()));
    println!(
        "aimesh-bench: a generated {}-page PDF uploaded over gRPC until SearchDocuments finds a \
         sentence of page {} (embeddings: MiniLM, {} cores)",
        options.pages,
        options.pages * 3 / 4 + 1,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for notes in [false, true] {
        let bytes = pdf(options.pages, &format!("Run with notes {notes}"))?;
        let began = Instant::now();
        let uploaded = processing
            .clone()
            .upload_document(pb::UploadDocumentRequest {
                body: Some(HttpBody {
                    content_type: "application/pdf".into(),
                    data: bytes.clone(),
                    extensions: Vec::new(),
                }),
                filename: "guide.pdf".into(),
                generate_notes: Some(notes),
            })
            .await?
            .into_inner();
        let upload = began.elapsed();
        let document = uploaded.document.context("a document")?;
        let job = uploaded.job.context("a job")?;
        let mut stream = jobs
            .watch_job(jpb::WatchJobRequest { id: job.id })
            .await?
            .into_inner();
        let mut stages: Vec<(String, Duration)> = Vec::new();
        let mut last = jpb::JobState::Unspecified;
        while let Some(message) = stream.message().await? {
            let job = message.job.context("a job")?;
            last = job.state();
            let stage = job
                .progress
                .map(|progress| progress.message)
                .unwrap_or_default();
            if !stage.is_empty() && stages.last().is_none_or(|(s, _)| *s != stage) {
                stages.push((stage, began.elapsed()));
            }
        }
        anyhow::ensure!(last == jpb::JobState::Succeeded, "the job ended {last:?}");
        let processed = began.elapsed();
        let hits = processing
            .clone()
            .search_documents(pb::SearchDocumentsRequest {
                query: "who polished the lens of the lighthouse".into(),
                k: 3,
                document_ids: Vec::new(),
            })
            .await?
            .into_inner()
            .hits;
        let total = began.elapsed();
        let hit = hits.first().context("a hit")?;
        anyhow::ensure!(
            hit.document_id == document.id && hit.passage.contains("lighthouse"),
            "the search did not find the page: {hit:?}"
        );
        let got = processing
            .clone()
            .get_document(pb::GetDocumentRequest {
                id: document.id.clone(),
            })
            .await?
            .into_inner()
            .document
            .context("a document")?;
        println!(
            "notes {:<5}  {:.1} MB, {} pages, {} chunks: upload {:>6.0} ms, processed at {:>7.0} \
             ms, found by search at {:>7.0} ms (hit on page {})",
            if notes { "on" } else { "off" },
            bytes.len() as f64 / 1e6,
            got.page_count,
            got.chunk_count,
            upload.as_secs_f64() * 1e3,
            processed.as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3,
            hit.page
        );
        let stages: Vec<String> = stages
            .iter()
            .map(|(stage, at)| format!("{stage} @ {:.0} ms", at.as_secs_f64() * 1e3))
            .collect();
        println!("             stages: {}", stages.join(", "));
    }
    mesh.stop().await
}

// === search latency ===

/// A unit-length pseudo-random vector (xorshift), deterministic in `seed`.
fn unit_vector(seed: u64, dims: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut vector: Vec<f32> = (0..dims)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    vector.iter_mut().for_each(|x| *x /= norm);
    vector
}

/// Runs the search latency benchmark.
pub(crate) async fn search(options: SearchOptions) -> anyhow::Result<()> {
    const PER_DOCUMENT: usize = 1000;
    const QUERIES: &[&str] = &[
        "how do volcanoes erupt",
        "watering tomato plants",
        "causes of the french revolution",
        "what does photosynthesis produce",
        "how are bridges built",
    ];
    let mesh = Running::start(
        "127.0.0.1:0".parse()?,
        Some(&options.models_dir),
        false,
        options.database_url.clone(),
    )
    .await?;
    let direct = channel(&format!("http://{}", mesh.addr)).await?;
    let (bearer, owner) = login(direct.clone()).await?;
    let processing = client(&direct, &bearer);
    let store = mesh.core.processing.store().clone();
    let dims = mesh
        .core
        .processing
        .embedder()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .dimensions();
    // Passages of a chunk's usual length (about 300 words).
    let passage = "The study guide explains the subject in plain words for the class. ".repeat(45);
    println!(
        "aimesh-bench: SearchDocuments (k = 5) over one user's chunks ({} words each, {dims}-d \
         vectors), {} queries per scale, database {}",
        passage.split_whitespace().count(),
        options.queries,
        if options.database_url.is_some() {
            "given"
        } else {
            "SQLite"
        }
    );
    println!(
        "{:>8}  {:>22}  {:>22}  {:>26}",
        "chunks", "SearchDocuments p50", "SearchDocuments p95", "exact scan in memory p50/p95"
    );
    let mut stored = 0usize;
    let mut memory: Vec<Vec<f32>> = Vec::new();
    for &target in &options.chunks {
        while stored < target {
            let now = aimesh_kit::db::now();
            let document = Document {
                id: uuid::Uuid::now_v7(),
                owner_id: owner.clone(),
                filename: format!("doc-{stored}.txt"),
                content_type: "text/plain".into(),
                size_bytes: 1,
                sha256: aimesh_kit::blob::sha256_hex(stored.to_string().as_bytes()),
                status: Status::Pending,
                failure_reason: None,
                format: None,
                page_count: 0,
                chunk_count: 0,
                text: None,
                generate_notes: false,
                job_id: None,
                created_at: now,
                updated_at: now,
            };
            store.insert(&document).await?;
            let count = PER_DOCUMENT.min(target - stored);
            let chunks: Vec<NewChunk> = (0..count)
                .map(|seq| {
                    let embedding = unit_vector((stored + seq) as u64, dims);
                    memory.push(embedding.clone());
                    NewChunk {
                        seq: seq as i32,
                        page: 1 + (seq / 4) as i32,
                        char_start: 0,
                        char_end: passage.len() as i32,
                        text: passage.clone(),
                        embedding,
                    }
                })
                .collect();
            let processed = Processed {
                format: "text".into(),
                content_type: "text/plain".into(),
                page_count: (count / 4) as i32,
                text: String::new(),
            };
            store
                .store_processed(document.id, &processed, &chunks, None, now)
                .await?;
            stored += count;
        }
        let mut latencies = Vec::new();
        for i in 0..options.queries {
            let began = Instant::now();
            let hits = processing
                .clone()
                .search_documents(pb::SearchDocumentsRequest {
                    query: QUERIES[i % QUERIES.len()].into(),
                    k: 5,
                    document_ids: Vec::new(),
                })
                .await?
                .into_inner()
                .hits;
            latencies.push(began.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(hits.len() == 5, "{} hits", hits.len());
        }
        latencies.sort_by(f64::total_cmp);
        // The arithmetic alone: one dot product per stored vector and a top-k, as the service
        // does after reading the chunks.
        let mut scans = Vec::new();
        for i in 0..options.queries {
            let query = unit_vector(1_000_000_000 + i as u64, dims);
            let began = Instant::now();
            let mut scores: Vec<(f32, usize)> = memory
                .iter()
                .enumerate()
                .map(|(n, v)| (aimesh_ai::embed::dot(&query, v), n))
                .collect();
            scores.select_nth_unstable_by(4, |a, b| b.0.total_cmp(&a.0));
            std::hint::black_box(&scores[..5]);
            scans.push(began.elapsed().as_secs_f64() * 1e3);
        }
        scans.sort_by(f64::total_cmp);
        println!(
            "{stored:>8}  {:>19.1} ms  {:>19.1} ms  {:>14.2} / {:.2} ms",
            percentile(&latencies, 50.0),
            percentile(&latencies, 95.0),
            percentile(&scans, 50.0),
            percentile(&scans, 95.0),
        );
    }
    mesh.stop().await
}
