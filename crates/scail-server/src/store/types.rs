//! What the store hands out: jobs (whole, or the status columns only), logs, outcomes, files,
//! webhooks.

use serde_json::Value;

use super::Cols;

/// Where a job is, as fal's status calls name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    InQueue,
    InProgress,
    Completed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::InQueue => "IN_QUEUE",
            JobStatus::InProgress => "IN_PROGRESS",
            JobStatus::Completed => "COMPLETED",
        }
    }

    /// The stored text; an unknown value (a newer schema) reads as queued, never as finished.
    pub(super) fn from_db(s: &str) -> JobStatus {
        match s {
            "IN_PROGRESS" => JobStatus::InProgress,
            "COMPLETED" => JobStatus::Completed,
            _ => JobStatus::InQueue,
        }
    }
}

impl serde::Serialize for JobStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What a status call needs of a job: no input, no result, so a status call costs the same
/// whatever the job carries.
#[derive(Debug, Clone)]
pub struct JobHead {
    pub seq: i64,
    pub id: String,
    pub owner: String,
    pub status: JobStatus,
    pub priority: i64,
    pub error: Option<String>,
    pub error_type: Option<String>,
    pub inference_time: Option<f64>,
    /// The latest progress update a worker recorded (JSON), while running.
    pub progress: Option<String>,
}

/// The columns of [`JobHead`] (a macro so queries stay static strings).
macro_rules! head_columns {
    () => {
        "seq, id, owner, status, priority, error, error_type, inference_time, progress"
    };
}

pub(super) fn head_from_row(r: &impl Cols) -> JobHead {
    JobHead {
        seq: r.int("seq"),
        id: r.text("id"),
        owner: r.text("owner"),
        status: JobStatus::from_db(&r.text("status")),
        priority: r.int("priority"),
        error: r.text_opt("error"),
        error_type: r.text_opt("error_type"),
        inference_time: r.real_opt("inference_time"),
        progress: r.text_opt("progress"),
    }
}

pub(super) fn job_from_row(r: &impl Cols) -> Job {
    let json = |c: &str| {
        r.text_opt(c)
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
    };
    Job {
        seq: r.int("seq"),
        id: r.text("id"),
        owner: r.text("owner"),
        input: json("input").unwrap_or(Value::Null),
        status: JobStatus::from_db(&r.text("status")),
        priority: r.int("priority"),
        deadline: r.real_opt("deadline"),
        started_at: r.real_opt("started_at"),
        result: json("result"),
        error: r.text_opt("error"),
        error_type: r.text_opt("error_type"),
        error_status: r.int_opt("error_status"),
        error_body: json("error_body"),
        inference_time: r.real_opt("inference_time"),
        webhook_url: r.text_opt("webhook_url"),
        cancel_requested: r.int("cancel_requested") != 0,
        attempts: r.int("attempts"),
    }
}

/// A job to queue.
pub struct NewJob<'a> {
    pub id: &'a str,
    pub owner: &'a str,
    pub endpoint: &'a str,
    /// The validated input, serialised (unknown fields already dropped).
    pub input: &'a Value,
    /// 0 normal, 1 low (`x-fal-queue-priority: low`).
    pub priority: i64,
    /// Unix seconds after which the job is stopped (`x-fal-request-timeout`).
    pub deadline: Option<f64>,
    pub webhook_url: Option<&'a str>,
    /// Seconds the finished job is kept (None: the server's retention).
    pub retain_s: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub seq: i64,
    pub id: String,
    pub owner: String,
    /// The validated input (`scail_core::ScailInput`), as stored at submit.
    pub input: Value,
    pub status: JobStatus,
    pub priority: i64,
    pub deadline: Option<f64>,
    pub started_at: Option<f64>,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub error_type: Option<String>,
    pub error_status: Option<i64>,
    pub error_body: Option<Value>,
    pub inference_time: Option<f64>,
    pub webhook_url: Option<String>,
    pub cancel_requested: bool,
    pub attempts: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLine {
    pub message: String,
    pub level: String,
    pub source: &'static str,
    pub timestamp: String,
}

/// How a job ended, as stored.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ok {
        result: Value,
        inference_time: f64,
    },
    Err {
        status: u16,
        error_type: String,
        message: String,
        body: Value,
        inference_time: Option<f64>,
    },
}

#[derive(Debug, Clone)]
pub struct FileRow {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub complete: bool,
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub job_id: String,
    pub url: String,
    pub user_id: String,
    pub body: String,
    pub attempts: i64,
}
