CREATE TABLE jobs (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    priority BIGINT NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    deadline DOUBLE PRECISION,
    lease_until DOUBLE PRECISION,
    worker TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    result TEXT,
    error TEXT,
    error_type TEXT,
    error_status BIGINT,
    error_body TEXT,
    inference_time DOUBLE PRECISION,
    webhook_url TEXT,
    retain_s DOUBLE PRECISION);
CREATE INDEX jobs_queue ON jobs(status, priority, seq);
CREATE INDEX jobs_owner_open ON jobs(owner) WHERE status != 'COMPLETED';
CREATE TABLE job_inputs (
    job_id TEXT PRIMARY KEY,
    input TEXT NOT NULL);
CREATE TABLE logs (
    seq BIGSERIAL PRIMARY KEY,
    job_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL);
CREATE INDEX logs_job ON logs(job_id, seq);
CREATE TABLE webhooks (
    job_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    user_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at DOUBLE PRECISION NOT NULL,
    delivered_at DOUBLE PRECISION,
    gave_up BIGINT NOT NULL DEFAULT 0);
CREATE TABLE webhook_attempts (
    seq BIGSERIAL PRIMARY KEY,
    job_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    status BIGINT,
    error TEXT);
CREATE INDEX webhook_attempts_job ON webhook_attempts(job_id, seq);
CREATE TABLE files (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL DEFAULT 0,
    complete BIGINT NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION);
CREATE INDEX files_owner ON files(owner);
