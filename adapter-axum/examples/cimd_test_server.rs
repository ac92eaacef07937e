//! **Tests only.** The local HTTPS server of `tests/cimd.rs` as a process,
//! for the client ID metadata document tests that run over HTTP against the
//! Lambda function and the Worker (`scripts/test.d/55-worker-cimd.sh`,
//! `65-lambda-cimd.sh`, `e2e/cimd.test.mjs`).
//!
//! ```text
//! cargo run -p adapter-axum --example cimd_test_server -- \
//!     --name client.test --name localhost --info /tmp/cimd.json --ca /tmp/cimd-ca.pem
//! ```
//!
//! It generates a CA for this run, serves the routes listed in
//! `tests/support/cimd_server.rs` over TLS on `127.0.0.1` (and `[::1]`,
//! same port) with a certificate for every `--name`, writes the CA
//! certificate (PEM) to `--ca`, and then, atomically, `--info`:
//!
//! ```json
//! { "port": 40123, "stats_url": "http://127.0.0.1:40124/", "ca_file": "/tmp/cimd-ca.pem",
//!   "ec_private_jwk": { "kty": "EC", "kid": "ec1", "d": "…", … }, "rsa_private_pem": "…" }
//! ```
//!
//! The private keys are the test-only keys whose public halves the
//! documents publish, so a client outside Rust can sign `private_key_jwt`
//! assertions. `stats_url` (plain HTTP, loopback) answers the connections
//! accepted and the requests per path, so a test can prove a refused URL was
//! never connected to and a redirect never followed. Runs until killed.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

#[path = "../tests/support/cimd_server.rs"]
mod cimd_server;

fn usage() -> ! {
    eprintln!("usage: cimd_test_server --name HOST [--name HOST ...] --info FILE --ca FILE");
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut names, mut info, mut ca) = (Vec::new(), None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--name" => names.push(value),
            "--info" => info = Some(PathBuf::from(value)),
            "--ca" => ca = Some(PathBuf::from(value)),
            _ => usage(),
        }
    }
    let (Some(info), Some(ca)) = (info, ca) else { usage() };
    if names.is_empty() {
        usage();
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let server = Arc::new(cimd_server::start(&names).await);

    let stats = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let stats_port = stats.local_addr()?.port();
    let for_stats = Arc::clone(&server);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = stats.accept().await else { return };
            let server = Arc::clone(&for_stats);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_: Request<hyper::body::Incoming>| {
                    let body = server.stats().to_string();
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
                                .expect("a valid response"),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
            });
        }
    });

    std::fs::write(&ca, &server.ca_pem)?;
    let details = json!({
        "port": server.port,
        "names": names,
        "stats_url": format!("http://127.0.0.1:{stats_port}/"),
        "ca_file": ca,
        "ec_private_jwk": cimd_server::ec_private_jwk(),
        "rsa_private_pem": cimd_server::RSA_KEY_PEM,
        "slow_secs": cimd_server::SLOW_SECS,
    });
    // Written whole, then renamed: a reader never sees half a file.
    let partial = info.with_extension("partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(&details)?)?;
    std::fs::rename(&partial, &info)?;
    println!("cimd_test_server: https on 127.0.0.1:{} for {names:?}, stats on {stats_port}", server.port);
    std::future::pending::<()>().await;
    Ok(())
}
