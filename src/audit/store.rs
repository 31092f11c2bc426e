//! The SQLite side: open (creating the folder), apply `sql/schema.sql` at its schema version,
//! insert batches in one transaction, purge by age and by size, and tally today's use per client
//! for the policy counters.

use super::AuditRow;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The database cannot be opened or set up.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create folder {}: {source}", dir.display())]
    Folder {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot set up {}: {source}", path.display())]
    Setup {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot apply schema to {}: {source}", path.display())]
    Schema {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

pub const SCHEMA_SQL: &str = include_str!("../../sql/schema.sql");
/// Bumped whenever `sql/schema.sql` changes; older databases are migrated in `migrate`.
pub const SCHEMA_VERSION: i64 = 4;

/// The columns of a version-1 table, all kept by the rebuild into version 2.
const V1_COLUMNS: &str = "id, timestamp, event_type, client_ip, client_device, endpoint, vendor, \
    http_method, http_path, model, stream, message_count, prompt_preview, prompt_chars, prompt_tokens, \
    contains_sensitive, sensitive_kinds, response_status, response_tokens, tokens_estimated, response_duration_ms, \
    first_byte_ms, request_bytes, response_bytes, policy_name, policy_result, policy_reason, mode, error_kind, \
    user_agent, request_id";

const INSERT: &str = "INSERT INTO audit_events (timestamp, event_type, client_ip, client_device, endpoint, vendor, \
    http_method, http_path, model, stream, message_count, prompt_preview, prompt_chars, prompt_tokens, \
    contains_sensitive, sensitive_kinds, response_status, response_tokens, tokens_estimated, response_duration_ms, \
    first_byte_ms, request_bytes, response_bytes, policy_name, policy_result, policy_reason, mode, error_kind, \
    user_agent, request_id, notes, cost_usd) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
    ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32)";

/// Opens the database for writing, creating its folder and the schema.
pub fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let setup = |source| StoreError::Setup {
        path: path.to_path_buf(),
        source,
    };
    conn.busy_timeout(Duration::from_millis(2000))
        .map_err(setup)?;
    // auto_vacuum must be chosen before the first table exists
    conn.execute_batch(
        "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
    )
    .map_err(setup)?;
    migrate(&conn).map_err(|source| StoreError::Schema {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(conn)
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut s = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = s.query_map([], |r| r.get::<_, String>(1))?;
    for n in names {
        if n? == column {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Opens a read-only connection for the admin API (WAL: readers never block the writer).
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_millis(1000))?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        log::warn!("audit database schema is newer than this yori version={version} supported={SCHEMA_VERSION}");
    }
    if version == 1 {
        // 1 -> 2: the event types of the coming features (a CHECK constraint cannot be altered
        // in place) and `notes`: rebuild the table, keeping every row and its id
        log::info!("audit database: migrating schema 1 -> 2 (rows kept)");
        conn.execute_batch(&format!(
            "BEGIN;
             DROP VIEW IF EXISTS daily_stats;
             ALTER TABLE audit_events RENAME TO audit_events_v1;
             DROP INDEX IF EXISTS idx_audit_timestamp;
             DROP INDEX IF EXISTS idx_audit_client_ip;
             DROP INDEX IF EXISTS idx_audit_endpoint;
             DROP INDEX IF EXISTS idx_audit_policy_result;
             {SCHEMA_SQL}
             INSERT INTO audit_events ({V1_COLUMNS}) SELECT {V1_COLUMNS} FROM audit_events_v1;
             DROP TABLE audit_events_v1;
             PRAGMA user_version = {SCHEMA_VERSION};
             COMMIT;"
        ))?;
        return Ok(());
    }
    if (2..4).contains(&version) && !has_column(conn, "audit_events", "cost_usd")? {
        // 2 -> 4: `cost_usd` (3 added the approvals table, made below with the rest)
        log::info!("audit database: adding cost_usd (schema {version} -> {SCHEMA_VERSION})");
        conn.execute_batch("ALTER TABLE audit_events ADD COLUMN cost_usd REAL")?;
    }
    // a new database: the whole schema (every statement is IF NOT EXISTS)
    conn.execute_batch(SCHEMA_SQL)?;
    if version < SCHEMA_VERSION {
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    }
    Ok(())
}

/// Inserts every row in one transaction; all or nothing.
pub fn insert_batch(conn: &mut Connection, rows: &[AuditRow]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(INSERT)?;
        for r in rows {
            stmt.execute(params![
                r.timestamp,
                r.event_type.as_str(),
                r.client_ip,
                r.client_device,
                r.endpoint,
                r.vendor.map(|v| v.as_str()),
                r.http_method,
                r.http_path,
                r.model,
                r.stream,
                r.message_count,
                r.prompt_preview,
                r.prompt_chars,
                r.prompt_tokens,
                r.contains_sensitive,
                r.sensitive_kinds,
                r.response_status,
                r.response_tokens,
                r.tokens_estimated,
                r.response_duration_ms,
                r.first_byte_ms,
                r.request_bytes,
                r.response_bytes,
                r.policy_name,
                r.policy_result.as_str(),
                r.policy_reason,
                r.mode.as_str(),
                r.error_kind.map(|k| k.as_str()),
                r.user_agent,
                r.request_id,
                r.notes,
                r.cost_usd,
            ])?;
        }
    }
    tx.commit()
}

/// Whether an insert failed because of a row (a constraint, a value SQLite will not take), not
/// because of the database (locked, full, read-only, I/O).
pub(crate) fn is_row_error(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => {
            matches!(f.code, ConstraintViolation | TooBig | TypeMismatch)
        }
        rusqlite::Error::ToSqlConversionFailure(_) => true,
        _ => false,
    }
}

/// Inserts each row in its own transaction: returns the rows the database could not take now
/// (kept for later) and how many were refused for themselves (dropped).
pub(crate) fn insert_each(conn: &mut Connection, rows: Vec<AuditRow>) -> (Vec<AuditRow>, usize) {
    let mut kept = Vec::new();
    let mut bad = 0;
    for row in rows {
        match insert_batch(conn, std::slice::from_ref(&row)) {
            Ok(()) => {}
            Err(e) if is_row_error(&e) => bad += 1,
            Err(_) => kept.push(row),
        }
    }
    (kept, bad)
}

/// Deletes rows older than `retention_days`, then keeps the data under `max_bytes`
/// (`shrink`). Returns how many rows went.
pub fn purge(conn: &Connection, retention_days: u32, max_bytes: u64) -> rusqlite::Result<usize> {
    let cutoff = (Utc::now() - chrono::Duration::days(retention_days as i64))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let deleted = conn.execute("DELETE FROM audit_events WHERE timestamp < ?1", [cutoff])?;
    if deleted > 0 {
        conn.execute_batch("PRAGMA incremental_vacuum")?;
    }
    Ok(deleted + shrink(conn, max_bytes)?)
}

/// While the data is above `max_bytes`, deletes the oldest rows of the client with the most
/// rows: one device flooding the log loses its own history first, never the household's.
/// (Rows are of bounded size, so rows are a fair measure of the room a client takes.)
pub fn shrink(conn: &Connection, max_bytes: u64) -> rusqlite::Result<usize> {
    let mut deleted = 0;
    for _ in 0..50 {
        if used_bytes(conn)? <= max_bytes {
            break;
        }
        let heaviest: Option<(Option<String>, i64)> = conn
            .query_row(
                "SELECT client_ip, COUNT(*) FROM audit_events GROUP BY client_ip ORDER BY 2 DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((client, count)) = heaviest else {
            break;
        };
        let n = (count / 10).max(1);
        deleted += conn.execute(
            "DELETE FROM audit_events WHERE id IN
               (SELECT id FROM audit_events WHERE client_ip IS ?1 ORDER BY id LIMIT ?2)",
            params![client, n],
        )?;
        conn.execute_batch("PRAGMA incremental_vacuum")?;
    }
    Ok(deleted)
}

/// Whether the data is above `max_bytes` (a cheap check, as rows are written).
pub(crate) fn over(conn: &Connection, max_bytes: u64) -> rusqlite::Result<bool> {
    Ok(used_bytes(conn)? > max_bytes)
}

/// One client's use in the window the policy counters start from.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientTally {
    pub client_ip: String,
    pub requests: u64,
    pub tokens: u64,
    /// Requests since `hour_ago`.
    pub last_hour: u64,
    /// US dollars since `since`, and since `month_start`.
    pub cost: f64,
    pub cost_month: f64,
}

