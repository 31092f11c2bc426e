//! Reads for the admin API on read-only connections: stats, a filtered page of rows, CSV.
//! Filters become bound parameters, never SQL text.

use crate::kinds::Action;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Row};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// Reads the audit database off the async threads, each on its own read-only connection (WAL:
/// readers never hold up the writer).
#[derive(Debug, Clone)]
pub struct Reader {
    database: PathBuf,
}

/// A read that could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the read task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Reader {
    pub fn new(database: PathBuf) -> Reader {
        Reader { database }
    }

    /// Runs `f` on a fresh read-only connection on the blocking pool.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ReadError> {
        let db = self.database.clone();
        let out = tokio::task::spawn_blocking(move || {
            let conn = super::store::open_reader(&db)?;
            f(&conn)
        })
        .await?;
        Ok(out?)
    }
}

pub const MAX_PAGE: u32 = 1000;
pub const MAX_CSV_ROWS: u32 = 100_000;

/// Columns returned by `/api/audit` and `/api/audit.csv`, in order.
pub const COLUMNS: &[&str] = &[
    "id",
    "timestamp",
    "event_type",
    "client_ip",
    "client_device",
    "endpoint",
    "vendor",
    "http_method",
    "http_path",
    "model",
    "stream",
    "message_count",
    "prompt_preview",
    "prompt_chars",
    "prompt_tokens",
    "contains_sensitive",
    "sensitive_kinds",
    "response_status",
    "response_tokens",
    "tokens_estimated",
    "response_duration_ms",
    "first_byte_ms",
    "request_bytes",
    "response_bytes",
    "policy_name",
    "policy_result",
    "policy_reason",
    "mode",
    "error_kind",
    "user_agent",
    "request_id",
    "notes",
    "cost_usd",
];

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filter {
    pub since: Option<String>,
    pub until: Option<String>,
    pub endpoint: Option<String>,
    pub vendor: Option<String>,
    pub client_ip: Option<String>,
    pub policy_result: Option<String>,
    pub q: Option<String>,
    /// Rows with `id` below this (keyset pagination, newest first).
    pub before_id: Option<i64>,
    pub limit: u32,
    pub offset: u32,
}

/// A query string the admin API cannot use (a 400 that names the parameter).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("parameter `{0}` is not valid percent-encoding")]
    Encoding(String),
    #[error("parameter `{0}` must be a whole number")]
    Number(String),
    #[error("parameter `{0}` must be an ISO 8601 date or time (e.g. 2026-12-01 or 2026-12-01T08:00:00Z)")]
    Time(String),
    #[error("parameter `policy_result` must be allow, alert or block")]
    PolicyResult,
    #[error("unknown parameter `{0}` (known: since, until, endpoint, vendor, client_ip, policy_result, q, before_id, limit, offset)")]
    Unknown(String),
}

impl Filter {
    /// Parses a query string; unknown or malformed parameters are errors naming them.
    pub fn from_query(
        query: &str,
        default_limit: u32,
        max_limit: u32,
    ) -> Result<Filter, FilterError> {
        let mut f = Filter {
            limit: default_limit,
            ..Filter::default()
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v).ok_or_else(|| FilterError::Encoding(k.to_string()))?;
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| FilterError::Number(k.to_string()))
            };
            match k {
                "since" => f.since = Some(time_param(k, &v)?),
                "until" => f.until = Some(time_param(k, &v)?),
                "endpoint" => f.endpoint = Some(v),
                "vendor" => f.vendor = Some(v),
                "client_ip" => f.client_ip = Some(v),
                "policy_result" => match Action::parse(&v) {
                    Some(_) => f.policy_result = Some(v),
                    None => return Err(FilterError::PolicyResult),
                },
                "q" => f.q = Some(v),
                "before_id" => f.before_id = Some(num(&v)? as i64),
                "limit" => f.limit = (num(&v)?.clamp(1, max_limit as u64)) as u32,
                "offset" => f.offset = num(&v)?.min(u32::MAX as u64) as u32,
                other => return Err(FilterError::Unknown(other.to_string())),
            }
        }
        Ok(f)
    }

    fn where_clause(&self) -> (String, Vec<SqlValue>) {
        let mut conds: Vec<&str> = Vec::new();
        let mut args: Vec<SqlValue> = Vec::new();
        let mut add = |cond: &'static str, v: Option<&String>| {
            if let Some(v) = v {
                conds.push(cond);
                args.push(SqlValue::Text(v.clone()));
            }
        };
        add("timestamp >= ?", self.since.as_ref());
        add("timestamp < ?", self.until.as_ref());
        add("endpoint = ?", self.endpoint.as_ref());
        add("vendor = ?", self.vendor.as_ref());
        add("client_ip = ?", self.client_ip.as_ref());
        add("policy_result = ?", self.policy_result.as_ref());
        if let Some(q) = &self.q {
            conds.push("prompt_preview LIKE ? ESCAPE '\\'");
            let escaped = q
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            args.push(SqlValue::Text(format!("%{escaped}%")));
        }
        if let Some(id) = self.before_id {
            conds.push("id < ?");
            args.push(SqlValue::Integer(id));
        }
        let sql = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        (sql, args)
    }
}

