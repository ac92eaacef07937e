//! Development-only test routes, compiled in with the `dev-routes` feature
//! and answered only when `MCP_DEV_TEST_ROUTES=1`. Never deploy with either.
//!
//! `POST /__dev/conformance` runs, inside workerd against the Worker's real
//! store binding:
//! * oauth-core's storage-conformance suite, declaring what the store
//!   gives: on KV, [`KvStore::CAPABILITIES`] (no atomic conditional writes,
//!   no atomic take; read-your-writes, which local KV gives); on the Durable
//!   Object, everything;
//! * the race cases, eight concurrent contenders each: judged on the Durable
//!   Object (exactly one must win); on KV not applicable, and run again
//!   claiming atomicity as an observation of what KV does under contention
//!   (reported, not judged);
//! * on KV, the 60-second minimum: records whose logical lifetime is below
//!   a minute (or already over) are written, KV's own expiration for each is
//!   read back from a listing and must be at least 60 s away, and each is
//!   logically gone from its own expiry on.
//!
//! The answer is JSON with `"ok"` and the reports as text.
//!
//! `POST /__dev/fetch?url=U&max_bytes=N&timeout_ms=T` runs adapter-worker's
//! [`WorkerFetcher`] on `U` inside workerd, so a test can check the fetcher
//! itself, below the core's own URL checks: a non-https URL or an IP-literal
//! host refused before any connection, a redirect returned and not
//! followed, the body cap, the timeout. The answer is JSON: `{"response":
//! {"status", "content_type", "body_bytes"}}` or `{"error":
//! "TooLarge"}` (the `FetchError` variant), with the time taken.

use std::time::Duration;

use adapter_worker::{CryptoRandom, KvStore, RequestContext, Store, WorkerFetcher};
use futures_util::future::join_all;
use oauth_core::testing::{Capabilities, ConformanceOptions, run_conformance, run_races};
use oauth_core::{Condition, Driver, Reply, SecureRandom, StorageError, StorageOp, StorageRequest, UnixTime};
use serde_json::{Value, json};
use worker::{Request, Response};

/// Contenders per race: enough to interleave every read before the writes.
const CONTENDERS: usize = 8;

pub(crate) async fn route(path: &str, req: &Request, cx: &RequestContext) -> worker::Result<Response> {
    match path {
        "/__dev/conformance" => conformance(cx.oauth.store()).await,
        "/__dev/fetch" => fetch(req).await,
        _ => Response::error("Not Found", 404),
    }
}

async fn conformance(store: &Store) -> worker::Result<Response> {
    let mut rng = CryptoRandom::new();
    let mut id = [0u8; 8];
    rng.fill(&mut id);
    let run: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let now = adapter_worker::now();

    let mut driver = store.clone();
    let (kind, capabilities) = match store {
        Store::Kv(_) => ("kv", KvStore::CAPABILITIES),
        _ => ("durable", Capabilities::ALL),
    };
    let opts = ConformanceOptions::new(format!("conformance/{run}"), now).with_capabilities(capabilities);
    let report = run_conformance(&mut driver, &opts).await;
    let races = run_races(&mut driver, &opts, |r| contenders(store, r)).await;
    let mut ok = report.all_passed() && races.all_passed();
    let mut body = serde_json::Map::new();
    if let Store::Kv(kv) = store {
        let observed_opts = ConformanceOptions::new(format!("conformance/{run}-observed"), now);
        let observed = run_races(&mut driver, &observed_opts, |r| contenders(store, r)).await;
        let (min_ttl_ok, min_ttl) = min_ttl(kv, &mut driver, &format!("conformance/{run}-ttl/"), now).await;
        ok &= min_ttl_ok;
        body.insert("observed_races_claiming_atomicity".into(), json!(observed.to_string()));
        body.insert("min_ttl".into(), min_ttl);
    }
    body.insert("ok".into(), json!(ok));
    body.insert("store".into(), json!(kind));
    body.insert("conformance".into(), json!(report.to_string()));
    body.insert("races".into(), json!(races.to_string()));
    Ok(Response::from_json(&body)?.with_status(if ok { 200 } else { 500 }))
}