/// A stored approval with its state, for `yori allow --list`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRecord {
    pub id: i64,
    pub device: String,
    pub policy: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
}

/// Stores an approval; returns its id.
pub fn insert_approval(
    conn: &Connection,
    device: &str,
    policy: Option<&str>,
    created_at: &str,
    expires_at: &str,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO approvals (device, policy, created_at, expires_at, created_by) VALUES (?1, ?2, ?3, ?4, 'cli')",
        params![device, policy, created_at, expires_at],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Revokes an approval that is not yet revoked; whether there was one.
pub fn revoke_approval(conn: &Connection, id: i64, at: &str) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE approvals SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, at],
    )?;
    Ok(n == 1)
}

/// Approvals not revoked that expire after `now` (RFC 3339 compared as instants by SQLite's
/// `julianday`), oldest first.
pub fn active_approvals(conn: &Connection, now: &str) -> rusqlite::Result<Vec<ApprovalRecord>> {
    approvals_where(
        conn,
        "revoked_at IS NULL AND julianday(expires_at) > julianday(?1)",
        now,
    )
}

/// Every approval of the last `days` days, newest first.
pub fn recent_approvals(conn: &Connection, since: &str) -> rusqlite::Result<Vec<ApprovalRecord>> {
    let mut all = approvals_where(conn, "julianday(created_at) >= julianday(?1)", since)?;
    all.reverse();
    Ok(all)
}

