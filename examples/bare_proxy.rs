//! A bare Pingora passthrough proxy: one `ProxyHttp` with only `upstream_peer`. It inspects
//! nothing, so it is the physical limit of the stack YORI is built on; `loadtest/compare.sh`
//! runs it beside YORI against the same mock.
//!
//!   cargo run --release --example bare_proxy -- --listen 127.0.0.1:8090 --upstream 127.0.0.1:9999 [--threads 1]
//!   curl -s localhost:8090/v1/chat/completions -d '{"model":"m","messages":[]}'

// A benchmark or demo tool: a failed step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_proxy::{ProxyHttp, Session};
use std::net::SocketAddr;

struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora_core::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:8090".into());
    let upstream = arg(&args, "--upstream")
        .unwrap_or_else(|| "127.0.0.1:9999".into())
        .parse()
        .expect("--upstream ip:port");
    let threads = arg(&args, "--threads")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let dir = std::env::temp_dir();
    let conf = ServerConf {
        threads,
        pid_file: dir
            .join(format!("bare-proxy-{}.pid", std::process::id()))
            .display()
            .to_string(),
        upgrade_sock: dir
            .join(format!("bare-proxy-{}.sock", std::process::id()))
            .display()
            .to_string(),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora_proxy::http_proxy_service(&server.configuration, Bare { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
