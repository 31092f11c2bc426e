//! Alerts to an optional webhook: a JSON POST per alert, sent by a background service with a
//! timeout and bounded retries, so a slow or dead receiver never slows or fails traffic.
//!
//! The body carries the verdict and who/when/which vendor, never the prompt. Plain `http://`
//! receivers only (a home-automation hub or ntfy on the LAN); YORI does not send alerts out of
//! the house by itself.

use crate::config::Webhook;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const QUEUE: usize = 256;

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
enum WebhookError {
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("{0} has no address")]
    NoAddress(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("receiver answered {0}")]
    Status(String),
    #[error("receiver closed without an answer")]
    NoAnswer,
}

fn count(result: &str) {
    crate::metrics::ALERT_WEBHOOK
        .with_label_values(&[result])
        .inc();
}

#[derive(Clone)]
pub(crate) struct AlertSender {
    tx: Option<mpsc::Sender<serde_json::Value>>,
}

impl AlertSender {
    /// Counts the alert and queues it for the webhook (if any) without waiting.
    pub(crate) fn raise(&self, alert: serde_json::Value) {
        crate::metrics::ALERTS.inc();
        if let Some(tx) = &self.tx {
            if tx.try_send(alert).is_err() {
                count("dropped");
            }
        }
    }
}

pub(crate) struct AlertService {
    rx: Mutex<Option<mpsc::Receiver<serde_json::Value>>>,
    webhook: Webhook,
}

pub(crate) fn channel(webhook: Option<&Webhook>) -> (AlertSender, Option<AlertService>) {
    match webhook {
        None => (AlertSender { tx: None }, None),
        Some(w) => {
            let (tx, rx) = mpsc::channel(QUEUE);
            let service = AlertService {
                rx: Mutex::new(Some(rx)),
                webhook: w.clone(),
            };
            (AlertSender { tx: Some(tx) }, Some(service))
        }
    }
}

#[async_trait]
impl BackgroundService for AlertService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut rx) = self.rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        loop {
            let alert = tokio::select! {
                _ = shutdown.changed() => return,
                a = rx.recv() => match a { Some(a) => a, None => return },
            };
            let body = alert.to_string();
            let mut delay = Duration::from_millis(500);
            let mut sent = false;
            for attempt in 0..=self.webhook.retries {
                match tokio::time::timeout(self.webhook.timeout, post(&self.webhook, &body)).await {
                    Ok(Ok(())) => {
                        sent = true;
                        break;
                    }
                    Ok(Err(e)) => {
                        log::warn!("alert webhook failed attempt={} error={e}", attempt + 1);
                    }
                    Err(_) => log::warn!("alert webhook timed out attempt={}", attempt + 1),
                }
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            count(if sent { "delivered" } else { "failed" });
        }
    }
}

async fn post(w: &Webhook, body: &str) -> Result<(), WebhookError> {
    let addr = tokio::net::lookup_host((w.host.as_str(), w.port))
        .await
        .map_err(|source| WebhookError::Resolve {
            host: w.host.clone(),
            source,
        })?
        .next()
        .ok_or_else(|| WebhookError::NoAddress(w.host.clone()))?;
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nUser-Agent: yori/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        w.path,
        w.host,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut head = [0u8; 32];
    let n = s.read(&mut head).await?;
    let line = String::from_utf8_lossy(&head[..n]);
    match line.split(' ').nth(1) {
        Some(code) if code.starts_with('2') => Ok(()),
        Some(code) => Err(WebhookError::Status(code.to_string())),
        None => Err(WebhookError::NoAnswer),
    }
}