/// `since`/`until`: an ISO 8601 timestamp or date, compared as text with the stored UTC times.
fn time_param(k: &str, v: &str) -> Result<String, FilterError> {
    let ok = v.len() >= 10
        && v.as_bytes()[4] == b'-'
        && v.as_bytes()[7] == b'-'
        && v[..4].chars().all(|c| c.is_ascii_digit());
    if ok
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || ":-.+TZ".contains(c))
    {
        Ok(v.to_string())
    } else {
        Err(FilterError::Time(k.to_string()))
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn row_values(row: &Row<'_>) -> rusqlite::Result<Vec<SqlValue>> {
    (0..COLUMNS.len())
        .map(|i| row.get::<_, SqlValue>(i))
        .collect()
}

fn to_json(v: &SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => json!(i),
        SqlValue::Real(f) => json!(f),
        SqlValue::Text(s) => json!(s),
        SqlValue::Blob(_) => Value::Null,
    }
}

fn select(conn: &Connection, f: &Filter) -> rusqlite::Result<Vec<Vec<SqlValue>>> {
    let (cond, mut args) = f.where_clause();
    let sql = format!(
        "SELECT {} FROM audit_events{cond} ORDER BY id DESC LIMIT ? OFFSET ?",
        COLUMNS.join(", ")
    );
    args.push(SqlValue::Integer(f.limit as i64));
    args.push(SqlValue::Integer(f.offset as i64));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), row_values)?;
    rows.collect()
}

/// A page of rows, newest first, with the cursor for the next page.
pub fn audit_page(conn: &Connection, f: &Filter) -> rusqlite::Result<Value> {
    let rows = select(conn, f)?;
    let next = if rows.len() as u32 == f.limit {
        rows.last().and_then(|r| match r[0] {
            SqlValue::Integer(id) => Some(id),
            _ => None,
        })
    } else {
        None
    };
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            Value::Object(
                COLUMNS
                    .iter()
                    .zip(r)
                    .map(|(k, v)| (k.to_string(), to_json(v)))
                    .collect::<Map<_, _>>(),
            )
        })
        .collect();
    Ok(json!({"items": items, "count": items.len(), "next_before_id": next}))
}

