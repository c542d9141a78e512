//! OCR through Tesseract, and rasterising of PDF pages through poppler's `pdftoppm`, both as
//! subprocesses: each run has a timeout, writes into a private temporary directory, and its
//! output is size-checked before it is read.

use std::{
    fs::File,
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use wait_timeout::ChildExt;

use super::{Budget, Engine, Extracted, Extractor, Format, OcrSettings};
use crate::extract_error::{ExtractError, ExtractResult};

const TESSERACT_INSTALL: &str =
    "the debian packages tesseract-ocr and tesseract-ocr-eng (scripts/tools.d/tesseract.sh)";
const POPPLER_INSTALL: &str = "the debian package poppler-utils (scripts/tools.d/poppler.sh)";

/// Error output kept for an error message.
const STDERR_KEEP: u64 = 2048;

/// Extracts the text of a PNG or JPEG image with Tesseract.
pub(super) fn extract_image(
    bytes: &[u8],
    format: Format,
    extractor: &Extractor,
    budget: &Budget,
) -> ExtractResult<Extracted> {
    let size = imagesize::blob_size(bytes).map_err(|e| ExtractError::Malformed {
        format,
        reason: format!("unreadable image header: {e}"),
    })?;
    let (width, height) = (size.width as u64, size.height as u64);
    if width == 0 || height == 0 {
        return Err(ExtractError::Malformed {
            format,
            reason: "image has no pixels".to_owned(),
        });
    }
    if width.saturating_mul(height) > extractor.limits.max_image_pixels {
        return Err(ExtractError::ImageTooLarge {
            width,
            height,
            limit: extractor.limits.max_image_pixels,
        });
    }
    if !extractor.ocr.enabled {
        return Err(ExtractError::OcrDisabled { pages: 1 });
    }
    let dir = tempfile::tempdir()?;
    let image = dir.path().join(match format {
        Format::Jpeg => "image.jpg",
        _ => "image.png",
    });
    std::fs::write(&image, bytes)?;
    let text = tesseract(&extractor.ocr, &image, budget)?;
    Ok(Extracted::single(
        format,
        Engine::Tesseract,
        text,
        Vec::new(),
    ))
}

/// OCR of one rasterised PDF page.
pub(super) fn pdf_page(
    settings: &OcrSettings,
    pdf: &Path,
    page: u32,
    budget: &Budget,
) -> ExtractResult<String> {
    let dir = tempfile::tempdir()?;
    let prefix = dir.path().join("page");
    let mut command = Command::new(&settings.pdftoppm);
    command
        .args(["-q", "-gray", "-png", "-singlefile"])
        .arg("-f")
        .arg(page.to_string())
        .arg("-l")
        .arg(page.to_string())
        .arg("-scale-to")
        .arg(settings.raster_long_side.to_string())
        .arg(pdf)
        .arg(&prefix);
    run(
        command,
        Tool::Pdftoppm(&settings.pdftoppm),
        dir.path(),
        budget.remaining(settings.tool_timeout),
    )?;
    tesseract(settings, &prefix.with_extension("png"), budget)
}

/// Runs Tesseract on an image file and reads the text it wrote.
fn tesseract(settings: &OcrSettings, image: &Path, budget: &Budget) -> ExtractResult<String> {
    budget.check("ocr")?;
    let dir = image.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = dir.join("ocr");
    let mut command = Command::new(&settings.tesseract);
    command
        .arg(image)
        .arg(&base)
        .args(["-l", &settings.languages, "--psm", "3"])
        // Tesseract's OpenMP threads slow it down on small machines; one page is one thread.
        .env("OMP_THREAD_LIMIT", "1");
    run(
        command,
        Tool::Tesseract(&settings.tesseract),
        &dir,
        budget.remaining(settings.tool_timeout),
    )?;
    let output = base.with_extension("txt");
    let size = std::fs::metadata(&output)
        .map_err(|e| ExtractError::ToolFailed {
            tool: "tesseract",
            message: format!("no output file: {e}"),
        })?
        .len();
    if size > settings.max_output_bytes {
        return Err(ExtractError::ToolOutputTooLarge {
            tool: "tesseract",
            limit: settings.max_output_bytes,
        });
    }
    let bytes = std::fs::read(&output)?;
    let text = String::from_utf8_lossy(&bytes);
    // Tesseract ends pages with a form feed.
    Ok(text
        .trim_end_matches(['\u{c}', '\n', ' '])
        .trim()
        .to_owned())
}

/// The tool a command runs.
#[derive(Clone, Copy)]
enum Tool<'a> {
    Tesseract(&'a PathBuf),
    Pdftoppm(&'a PathBuf),
}

impl Tool<'_> {
    fn name(self) -> &'static str {
        match self {
            Self::Tesseract(_) => "tesseract",
            Self::Pdftoppm(_) => "pdftoppm",
        }
    }

    fn missing(self) -> ExtractError {
        let (program, install) = match self {
            Self::Tesseract(program) => (program, TESSERACT_INSTALL),
            Self::Pdftoppm(program) => (program, POPPLER_INSTALL),
        };
        ExtractError::ToolMissing {
            tool: program.display().to_string(),
            install,
        }
    }
}

/// Runs a command with a timeout; its error output goes to a file in `dir`, of which the start
/// is kept for the error message.
fn run(mut command: Command, tool: Tool<'_>, dir: &Path, timeout: Duration) -> ExtractResult<()> {
    let stderr_path = dir.join(format!("{}.stderr", tool.name()));
    let stderr = File::create(&stderr_path)?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr));
    let mut child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => tool.missing(),
        _ => ExtractError::ToolFailed {
            tool: tool.name(),
            message: format!("could not start: {e}"),
        },
    })?;
    let status = match child.wait_timeout(timeout)? {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ExtractError::TimedOut {
                stage: tool.name(),
                limit: timeout,
            });
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut message = String::new();
    if let Ok(file) = File::open(&stderr_path) {
        let _ = file.take(STDERR_KEEP).read_to_string(&mut message);
    }
    Err(ExtractError::ToolFailed {
        tool: tool.name(),
        message: format!("{status}: {}", message.trim()),
    })
}