async fn fetch(req: &Request) -> worker::Result<Response> {
    let url = req.url()?;
    let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    let Some(target) = param("url") else { return Response::error("url= is required", 400) };
    let max_bytes = param("max_bytes").and_then(|v| v.parse().ok()).unwrap_or(5120);
    let timeout = Duration::from_millis(param("timeout_ms").and_then(|v| v.parse().ok()).unwrap_or(5000));
    let started = worker::Date::now().as_millis();
    let result = WorkerFetcher::new().get(&target, "application/json", max_bytes, timeout).await;
    let elapsed_ms = worker::Date::now().as_millis().saturating_sub(started);
    let body = match result {
        Ok(r) => json!({
            "response": {
                "status": r.status,
                "content_type": r.content_type,
                "body_bytes": r.body.len(),
            },
            "elapsed_ms": elapsed_ms,
        }),
        Err(e) => {
            let variant = format!("{e:?}");
            let variant = variant.split('(').next().unwrap_or_default().to_owned();
            json!({ "error": variant, "message": e.to_string(), "elapsed_ms": elapsed_ms })
        }
    };
    Response::from_json(&body)
}

async fn contenders(store: &Store, request: StorageRequest) -> Vec<Result<Vec<Reply>, StorageError>> {
    join_all((0..CONTENDERS).map(|_| store.execute(request.clone()))).await
}

/// Records with lifetimes around and below KV's minimum: KV must hold each
/// at least 60 s, and the store must hide each from its own expiry on.
async fn min_ttl(store: &KvStore, driver: &mut Store, prefix: &str, now: UnixTime) -> (bool, Value) {
    let cases: [(&str, Option<i64>); 7] = [
        ("already-expired", Some(-5)),
        ("expires-now", Some(0)),
        ("one-second", Some(1)),
        ("fifty-nine-seconds", Some(59)),
        ("sixty-seconds", Some(60)),
        ("ninety-seconds", Some(90)),
        ("no-expiry", None),
    ];
    let at = |offset: i64| UnixTime::from_secs(now.as_secs().saturating_add_signed(offset));
    let mut ok = true;
    let mut details = Vec::new();
    let ops = cases
        .iter()
        .map(|(name, offset)| StorageOp::Put {
            key: format!("{prefix}{name}"),
            value: name.as_bytes().to_vec(),
            revision: 1,
            expires_at: offset.map(at),
            condition: Condition::Always,
        })
        .collect();
    let written = driver.storage(StorageRequest { now, ops }).await;
    if !matches!(&written, Ok(r) if r.iter().all(|r| *r == Reply::Written(true))) {
        return (false, json!({ "error": format!("the writes failed: {written:?}") }));
    }
    // KV's own view: the absolute expiration it holds for each key.
    let listed = match store.namespace().list().prefix(prefix.to_owned()).execute().await {
        Ok(listed) => listed,
        Err(e) => return (false, json!({ "error": format!("KV list failed: {e}") })),
    };
    for (name, offset) in cases {
        let key = format!("{prefix}{name}");
        let kv_expiration = listed.keys.iter().find(|k| k.name == key).and_then(|k| k.expiration);
        // Physically: at least a minute from the write, and never before the
        // logical expiry; none at all for a record that never expires.
        let physical_ok = match (offset, kv_expiration) {
            (Some(offset), Some(exp)) => exp >= now.as_secs() + 60 && exp >= at(offset).as_secs(),
            (None, None) => true,
            _ => false,
        };
        // Logically: alive one second before its expiry, gone at it.
        let mut logical_ok = true;
        if let Some(offset) = offset {
            let expiry = at(offset);
            let before = UnixTime::from_secs(expiry.as_secs().saturating_sub(1));
            if before >= now {
                logical_ok &= get(driver, &key, before).await == Some(true);
            }
            logical_ok &= get(driver, &key, expiry.max(now)).await == Some(false);
        } else {
            logical_ok &= get(driver, &key, now.plus(365 * 86_400)).await == Some(true);
        }
        ok &= physical_ok && logical_ok;
        details.push(json!({
            "record": name,
            "logical_expiry_in": offset,
            "kv_expiration_in": kv_expiration.map(|e| i128::from(e) - i128::from(now.as_secs())),
            "physical_ok": physical_ok,
            "logical_ok": logical_ok,
        }));
        let _ = driver.storage(StorageRequest { now, ops: vec![StorageOp::Delete { key }] }).await;
    }
    (ok, Value::Array(details))
}

/// Whether `key` is alive at `now`; `None` if the read failed.
async fn get(driver: &mut Store, key: &str, now: UnixTime) -> Option<bool> {
    match driver.storage(StorageRequest { now, ops: vec![StorageOp::Get { key: key.to_owned() }] }).await {
        Ok(r) => match r.as_slice() {
            [Reply::Entry(e)] => Some(e.is_some()),
            _ => None,
        },
        Err(_) => None,
    }
}
