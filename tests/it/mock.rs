//! A mock of the four vendors' APIs on one port, speaking their real wire formats.
//!
//! Used in-process by the integration tests, and as `cargo run --release --example mock_vendor`
//! for demos and `loadtest/`. The vendor is chosen by path (and, for Mistral, by the Host header
//! YORI sends). Requests steer it with headers (YORI forwards them untouched):
//! - `x-mock-delay-ms: N`: wait N ms before each stream event (default from `MockOptions`)
//! - `x-mock-events: N`: number of text deltas (default 3)
//! - `x-mock-fail: 500|429|close|hang`: answer an error status, cut the connection mid-stream, or
//!   never answer
//! - `x-mock-gzip: 1`: gzip the response body (Content-Encoding: gzip)
//! - `x-mock-hop: 1`: add hop-by-hop fields to the answer (`Keep-Alive`, and `X-Vendor-Hop`
//!   nominated by `Connection`), which must not reach the device
//!
//! Usage numbers are deterministic: `PROMPT_TOKENS` in, `COMPLETION_TOKENS_PER_EVENT` per delta.

use bytes::Bytes;
use http_body_util::{BodyExt, Channel, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) const PROMPT_TOKENS: u64 = 17;
pub(crate) const COMPLETION_TOKENS_PER_EVENT: u64 = 2;
const WORD: &str = "hello ";

/// What the mock saw of one request.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub method: String,
    pub path: String,
    pub host: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
    pub body_sha256: String,
    pub body: Bytes,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub(crate) struct MockOptions {
    pub delay_ms: u64,
    pub events: u64,
    /// Keep every request's body (tests); off for load runs.
    pub keep_bodies: bool,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            delay_ms: 0,
            events: 3,
            keep_bodies: true,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Mock {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Mock {
    pub(crate) fn requests(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Binds `addr` (port 0 for any) and serves on the current tokio runtime.
pub(crate) async fn start(addr: SocketAddr, options: MockOptions) -> std::io::Result<Mock> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let mock = Mock {
        addr: listener.local_addr()?,
        received: Arc::default(),
    };
    let state = (mock.received.clone(), Arc::new(options));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    handle(req, state.0.clone(), state.1.clone())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(mock)
}

type MockBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

fn full(status: u16, content_type: &str, body: Vec<u8>, gzip: bool) -> Response<MockBody> {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", content_type);
    let body = if gzip {
        b = b.header("content-encoding", "gzip");
        gzip_bytes(&body)
    } else {
        body
    };
    b.body(
        Full::new(Bytes::from(body))
            .map_err(|e: Infallible| match e {})
            .boxed(),
    )
    .unwrap_or_else(|_| {
        Response::new(
            http_body_util::Empty::new()
                .map_err(|e: Infallible| match e {})
                .boxed(),
        )
    })
}

pub(crate) fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Api {
    OpenAiChat,
    OpenAiResponses,
    Anthropic,
    Gemini,
}

async fn handle(
    req: Request<Incoming>,
    received: Arc<Mutex<Vec<Received>>>,
    options: Arc<MockOptions>,
) -> Result<Response<MockBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let host = header("host").unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    if let Ok(mut r) = received.lock() {
        r.push(Received {
            method: parts.method.to_string(),
            path: path.clone(),
            host: host.clone(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body_len: body.len(),
            body_sha256: sha256_hex(&body),
            body: if options.keep_bodies {
                body.clone()
            } else {
                Bytes::new()
            },
        });
    }
    let delay = header("x-mock-delay-ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(options.delay_ms);
    let events = header("x-mock-events")
        .and_then(|v| v.parse().ok())
        .unwrap_or(options.events);
    let gzip = header("x-mock-gzip").is_some_and(|v| v == "1");
    let fail = header("x-mock-fail").unwrap_or_default();
    let hop = header("x-mock-hop").is_some_and(|v| v == "1");

    let p = parts.uri.path();
    let api = if p.ends_with("/chat/completions") {
        Api::OpenAiChat
    } else if p.ends_with("/responses") {
        Api::OpenAiResponses
    } else if p.ends_with("/messages") {
        Api::Anthropic
    } else if p.contains(":generateContent") || p.contains(":streamGenerateContent") {
        Api::Gemini
    } else if p.ends_with("/models") {
        return Ok(full(
            200,
            "application/json",
            json!({"object": "list", "data": [{"id": "mock-model", "object": "model"}]})
                .to_string()
                .into_bytes(),
            gzip,
        ));
    } else {
        return Ok(full(
            404,
            "application/json",
            json!({"error": {"message": format!("mock: no route {p}")}})
                .to_string()
                .into_bytes(),
            false,
        ));
    };
    match fail.as_str() {
        "hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        "500" => {
            return Ok(full(
                500,
                "application/json",
                vendor_error(api, 500, "mock internal error"),
                false,
            ))
        }
        "429" => {
            return Ok(full(
                429,
                "application/json",
                vendor_error(api, 429, "mock rate limit"),
                false,
            ))
        }
        _ => {}
    }
    let req_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = req_json
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-model")
        .to_string();
    let stream = match api {
        Api::Gemini => p.contains(":streamGenerateContent"),
        _ => req_json
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    let mistral = host.starts_with("api.mistral.ai");
    let include_usage = mistral
        || req_json
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    if !stream && fail == "close" {
        // half of the JSON answer, then the connection breaks
        let whole = json_response(api, &model, events).to_string().into_bytes();
        let (mut tx, rx) = Channel::<Bytes, std::io::Error>::new(2);
        tokio::spawn(async move {
            let _ = tx
                .send_data(Bytes::copy_from_slice(&whole[..whole.len() / 2]))
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.abort(std::io::Error::other("mock: cut mid-body"));
        });
        let resp = Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(rx.boxed());
        return Ok(resp.unwrap_or_else(|_| full(500, "text/plain", vec![], false)));
    }
    if !stream {
        let v = json_response(api, &model, events);
        return Ok(full(
            200,
            "application/json",
            v.to_string().into_bytes(),
            gzip,
        ));
    }
    let frames = sse_events(api, &model, events, include_usage);
    let (mut tx, rx) = Channel::<Bytes, std::io::Error>::new(4);
    let cut = fail == "close";
    tokio::spawn(async move {
        let mut enc =
            gzip.then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        let n = frames.len();
        for (i, f) in frames.into_iter().enumerate() {
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if cut && i == n / 2 {
                tx.abort(std::io::Error::other("mock: cut mid-stream"));
                return;
            }
            let chunk = match enc.as_mut() {
                Some(e) => {
                    let _ = e.write_all(f.as_bytes());
                    let _ = e.flush();
                    std::mem::take(e.get_mut())
                }
                None => f.into_bytes(),
            };
            if tx.send_data(Bytes::from(chunk)).await.is_err() {
                return;
            }
        }
        if let Some(e) = enc {
            if let Ok(rest) = e.finish() {
                let _ = tx.send_data(Bytes::from(rest)).await;
            }
        }
    });
    let mut b = Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache");
    if gzip {
        b = b.header("content-encoding", "gzip");
    }
    if hop {
        b = b
            .header("connection", "x-vendor-hop")
            .header("x-vendor-hop", "1")
            .header("keep-alive", "timeout=5, max=100");
    }
    Ok(b.body(rx.boxed())
        .unwrap_or_else(|_| full(500, "text/plain", vec![], false)))
}

fn vendor_error(api: Api, status: u16, message: &str) -> Vec<u8> {
    let v = match api {
        Api::Anthropic => {
            json!({"type": "error", "error": {"type": "api_error", "message": message}})
        }
        Api::Gemini => json!({"error": {"code": status, "message": message, "status": "INTERNAL"}}),
        _ => json!({"error": {"message": message, "type": "server_error", "code": null}}),
    };
    v.to_string().into_bytes()
}

fn text(events: u64) -> String {
    WORD.repeat(events as usize)
}

fn json_response(api: Api, model: &str, events: u64) -> Value {
    let out = events * COMPLETION_TOKENS_PER_EVENT;
    match api {
        Api::OpenAiChat => json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text(events)}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": out, "total_tokens": PROMPT_TOKENS + out}
        }),
        Api::OpenAiResponses => json!({
            "id": "resp_mock", "object": "response", "created_at": 1_700_000_000, "model": model, "status": "completed",
            "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text(events)}]}],
            "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": out, "total_tokens": PROMPT_TOKENS + out}
        }),
        Api::Anthropic => json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text(events)}], "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": out}
        }),
        Api::Gemini => json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": text(events)}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": PROMPT_TOKENS, "candidatesTokenCount": out, "totalTokenCount": PROMPT_TOKENS + out},
            "modelVersion": model
        }),
    }
}

