//! Storage round trips and operations per flow, as the drive loop counts
//! them (`Flow::stats`), with the kind of every operation, on the in-memory
//! store. The table in `docs/benchmarks.md` is this program's output.
//!
//! ```text
//! cargo run -p oauth-core --example round_trips            # markdown table
//! cargo run -p oauth-core --example round_trips -- --json  # one JSON object per flow
//! ```
//!
//! Every flow runs through `Provider::handle` (or the authorization helpers)
//! and `drive_blocking`, exactly as an adapter drives it; a recording store
//! wrapped around `MemoryStore` notes what each batch asked for.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use http::Request;
use oauth_core::testing::{MemoryStore, SeededRng};
use oauth_core::{
    Approval, BlockingStore, Flow, FlowOutput, FlowStats, Outcome, ProtectedResource, Provider, ProviderBuilder,
    RefreshPolicy, Reply, StorageError, StorageOp, StorageRequest, UnixTime, drive_blocking,
};

const ISSUER: &str = "https://as.example.com";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "https://client.example/cb";

/// `MemoryStore`, noting each batch's operations by kind and key family.
struct Recording {
    inner: MemoryStore,
    batches: Vec<Vec<String>>,
}

impl BlockingStore for Recording {
    fn execute(&mut self, request: StorageRequest) -> Result<Vec<Reply>, StorageError> {
        self.batches.push(request.ops.iter().map(describe).collect());
        self.inner.execute(request)
    }
}

/// `Get grant`, `Put IfRevision grant`, `List token/…`: the operation and
/// the first segment of its key.
fn describe(op: &StorageOp) -> String {
    let family = op.key().split('/').next().unwrap_or_default();
    match op {
        StorageOp::Get { .. } => format!("Get {family}"),
        StorageOp::Put { condition, .. } => {
            let c = format!("{condition:?}");
            let c = c.split('(').next().unwrap_or_default();
            if c == "Always" { format!("Put {family}") } else { format!("Put {c} {family}") }
        }
        StorageOp::Take { .. } => format!("Take {family}"),
        StorageOp::Delete { .. } => format!("Delete {family}"),
        StorageOp::List { .. } => format!("List {family}/…"),
        _ => format!("{op:?}"),
    }
}

struct World {
    provider: Provider,
    store: Recording,
    rng: SeededRng,
    now: UnixTime,
    client_id: String,
}

/// One measured flow: its name, the drive loop's counters, and what each
/// round trip held.
struct Row {
    flow: &'static str,
    stats: FlowStats,
    batches: Vec<Vec<String>>,
}

