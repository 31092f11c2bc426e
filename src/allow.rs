//! `yori allow`: a parent's approvals, written on the router into the audit database (the
//! gateway reads the active ones every couple of seconds). Each approval and each revocation is
//! an audit row too (`event_type` approval).

use crate::audit::row::AuditRow;
use crate::audit::store::{self, ApprovalRecord};
use crate::cli::AllowArgs;
use crate::config::Config;
use crate::kinds::EventType;
use crate::policy::approvals::{code, parse_duration};
use crate::policy::clock::Clock;
use rusqlite::Connection;

/// What went wrong, worded for the parent (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum AllowError {
    #[error("{0}")]
    Usage(String),
    #[error("the audit database: {0}")]
    Store(#[from] store::StoreError),
    #[error("the audit database: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// Runs the verb; returns what to print.
pub fn run(config: &Config, args: &AllowArgs) -> Result<String, AllowError> {
    let clock = Clock::from_env();
    let now = clock.now();
    let mut conn = store::open_writer(&config.audit.database)?;
    if args.list {
        let since = (now - chrono::Duration::days(7)).to_rfc3339();
        return Ok(list(&store::recent_approvals(&conn, &since)?, now));
    }
    if let Some(id) = args.revoke {
        if !store::revoke_approval(&conn, id, &now.to_rfc3339())? {
            return Err(AllowError::Usage(format!(
                "no approval #{id} to revoke (see `yori allow --list`)"
            )));
        }
        record(&mut conn, config, now, id, "revoked", None, None)?;
        return Ok(format!("approval #{id} revoked"));
    }
    let Some(what) = args.device.as_deref() else {
        return Err(AllowError::Usage("name a device or a code".into()));
    };
    let duration =
        parse_duration(args.duration.as_deref().unwrap_or("30m")).map_err(AllowError::Usage)?;
    let (device, policy) = resolve(&conn, config, now, what, args.policy.as_deref())?;
    let expires = now + chrono::Duration::seconds(duration.as_secs() as i64);
    let id = store::insert_approval(
        &conn,
        &device,
        policy.as_deref(),
        &now.to_rfc3339(),
        &expires.to_rfc3339(),
    )?;
    let until = expires.format("%Y-%m-%d %H:%M");
    let scope = policy
        .as_deref()
        .map_or_else(|| "every policy".to_string(), |p| format!("policy `{p}`"));
    record(
        &mut conn,
        config,
        now,
        id,
        &format!(
            "approved for {}, until {until}",
            args.duration.as_deref().unwrap_or("30m")
        ),
        Some(&device),
        policy.as_deref(),
    )?;
    Ok(format!(
        "approval #{id}: {device} may pass {scope} until {until} (the gateway picks it up within a few seconds; `yori allow --revoke {id}` ends it)"
    ))
}

/// A code from a block answer names a device and a policy seen blocked in the last 7 days; a
/// device name or an IP is taken as it is.
fn resolve(
    conn: &Connection,
    config: &Config,
    now: crate::policy::clock::LocalTime,
    what: &str,
    policy: Option<&str>,
) -> Result<(String, Option<String>), AllowError> {
    if config.devices.iter().any(|d| d.name == what) || what.parse::<std::net::IpAddr>().is_ok() {
        return Ok((what.to_string(), policy.map(str::to_string)));
    }
    let since = (now - chrono::Duration::days(7))
        .to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let wanted = what.trim().to_ascii_uppercase();
    let found = store::blocked_since(conn, &since)?
        .into_iter()
        .find(|(device, p)| code(device, p) == wanted);
    match found {
        Some((device, p)) => match policy {
            Some(other) if other != p => Err(AllowError::Usage(format!(
                "code {wanted} is for policy `{p}`, not `{other}`"
            ))),
            _ => Ok((device, Some(p))),
        },
        None => Err(AllowError::Usage(format!(
            "`{what}` is not a device in `devices`, an IP address, or the code of a block in the last 7 days"
        ))),
    }
}

/// The audit row of an approval or a revocation.
fn record(
    conn: &mut Connection,
    config: &Config,
    now: crate::policy::clock::LocalTime,
    id: i64,
    what: &str,
    device: Option<&str>,
    policy: Option<&str>,
) -> Result<(), AllowError> {
    let ip = device.filter(|d| d.parse::<std::net::IpAddr>().is_ok());
    let row = AuditRow {
        timestamp: now
            .to_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        event_type: EventType::Approval,
        client_ip: ip.map(str::to_string),
        client_device: device.filter(|_| ip.is_none()).map(str::to_string),
        policy_name: policy.map(str::to_string),
        policy_reason: Some(format!("approval #{id} {what} (yori allow)")),
        mode: config.mode,
        request_id: format!(
            "approval-{id}-{}",
            what.split_whitespace().next().unwrap_or("")
        ),
        ..AuditRow::default()
    };
    store::insert_batch(conn, std::slice::from_ref(&row))?;
    Ok(())
}

fn list(records: &[ApprovalRecord], now: crate::policy::clock::LocalTime) -> String {
    if records.is_empty() {
        return "no approvals in the last 7 days".into();
    }
    let mut out = format!(
        "{:>4}  {:<20} {:<14} {:<26} {}\n",
        "id", "device", "policy", "until", "state"
    );
    for r in records {
        let ended = chrono::DateTime::parse_from_rfc3339(&r.expires_at).is_ok_and(|t| t <= now);
        let state = if r.revoked_at.is_some() {
            "revoked"
        } else if ended {
            "expired"
        } else {
            "active"
        };
        out.push_str(&format!(
            "{:>4}  {:<20} {:<14} {:<26} {state}\n",
            r.id,
            r.device,
            r.policy.as_deref().unwrap_or("(every)"),
            r.expires_at
        ));
    }
    out
}