fn approvals_where(
    conn: &Connection,
    condition: &str,
    arg: &str,
) -> rusqlite::Result<Vec<ApprovalRecord>> {
    let mut s = conn.prepare(&format!(
        "SELECT id, device, policy, created_at, expires_at, revoked_at FROM approvals WHERE {condition} ORDER BY id"
    ))?;
    let rows = s.query_map(params![arg], |r| {
        Ok(ApprovalRecord {
            id: r.get(0)?,
            device: r.get(1)?,
            policy: r.get(2)?,
            created_at: r.get(3)?,
            expires_at: r.get(4)?,
            revoked_at: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// The devices (name, else IP) and policies of the blocks since `since`: what a code from a
/// block answer can name.
pub fn blocked_since(conn: &Connection, since: &str) -> rusqlite::Result<Vec<(String, String)>> {
    let mut s = conn.prepare(
        "SELECT DISTINCT COALESCE(client_device, client_ip), policy_name FROM audit_events \
         WHERE event_type = 'block' AND policy_name IS NOT NULL \
         AND COALESCE(client_device, client_ip) IS NOT NULL AND timestamp >= ?1",
    )?;
    let rows = s.query_map(params![since], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Requests, tokens and cost per client since `since`, requests since `hour_ago`, and cost
/// since `month_start` (which is not after `since`).
pub fn usage_since(
    conn: &Connection,
    since: DateTime<Utc>,
    hour_ago: DateTime<Utc>,
    month_start: DateTime<Utc>,
) -> rusqlite::Result<Vec<ClientTally>> {
    let text = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut stmt = conn.prepare(
        "SELECT client_ip, COALESCE(SUM(timestamp >= ?1),0),
                COALESCE(SUM(CASE WHEN timestamp >= ?1 THEN COALESCE(prompt_tokens,0) + COALESCE(response_tokens,0) ELSE 0 END),0),
                COALESCE(SUM(timestamp >= ?2),0),
                COALESCE(SUM(CASE WHEN timestamp >= ?1 THEN cost_usd ELSE 0 END),0.0),
                COALESCE(SUM(cost_usd),0.0)
         FROM audit_events WHERE timestamp >= ?3 AND client_ip IS NOT NULL AND event_type IN ('request', 'block') GROUP BY client_ip",
    )?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let rows = stmt.query_map(
        [text(since), text(hour_ago), text(month_start.min(since))],
        |r| {
            Ok(ClientTally {
                client_ip: r.get(0)?,
                requests: count(r.get(1)?),
                tokens: count(r.get(2)?),
                last_hour: count(r.get(3)?),
                cost: r.get(4)?,
                cost_month: r.get(5)?,
            })
        },
    )?;
    rows.collect()
}

fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: usize, timestamp: &str) -> AuditRow {
        AuditRow {
            timestamp: timestamp.to_string(),
            prompt_preview: Some("x".repeat(500)),
            request_id: format!("t-{i}"),
            ..AuditRow::default()
        }
    }

    fn count(c: &Connection) -> i64 {
        c.query_row("SELECT COUNT(*) FROM audit_events", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn schema_is_versioned_and_reopening_keeps_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/folder/audit.db");
        let mut c = open_writer(&path).unwrap();
        insert_batch(&mut c, &[row(1, "2026-12-01T10:00:00.000Z")]).unwrap();
        drop(c);
        let c = open_writer(&path).unwrap();
        assert_eq!(count(&c), 1);
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_bad_row_is_dropped_alone_and_the_rest_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open_writer(&dir.path().join("bad.db")).unwrap();
        let t = "2026-12-01T10:00:00.000Z";
        insert_batch(&mut c, &[row(1, t)]).unwrap();
        // the second row repeats a request id: the batch fails whole, for a row's sake
        let batch = vec![row(2, t), row(1, t), row(3, t)];
        let e = insert_batch(&mut c, &batch).unwrap_err();
        assert!(is_row_error(&e), "{e}");
        assert_eq!(count(&c), 1, "all or nothing");
        let (kept, bad) = insert_each(&mut c, batch);
        assert_eq!((kept.len(), bad), (0, 1));
        assert_eq!(count(&c), 3);
        // a database that cannot take rows now keeps them all for later
        drop(c);
        let ro = Connection::open_with_flags(
            dir.path().join("bad.db"),
            OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut ro = ro;
        let (kept, bad) = insert_each(&mut ro, vec![row(4, t), row(5, t)]);
        assert_eq!((kept.len(), bad), (2, 0));
    }

    #[test]
    fn approvals_are_stored_listed_revoked_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let c = open_writer(&dir.path().join("ap.db")).unwrap();
        let a = insert_approval(
            &c,
            "kids-laptop",
            Some("bedtime"),
            "2026-12-01T22:00:00Z",
            "2026-12-01T22:30:00Z",
        )
        .unwrap();
        let b = insert_approval(
            &c,
            "10.0.0.9",
            None,
            "2026-12-01T22:00:00Z",
            "2026-12-01T23:30:00+01:00",
        )
        .unwrap();
        let active = |now| {
            active_approvals(&c, now)
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(active("2026-12-01T22:10:00Z"), [a, b]);
        // b ends at 22:30 UTC too, written in another offset
        assert_eq!(active("2026-12-01T22:30:00Z"), Vec::<i64>::new());
        assert!(revoke_approval(&c, a, "2026-12-01T22:05:00Z").unwrap());
        assert!(
            !revoke_approval(&c, a, "2026-12-01T22:06:00Z").unwrap(),
            "once"
        );
        assert_eq!(active("2026-12-01T22:10:00Z"), [b]);
        assert_eq!(
            recent_approvals(&c, "2026-11-30T00:00:00Z").unwrap().len(),
            2
        );
    }

    #[test]
    fn retention_removes_only_old_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open_writer(&dir.path().join("a.db")).unwrap();
        let now = Utc::now();
        let old =
            (now - chrono::Duration::days(40)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let recent =
            (now - chrono::Duration::days(2)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        insert_batch(&mut c, &[row(1, &old), row(2, &recent), row(3, &old)]).unwrap();
        assert_eq!(purge(&c, 30, u64::MAX).unwrap(), 2);
        assert_eq!(count(&c), 1);
    }

    #[test]
    fn size_cap_drops_the_oldest_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open_writer(&dir.path().join("b.db")).unwrap();
        let ts = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let rows: Vec<AuditRow> = (0..4000).map(|i| row(i, &ts)).collect();
        insert_batch(&mut c, &rows).unwrap();
        let cap = 512 * 1024;
        assert!(used_bytes(&c).unwrap() > cap);
        assert!(purge(&c, 365, cap).unwrap() > 0);
        assert!(used_bytes(&c).unwrap() <= cap);
        let first: i64 = c
            .query_row("SELECT MIN(id) FROM audit_events", [], |r| r.get(0))
            .unwrap();
        assert!(first > 1, "the oldest rows went first");
    }

    #[test]
    fn usage_since_tallies_each_client_in_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open_writer(&dir.path().join("u.db")).unwrap();
        let at = |h: u32, ip: &str, i: usize| AuditRow {
            client_ip: Some(ip.into()),
            prompt_tokens: Some(10),
            response_tokens: Some(5),
            ..row(i, &format!("2026-12-01T{h:02}:00:00.000Z"))
        };
        insert_batch(
            &mut c,
            &[
                at(1, "10.0.0.1", 1),
                at(9, "10.0.0.1", 2),
                at(11, "10.0.0.1", 3),
                AuditRow {
                    cost_usd: Some(0.5),
                    ..at(11, "10.0.0.2", 4)
                },
                // before the day's window: the month's cost only
                AuditRow {
                    cost_usd: Some(1.25),
                    ..at(1, "10.0.0.2", 6)
                },
                // a parent's approval for that device is not a request
                AuditRow {
                    event_type: crate::kinds::EventType::Approval,
                    ..at(11, "10.0.0.2", 5)
                },
            ],
        )
        .unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let mut got = usage_since(
            &c,
            t("2026-12-01T08:00:00Z"),
            t("2026-12-01T10:30:00Z"),
            t("2026-11-01T00:00:00Z"),
        )
        .unwrap();
        got.sort_by(|a, b| a.client_ip.cmp(&b.client_ip));
        assert_eq!(
            got,
            [
                ClientTally {
                    client_ip: "10.0.0.1".into(),
                    requests: 2,
                    tokens: 30,
                    last_hour: 1,
                    cost: 0.0,
                    cost_month: 0.0,
                },
                ClientTally {
                    client_ip: "10.0.0.2".into(),
                    requests: 1,
                    tokens: 15,
                    last_hour: 1,
                    cost: 0.5,
                    cost_month: 1.75,
                },
            ]
        );
    }

    #[test]
    fn the_size_cap_takes_from_the_device_that_floods_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open_writer(&dir.path().join("f.db")).unwrap();
        let ts = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        // the household's history first, then a flood from one device
        let mut rows: Vec<AuditRow> = (0..200)
            .map(|i| AuditRow {
                client_ip: Some(format!("10.0.0.{}", i % 4)),
                ..row(i, &ts)
            })
            .collect();
        rows.extend((200..5000).map(|i| AuditRow {
            client_ip: Some("10.0.0.66".into()),
            ..row(i, &ts)
        }));
        insert_batch(&mut c, &rows).unwrap();
        let cap = 1 << 20;
        assert!(over(&c, cap).unwrap());
        assert!(shrink(&c, cap).unwrap() > 0);
        assert!(!over(&c, cap).unwrap());
        let household: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM audit_events WHERE client_ip != '10.0.0.66'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(household, 200, "nobody else's history went");
    }

    #[test]
    fn a_version_1_database_is_rebuilt_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(include_str!("../../tests/fixtures/audit/schema_v1.sql"))
                .unwrap();
            c.execute_batch(
                "INSERT INTO audit_events (timestamp, event_type, request_id, policy_result) VALUES ('2026-12-01T00:00:00.000Z', 'request', 'old-1', 'allow');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let mut c = open_writer(&path).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert_eq!(count(&c), 1, "the old row is kept");
        insert_batch(
            &mut c,
            &[AuditRow {
                event_type: crate::kinds::EventType::Connection,
                notes: Some("x".into()),
                ..row(2, "2026-12-02T00:00:00.000Z")
            }],
        )
        .unwrap();
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM daily_stats", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2, "the view is back");
    }
}