impl World {
    fn run<T: FlowOutput + Send + 'static>(&mut self, flow: &mut Flow<T>) -> (T, FlowStats, Vec<Vec<String>>) {
        self.store.batches.clear();
        let out = drive_blocking(flow, &mut self.store, |c| c.default_reply());
        (out, flow.stats(), std::mem::take(&mut self.store.batches))
    }

    fn request(&mut self, flow: &'static str, req: Request<Bytes>, rows: &mut Vec<Row>) -> Outcome {
        let mut f = self.provider.handle(req, self.now, &mut self.rng);
        let (out, stats, batches) = self.run(&mut f);
        rows.push(Row { flow, stats, batches });
        out
    }

    fn respond(&mut self, flow: &'static str, req: Request<Bytes>, rows: &mut Vec<Row>) -> serde_json::Value {
        match self.request(flow, req, rows) {
            Outcome::Response(r) => {
                assert!(r.status().is_success(), "{flow}: {}", r.status());
                serde_json::from_slice(r.body()).unwrap_or(serde_json::Value::Null)
            }
            other => panic!("{flow}: {other:?}"),
        }
    }

    /// Authorize (parse + complete) and return the code.
    fn code(&mut self, rows: &mut Vec<Row>, label: (&'static str, &'static str)) -> String {
        let uri: http::Uri = format!(
            "{ISSUER}/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={CHALLENGE}\
             &code_challenge_method=S256&scope=todo:read%20offline_access&resource={}",
            self.client_id,
            enc(REDIRECT),
            enc(&format!("{ISSUER}/mcp")),
        )
        .parse()
        .unwrap();
        let mut flow = self.provider.parse_authorization_request(&uri, self.now);
        let (req, stats, batches) = self.run(&mut flow);
        let req = req.unwrap();
        rows.push(Row { flow: label.0, stats, batches });
        let approval = Approval::new("user-1", req.scope.clone(), serde_json::json!({"upstream": "token-abc"}));
        let mut flow = self.provider.complete_authorization(&req, approval, self.now, &mut self.rng);
        let (done, stats, batches) = self.run(&mut flow);
        rows.push(Row { flow: label.1, stats, batches });
        let url = url::Url::parse(&done.unwrap().redirect_to).unwrap();
        url.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned()
    }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn form(path: &str, body: String) -> Request<Bytes> {
    Request::post(format!("{ISSUER}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from(body))
        .unwrap()
}

fn get(path: &str, bearer: Option<&str>) -> Request<Bytes> {
    let mut b = Request::get(format!("{ISSUER}{path}"));
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Bytes::new()).unwrap()
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let provider = ProviderBuilder::new(ISSUER)
        .resource(ProtectedResource::new(&format!("{ISSUER}/mcp")).unwrap().scopes_supported(["todo:read"]))
        .scopes_supported(["todo:read", "offline_access"])
        .refresh_policy(RefreshPolicy::Strict)
        .build()
        .unwrap();
    let mut w = World {
        provider,
        store: Recording { inner: MemoryStore::new(), batches: Vec::new() },
        rng: SeededRng::new(7),
        now: UnixTime::from_secs(1_800_000_000),
        client_id: String::new(),
    };
    let mut rows = Vec::new();

    w.respond("metadata (AS)", get("/.well-known/oauth-authorization-server", None), &mut rows);
    match w.request("401 challenge (no token)", get("/mcp", None), &mut rows) {
        Outcome::Response(r) => assert_eq!(r.status(), 401),
        other => panic!("{other:?}"),
    }
    let body = serde_json::json!({
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": "round-trips",
    });
    let reg = Request::post(format!("{ISSUER}/register"))
        .header("content-type", "application/json")
        .body(Bytes::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let client = w.respond("registration", reg, &mut rows);
    w.client_id = client["client_id"].as_str().unwrap().to_owned();

    let code = w.code(&mut rows, ("authorization request", "complete authorization (first grant)"));
    let exchange = |w: &World, code: &str| {
        format!(
            "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&client_id={}&redirect_uri={}",
            w.client_id,
            enc(REDIRECT)
        )
    };
    let tokens = w.respond("code exchange", form("/token", exchange(&w, &code)), &mut rows);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().expect("a refresh token").to_owned();

    match w.request("bearer check (GET /mcp)", get("/mcp", Some(&access)), &mut rows) {
        Outcome::Authorized { .. } => {}
        other => panic!("{other:?}"),
    }
    let body = format!("grant_type=refresh_token&refresh_token={refresh}&client_id={}", w.client_id);
    let rotated = w.respond("refresh (strict rotation)", form("/token", body), &mut rows);
    let access2 = rotated["access_token"].as_str().unwrap().to_owned();
    let refresh2 = rotated["refresh_token"].as_str().unwrap().to_owned();

    let body = format!("token={access2}&client_id={}", w.client_id);
    w.respond("revocation (access token)", form("/revoke", body), &mut rows);
    // The grant now has one live access token (the first).
    let body = format!("token={refresh2}&token_type_hint=refresh_token&client_id={}", w.client_id);
    w.respond("revocation (refresh token: grant + its tokens)", form("/revoke", body), &mut rows);

    // A second authorization of the same user and client replaces the first
    // grant (revoke_existing_grants, on by default, as in the incumbent).
    let code = w.code(&mut rows, ("authorization request (again)", "complete authorization (again)"));
    w.respond("code exchange (again)", form("/token", exchange(&w, &code)), &mut rows);
    let _ = w.code(&mut rows, ("authorization request (third)", "complete authorization (replacing a grant)"));

    if json {
        for r in &rows {
            let v = serde_json::json!({
                "flow": r.flow,
                "round_trips": r.stats.round_trips,
                "operations": r.stats.operations,
                "batches": r.batches,
            });
            println!("{v}");
        }
        return;
    }
    println!("| flow | round trips | operations | batches (one per round trip) |");
    println!("|---|---:|---:|---|");
    let mut seen = std::collections::HashSet::new();
    for r in &rows {
        // Print each distinct flow once (the repeats exist to reach a state).
        if r.flow.ends_with("(again)") || r.flow.ends_with("(third)") || !seen.insert(r.flow) {
            continue;
        }
        let batches = if r.batches.is_empty() {
            "none".to_owned()
        } else {
            r.batches.iter().map(|b| format!("[{}]", b.join(", "))).collect::<Vec<_>>().join(" → ")
        };
        println!("| {} | {} | {} | {} |", r.flow, r.stats.round_trips, r.stats.operations, batches);
    }
}