/// The same rows as CSV (RFC 4180 quoting).
pub fn audit_csv(conn: &Connection, f: &Filter) -> rusqlite::Result<String> {
    let rows = select(conn, f)?;
    let mut out = COLUMNS.join(",");
    out.push_str("\r\n");
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .map(|v| match v {
                SqlValue::Null | SqlValue::Blob(_) => String::new(),
                SqlValue::Integer(i) => i.to_string(),
                SqlValue::Real(x) => x.to_string(),
                SqlValue::Text(s) => csv_cell(s),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    Ok(out)
}

fn csv_cell(s: &str) -> String {
    // a leading = + - @ would be run as a formula by spreadsheet programs, and a leading TAB or
    // CR hides one from a simple check while some programs still run it (OWASP's CSV injection)
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The rows that are vendor exchanges (not approvals, admin actions or connections).
const EXCHANGES: &str = "event_type IN ('request', 'block')";

/// Totals of the vendor exchanges, per vendor, per device, per hour of the last 24 h.
pub fn stats(conn: &Connection) -> rusqlite::Result<Value> {
    let totals = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(response_tokens),0),
                COALESCE(SUM(policy_result='alert'),0), COALESCE(SUM(event_type='block'),0),
                COALESCE(SUM(contains_sensitive),0), COALESCE(SUM(error_kind IS NOT NULL),0),
                SUM(cost_usd), COALESCE(SUM(cost_usd IS NULL AND prompt_tokens IS NOT NULL),0)
         FROM audit_events WHERE event_type IN ('request', 'block')",
        [],
        |r| {
            Ok(json!({"requests": r.get::<_, i64>(0)?, "prompt_tokens": r.get::<_, i64>(1)?, "response_tokens": r.get::<_, i64>(2)?,
                      "alerts": r.get::<_, i64>(3)?, "blocks": r.get::<_, i64>(4)?, "sensitive": r.get::<_, i64>(5)?, "errors": r.get::<_, i64>(6)?,
                      "cost_usd": r.get::<_, Option<f64>>(7)?, "unpriced": r.get::<_, i64>(8)?}))
        },
    )?;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let today_requests: i64 = conn.query_row(
        "SELECT COUNT(*) FROM audit_events WHERE timestamp >= ?1 AND event_type IN ('request', 'block')",
        [&today],
        |r| r.get(0),
    )?;
    let group = |sql: &str, key: &str| -> rusqlite::Result<Vec<Value>> {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map([], |r| {
            Ok(
                json!({key: r.get::<_, Option<String>>(0)?, "requests": r.get::<_, i64>(1)?,
                      "prompt_tokens": r.get::<_, i64>(2)?, "response_tokens": r.get::<_, i64>(3)?,
                      "alerts": r.get::<_, i64>(4)?, "blocks": r.get::<_, i64>(5)?,
                      "cost_usd": r.get::<_, Option<f64>>(6)?}),
            )
        })?;
        rows.collect()
    };
    let agg = "COUNT(*), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(response_tokens),0), COALESCE(SUM(policy_result='alert'),0), COALESCE(SUM(event_type='block'),0), SUM(cost_usd)";
    let by_vendor = group(
        &format!("SELECT vendor, {agg} FROM audit_events WHERE {EXCHANGES} GROUP BY vendor ORDER BY 2 DESC"),
        "vendor",
    )?;
    let by_device = group(
        &format!("SELECT COALESCE(client_device, client_ip), {agg} FROM audit_events WHERE {EXCHANGES} GROUP BY COALESCE(client_device, client_ip) ORDER BY 2 DESC LIMIT 100"),
        "device",
    )?;
    let since = (chrono::Utc::now() - chrono::Duration::hours(24))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT substr(timestamp, 1, 13) || ':00:00Z', {agg} FROM audit_events WHERE timestamp >= ?1 AND {EXCHANGES} GROUP BY 1 ORDER BY 1"
    ))?;
    let by_hour: Vec<Value> = stmt
        .query_map([&since], |r| {
            Ok(json!({"hour": r.get::<_, String>(0)?, "requests": r.get::<_, i64>(1)?, "prompt_tokens": r.get::<_, i64>(2)?,
                      "response_tokens": r.get::<_, i64>(3)?, "alerts": r.get::<_, i64>(4)?, "blocks": r.get::<_, i64>(5)?,
                      "cost_usd": r.get::<_, Option<f64>>(6)?}))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let month_ago = (chrono::Utc::now() - chrono::Duration::days(31))
        .format("%Y-%m-%d")
        .to_string();
    let by_day = group(
        &format!("SELECT substr(timestamp, 1, 10), {agg} FROM audit_events WHERE timestamp >= '{month_ago}' AND {EXCHANGES} GROUP BY 1 ORDER BY 1"),
        "date",
    )?;
    let mut device_day = conn.prepare_cached(&format!(
        "SELECT substr(timestamp, 1, 10), COALESCE(client_device, client_ip), COUNT(*), SUM(cost_usd) FROM audit_events \
         WHERE timestamp >= ?1 AND {EXCHANGES} GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 3100"
    ))?;
    let by_device_day: Vec<Value> = device_day
        .query_map([&month_ago], |r| {
            Ok(
                json!({"date": r.get::<_, String>(0)?, "device": r.get::<_, Option<String>>(1)?,
                      "requests": r.get::<_, i64>(2)?, "cost_usd": r.get::<_, Option<f64>>(3)?}),
            )
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(
        json!({"totals": totals, "today": {"date": today, "requests": today_requests},
              "by_vendor": by_vendor, "by_device": by_device, "last_24h_by_hour": by_hour,
              "last_31d_by_day": by_day, "last_31d_by_device_and_day": by_device_day}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_reject() {
        let f = Filter::from_query(
            "vendor=openai&q=home%20work&limit=5000&since=2026-12-01",
            50,
            MAX_PAGE,
        )
        .unwrap();
        assert_eq!(
            (
                f.vendor.as_deref(),
                f.q.as_deref(),
                f.limit,
                f.since.as_deref()
            ),
            (Some("openai"), Some("home work"), 1000, Some("2026-12-01"))
        );
        assert!(Filter::from_query("since=yesterday", 50, MAX_PAGE)
            .unwrap_err()
            .to_string()
            .contains("ISO 8601"));
        assert!(Filter::from_query("policy_result=maybe", 50, MAX_PAGE).is_err());
        assert!(Filter::from_query("drop=table", 50, MAX_PAGE)
            .unwrap_err()
            .to_string()
            .contains("unknown parameter `drop`"));
    }

    #[test]
    fn like_wildcards_in_q_are_literal() {
        let f = Filter::from_query("q=100%25_done", 50, MAX_PAGE).unwrap();
        let (_, args) = f.where_clause();
        assert_eq!(args[0], SqlValue::Text("%100\\%\\_done%".into()));
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,\"b\"\nc"), "\"a,\"\"b\"\"\nc\"");
        assert_eq!(csv_cell("=HYPERLINK(x)"), "'=HYPERLINK(x)");
        assert_eq!(csv_cell("\t=1+1"), "'\t=1+1");
        assert_eq!(csv_cell("\r=1+1"), "\"'\r=1+1\"");
    }
}
