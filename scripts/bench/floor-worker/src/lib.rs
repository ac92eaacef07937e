//! A do-nothing workers-rs Worker: answers every request with the same JSON
//! document (about the size of our authorization-server metadata) and a
//! `cache-control` header, through the same `worker` request and response
//! types as adapter-worker. The runtime's floor for scripts/bench.sh.

use worker::{Context, Env, Request, Response, Result, event};

const BODY: &str = include_str!("body.txt");

/// Every request gets the fixed document.
#[event(fetch)]
async fn fetch(_req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    let mut resp = Response::ok(BODY)?;
    resp.headers_mut().set("content-type", "application/json")?;
    resp.headers_mut().set("cache-control", "max-age=3600")?;
    Ok(resp)
}
