//! The aimesh reports service (`aimesh.reports.v1`): a student's learning events, validated
//! and analysed, turned into a self-contained HTML page or a PDF document by a job, and kept
//! as a file under the owner's storage quota.
//!
//! Service layers, outermost first: [`api`] (the tonic `ReportsService`, a pure adapter) with
//! [`convert`] (proto <-> domain, request validation), [`service`] (domain logic: drafts and
//! pages of events, submitting rendering jobs, ownership, files, quota, retention),
//! [`store`] (SQL on SQLite or PostgreSQL); [`job`] holds the job handlers (`reports.render`,
//! `reports.purge`) and [`report`] the service's domain types.
//!
//! The rendering core below them: the flow is [`ReportRequest::validate`] → [`Analysis::new`] → [`Renderer::render_analysis`];
//! [`Renderer::render`] runs all three. Both formats show the same content: a summary, a bar
//! chart of events per unit (plotters, SVG), the units in the order the student went through
//! them, counts per unit and per type, and the longest pauses. Rendering is synchronous and
//! CPU-bound; a service runs it off its async runtime.
//!
//! Bounds: a request holds at most [`domain::MAX_EVENTS`] events with limited field lengths;
//! tables show at most [`MAX_TABLE_ROWS`] rows and the chart the [`CHART_MAX_UNITS`] busiest
//! units, so output size and memory stay bounded whatever a client sends. The PDF embeds
//! DejaVu Sans from the crate (`fonts/`, Bitstream Vera licence); nothing is read from the
//! system at run time.

#![forbid(unsafe_code)]

pub mod analysis;
pub mod api;
mod chart;
pub mod convert;
pub mod domain;
pub mod error;
pub mod files;
mod fonts;
mod html;
pub mod job;
mod pdf;
pub mod report;
pub mod service;
pub mod store;
mod view;

pub use analysis::{Analysis, AnalysisOptions};
pub use api::ReportsApi;
pub use chart::CHART_MAX_UNITS;
pub use domain::{Event, Format, ReportRequest, ValidRequest};
pub use error::{FieldViolation, ReportsError, ReportsResult, ReportsServiceError, ServiceResult};
pub use service::{Reports, ReportsConfig};
pub use store::{MIGRATIONS, ReportStore};
pub use view::MAX_TABLE_ROWS;

use minijinja::Environment;

use crate::{fonts::Fonts, view::ReportView};

/// A rendered report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The format of `bytes`.
    pub format: Format,
    /// The HTML page (UTF-8) or the PDF document.
    pub bytes: Vec<u8>,
}

/// Renders reports. Holds the parsed template and the loaded fonts; create one and share it.
#[derive(Clone)]
pub struct Renderer {
    env: Environment<'static>,
    fonts: Fonts,
    options: AnalysisOptions,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Renderer {
    /// Creates a renderer with the default analysis options.
    pub fn new() -> ReportsResult<Self> {
        Self::with_options(AnalysisOptions::default())
    }

    /// Creates a renderer with the given analysis options.
    pub fn with_options(options: AnalysisOptions) -> ReportsResult<Self> {
        Ok(Self {
            env: html::environment()?,
            fonts: Fonts::load()?,
            options,
        })
    }

    /// Returns the analysis options.
    pub fn options(&self) -> &AnalysisOptions {
        &self.options
    }

    /// Validates, analyses and renders a request in the format it asks for.
    pub fn render(&self, request: ReportRequest) -> ReportsResult<Rendered> {
        let request = request.validate()?;
        let analysis = Analysis::new(&request, &self.options);
        let bytes = self.render_analysis(&analysis, request.format)?;
        Ok(Rendered {
            format: request.format,
            bytes,
        })
    }

    /// Renders an analysis in `format`.
    pub fn render_analysis(
        &self,
        analysis: &Analysis<'_>,
        format: Format,
    ) -> ReportsResult<Vec<u8>> {
        match format {
            Format::Html => Ok(self.html(analysis)?.into_bytes()),
            Format::Pdf => self.pdf(analysis),
        }
    }

    /// Renders an analysis as an HTML page.
    pub fn html(&self, analysis: &Analysis<'_>) -> ReportsResult<String> {
        html::render(&self.env, &ReportView::new(analysis)?)
    }

    /// Renders an analysis as a PDF document.
    pub fn pdf(&self, analysis: &Analysis<'_>) -> ReportsResult<Vec<u8>> {
        pdf::render(&self.fonts, &ReportView::new(analysis)?)
    }
}
