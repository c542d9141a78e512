//! The HTML rendering: one self-contained page (inline CSS, inline SVG chart, no scripts) from a
//! minijinja template with HTML auto-escaping, so nothing a client sends can become markup.

use minijinja::{Environment, Value, context};

use crate::{
    error::{ReportsError, ReportsResult},
    view::ReportView,
};

/// The template's name; its `.html` suffix turns auto-escaping on.
const TEMPLATE: &str = "report.html";

/// Creates the template environment.
pub(crate) fn environment() -> ReportsResult<Environment<'static>> {
    let mut env = Environment::new();
    env.add_template(TEMPLATE, include_str!("../templates/report.html"))
        .map_err(template_error)?;
    Ok(env)
}

/// Renders a report's content as an HTML page.
pub(crate) fn render(env: &Environment<'static>, view: &ReportView) -> ReportsResult<String> {
    let template = env.get_template(TEMPLATE).map_err(template_error)?;
    template
        .render(context! {
            report => Value::from_serialize(view),
            // plotters writes the SVG and escapes the text in it
            chart => Value::from_safe_string(view.chart_svg.clone()),
        })
        .map_err(template_error)
}

fn template_error(error: minijinja::Error) -> ReportsError {
    ReportsError::Internal(format!("html template failed: {error:#}"))
}