/// The stream as each vendor frames it.
fn sse_events(api: Api, model: &str, events: u64, include_usage: bool) -> Vec<String> {
    let out = events * COMPLETION_TOKENS_PER_EVENT;
    let data = |v: Value| format!("data: {v}\n\n");
    let named = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
    let mut f = Vec::new();
    match api {
        Api::OpenAiChat => {
            let chunk = |delta: Value, finish: Value| json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
            f.push(data(chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            )));
            for _ in 0..events {
                f.push(data(chunk(json!({"content": WORD}), Value::Null)));
            }
            let mut last = chunk(json!({}), json!("stop"));
            if include_usage {
                last["usage"] = json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": out, "total_tokens": PROMPT_TOKENS + out});
            }
            f.push(data(last));
            f.push("data: [DONE]\n\n".to_string());
        }
        Api::OpenAiResponses => {
            f.push(named("response.created", json!({"type": "response.created", "response": {"id": "resp_mock", "model": model, "status": "in_progress"}})));
            for _ in 0..events {
                f.push(named(
                    "response.output_text.delta",
                    json!({"type": "response.output_text.delta", "delta": WORD}),
                ));
            }
            f.push(named("response.completed", json!({"type": "response.completed", "response": {"id": "resp_mock", "model": model, "status": "completed", "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": out, "total_tokens": PROMPT_TOKENS + out}}})));
        }
        Api::Anthropic => {
            f.push(named("message_start", json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}}})));
            f.push(named("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
            f.push(named("ping", json!({"type": "ping"})));
            for _ in 0..events {
                f.push(named("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": WORD}})));
            }
            f.push(named(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ));
            f.push(named("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": out}})));
            f.push(named("message_stop", json!({"type": "message_stop"})));
        }
        Api::Gemini => {
            for i in 1..=events {
                let so_far = i * COMPLETION_TOKENS_PER_EVENT;
                let mut c = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": WORD}]}, "index": 0}],
                    "usageMetadata": {"promptTokenCount": PROMPT_TOKENS, "candidatesTokenCount": so_far, "totalTokenCount": PROMPT_TOKENS + so_far},
                    "modelVersion": model});
                if i == events {
                    c["candidates"][0]["finishReason"] = json!("STOP");
                }
                // Gemini frames with \r\n line endings
                f.push(format!("data: {c}\r\n\r\n"));
            }
        }
    }
    f
}
