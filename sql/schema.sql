-- YORI audit database, schema version 2. Applied by the service itself at start (PRAGMA
-- user_version = schema version; a version-1 database is rebuilt into this shape, rows kept);
-- WAL mode, so `sqlite3 audit.db "SELECT COUNT(*) FROM audit_events;"` works while YORI writes.
-- Never stored: API keys, Authorization / x-api-key / x-goog-api-key, cookies. Text that comes
-- from a device (model, user agent, path) is cut to a bounded length before it is stored.

CREATE TABLE IF NOT EXISTS audit_events (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp            TEXT    NOT NULL,               -- ISO 8601 UTC, request start
    event_type           TEXT    NOT NULL CHECK (event_type IN ('request', 'block', 'admin', 'approval', 'connection')),
    client_ip            TEXT,
    client_device        TEXT,                           -- from the `devices` config
    endpoint             TEXT,                           -- vendor host, e.g. api.openai.com
    vendor               TEXT,                           -- openai | anthropic | gemini | mistral | openai_compatible
    http_method          TEXT,
    http_path            TEXT,                           -- vendor path, prefix stripped, no query
    model                TEXT,
    stream               INTEGER NOT NULL DEFAULT 0,
    message_count        INTEGER,
    prompt_preview       TEXT,                           -- first audit.prompt_preview_chars characters
    prompt_chars         INTEGER,
    prompt_tokens        INTEGER,
    contains_sensitive   INTEGER NOT NULL DEFAULT 0,
    sensitive_kinds      TEXT,                           -- comma list: email,phone,card,ssn,iban,secret
    response_status      INTEGER,
    response_tokens      INTEGER,
    tokens_estimated     INTEGER NOT NULL DEFAULT 0,     -- 1: the vendor sent no usage; counted from text
    response_duration_ms INTEGER,
    first_byte_ms        INTEGER,
    request_bytes        INTEGER,
    response_bytes       INTEGER,
    policy_name          TEXT,
    policy_result        TEXT    CHECK (policy_result IN ('allow', 'alert', 'block')),
    policy_reason        TEXT,
    mode                 TEXT,                           -- observe | advisory | enforce
    error_kind           TEXT,                           -- upstream_timeout, client_closed, ...
    notes                TEXT,                           -- comma list: request_unread, pii_scan_cut, usage_unread
    cost_usd             REAL,                           -- from the price table; NULL: model not priced
    user_agent           TEXT,
    request_id           TEXT    NOT NULL UNIQUE
);

CREATE INDEX IF NOT EXISTS idx_audit_timestamp     ON audit_events (timestamp);
CREATE INDEX IF NOT EXISTS idx_audit_client_ip     ON audit_events (client_ip);
CREATE INDEX IF NOT EXISTS idx_audit_endpoint      ON audit_events (endpoint);
CREATE INDEX IF NOT EXISTS idx_audit_policy_result ON audit_events (policy_result);

CREATE VIEW IF NOT EXISTS daily_stats AS
SELECT DATE(timestamp)                   AS date,
       endpoint,
       COUNT(*)                          AS request_count,
       COALESCE(SUM(prompt_tokens), 0)   AS total_prompt_tokens,
       COALESCE(SUM(response_tokens), 0) AS total_response_tokens,
       AVG(response_duration_ms)         AS avg_duration_ms
FROM audit_events
GROUP BY DATE(timestamp), endpoint;

-- "Ask a parent": a device let past one policy (NULL: every policy) until expires_at.
CREATE TABLE IF NOT EXISTS approvals (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    device     TEXT    NOT NULL,                       -- a device name from `devices`, or a client IP
    policy     TEXT,                                   -- NULL: every policy
    created_at TEXT    NOT NULL,                       -- ISO 8601
    expires_at TEXT    NOT NULL,                       -- ISO 8601
    revoked_at TEXT,
    created_by TEXT    NOT NULL                        -- cli
);
CREATE INDEX IF NOT EXISTS idx_approvals_expires ON approvals (expires_at);
