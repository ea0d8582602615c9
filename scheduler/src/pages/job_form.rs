//! A new job from the browser: `GET /jobs/new` (the form) and `POST /ui/jobs`, which
//! turns the form into the API's [`CreateJob`] and submits it through the same function
//! as `POST /api/jobs`, so the same checks and ACL rules apply. On success it goes to
//! the new job's page.

use super::posted::Posted;
use super::{render, PageError, Viewer};
use crate::api::CreateJob;
use crate::http::{self, AppState};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::str::FromStr;

#[derive(Template)]
#[template(path = "job_new.html")]
struct NewJobPage {
    viewer: Viewer,
}

/// `GET /jobs/new`.
pub async fn form(viewer: Viewer) -> Result<Response, PageError> {
    render(&NewJobPage { viewer })
}

/// The job form as posted: every field text, blank meaning the API's default.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct JobForm {
    name: String,
    control_file: String,
    /// Host names, separated by commas or spaces.
    hosts: String,
    /// A label: run on `count` hosts carrying it (a metahost).
    label: String,
    count: String,
    priority: String,
    timeout_mins: String,
    max_runtime_mins: String,
    /// Labels every host must carry, separated by commas or spaces.
    dependencies: String,
    synch_count: String,
    /// A checkbox: present when ticked.
    run_verify: Option<String>,
}

fn bad(message: String) -> PageError {
    PageError::new(StatusCode::BAD_REQUEST, message)
}

/// A list field: items separated by commas or white space.
fn list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A number field: None when blank.
fn number<T: FromStr>(field: &str, text: &str, what: &str) -> Result<Option<T>, PageError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| bad(format!("{field}: expected {what}, got {text:?}")))
}

impl JobForm {
    /// The API's request for this form (the owner left blank: the caller).
    fn into_request(self) -> Result<CreateJob, PageError> {
        const COUNT: &str = "a whole number above 0";
        let label = Some(self.label.trim().to_string()).filter(|l| !l.is_empty());
        let body = CreateJob {
            count: number("count", &self.count, COUNT)?,
            priority: number("priority", &self.priority, "a whole number")?.unwrap_or(0),
            timeout_mins: number("timeout (minutes)", &self.timeout_mins, COUNT)?,
            max_runtime_mins: number("max runtime (minutes)", &self.max_runtime_mins, COUNT)?,
            synch_count: number("synch count", &self.synch_count, COUNT)?,
            dependencies: list(&self.dependencies),
            run_verify: self.run_verify.is_some(),
            label,
            // A textarea sends CRLF line ends; the control file is a program.
            ..CreateJob::new(
                self.name.trim(),
                self.control_file.replace("\r\n", "\n"),
                list(&self.hosts),
                "",
            )
        };
        Ok(body)
    }
}

/// `POST /ui/jobs`: 303 to the new job's page.
pub async fn create(
    State(state): State<AppState>,
    posted: Posted<JobForm>,
) -> Result<Response, PageError> {
    let body = posted.form.into_request()?;
    let id = http::store_job(&state, &posted.caller, body).await?;
    tracing::info!(
        job.id = id,
        user = posted.caller.name(),
        "job submitted from the form"
    );
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_the_api_request_blank_fields_taking_defaults() {
        let form = JobForm {
            name: " nightly ".into(),
            control_file: "echo a\r\necho b\r\n".into(),
            hosts: "host1, host2 host3".into(),
            dependencies: "x86,,big".into(),
            timeout_mins: "30".into(),
            run_verify: Some("on".into()),
            ..JobForm::default()
        };
        let body = form.into_request().unwrap();
        assert_eq!(body.name, "nightly");
        assert_eq!(body.control_file, "echo a\necho b\n");
        assert_eq!(body.hosts, ["host1", "host2", "host3"]);
        assert_eq!(body.dependencies, ["x86", "big"]);
        assert_eq!(body.timeout_mins, Some(30));
        assert_eq!(body.priority, 0);
        assert_eq!(body.label, None);
        assert_eq!(body.synch_count, None);
        assert!(body.run_verify);
        assert_eq!(body.owner, "");
    }

    #[test]
    fn a_bad_number_names_its_field() {
        let form = JobForm {
            priority: "high".into(),
            ..JobForm::default()
        };
        let error = form.into_request().unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(error.message.starts_with("priority:"), "{}", error.message);
    }
}
