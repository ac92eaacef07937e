//! Soak load generator: mixed OAuth + MCP traffic against one example
//! server, every response checked, the server's memory sampled.
//!
//! ```text
//! soak-load --base-url http://127.0.0.1:8080 --server-pid 1234 \
//!           [--seconds 60] [--max-requests 1000000] [--rate 300] [--concurrency 16] \
//!           [--sample-secs 5] [--rss-growth-pct 20]
//! ```
//!
//! Loopback only (the base URL must name 127.0.0.0/8, `localhost` or
//! `[::1]`), and bounded twice: it stops at `--seconds` or after
//! `--max-requests` HTTP requests, whichever comes first, and paces itself
//! to `--rate` operations per second in total.
//!
//! Each worker owns its own grants (strict refresh rotation treats two
//! concurrent uses of one refresh token as theft), so every request has one
//! right answer: bearer-checked `GET /mcp/echo` (the majority), MCP
//! `tools/call` POSTs, dynamic registrations (public and confidential), full
//! code flows (authorize + token), refreshes, revocations followed by the
//! refused token, and the 401/400 paths (no token, unknown token, refresh
//! with a garbage token). A response whose status differs from the expected
//! one, or a transport error, is an error; the run fails on any.
//!
//! Every `--sample-secs` it reads `VmRSS` of `--server-pid` from
//! `/proc/PID/status`. Memory must stay flat: after a warm-up (the first
//! fifth of the run, at least 10 s), the maximum RSS of the last window
//! may exceed the maximum of the first window by at most
//! `--rss-growth-pct` percent (windows: 60 s, or a third of the run when
//! shorter). Prints a progress line per sample and a summary, and exits
//! non-zero on any error, a dead server or growing memory.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Error samples kept for the report (all errors are counted).
const KEEP_ERRORS: usize = 20;

// ------------------------------------------------------------------ options

struct Options {
    base: String,
    server_pid: Option<u32>,
    seconds: u64,
    max_requests: u64,
    rate: u64,
    concurrency: usize,
    sample_secs: u64,
    rss_growth_pct: u64,
}

fn usage() -> String {
    "usage: soak-load --base-url URL [--server-pid PID] [--seconds N] [--max-requests N] [--rate OPS_PER_SEC] \
     [--concurrency N] [--sample-secs N] [--rss-growth-pct N]"
        .to_owned()
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        base: String::new(),
        server_pid: None,
        seconds: 60,
        max_requests: 1_000_000,
        rate: 300,
        concurrency: 16,
        sample_secs: 5,
        rss_growth_pct: 20,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value\n{}", usage()));
        let num = |v: String| v.parse::<u64>().map_err(|_| format!("{a}: not a number: {v}"));
        match a.as_str() {
            "--base-url" => o.base = value()?.trim_end_matches('/').to_owned(),
            "--server-pid" => o.server_pid = Some(u32::try_from(num(value()?)?).map_err(|e| e.to_string())?),
            "--seconds" => o.seconds = num(value()?)?,
            "--max-requests" => o.max_requests = num(value()?)?,
            "--rate" => o.rate = num(value()?)?,
            "--concurrency" => o.concurrency = usize::try_from(num(value()?)?).map_err(|e| e.to_string())?,
            "--sample-secs" => o.sample_secs = num(value()?)?,
            "--rss-growth-pct" => o.rss_growth_pct = num(value()?)?,
            _ => return Err(usage()),
        }
    }
    if o.base.is_empty() {
        return Err(usage());
    }
    let url = url::Url::parse(&o.base).map_err(|e| format!("--base-url: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if !loopback {
        return Err(format!("{} is not a loopback address: the soak only targets this machine", o.base));
    }
    if !(1..=3600).contains(&o.seconds) || o.max_requests == 0 || o.rate == 0 || o.concurrency == 0 {
        return Err("need 1 <= --seconds <= 3600 and positive --max-requests, --rate, --concurrency".into());
    }
    o.sample_secs = o.sample_secs.max(1);
    Ok(o)
}

// -------------------------------------------------------------------- stats

/// What one HTTP request was, for the counts.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Echo,
    EchoNoToken,
    EchoUnknownToken,
    EchoRevoked,
    McpCall,
    Register,
    Authorize,
    TokenCode,
    TokenRefresh,
    TokenBadRefresh,
    Revoke,
    Metadata,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Echo => "GET /mcp/echo (valid token) -> 200",
            Self::EchoNoToken => "GET /mcp/echo (no token) -> 401",
            Self::EchoUnknownToken => "GET /mcp/echo (unknown token) -> 401",
            Self::EchoRevoked => "GET /mcp/echo (revoked token) -> 401",
            Self::McpCall => "POST /mcp tools/call -> 200",
            Self::Register => "POST /register -> 201",
            Self::Authorize => "GET /authorize -> 302",
            Self::TokenCode => "POST /token (code) -> 200",
            Self::TokenRefresh => "POST /token (refresh) -> 200",
            Self::TokenBadRefresh => "POST /token (garbage refresh) -> 400/401",
            Self::Revoke => "POST /revoke -> 200",
            Self::Metadata => "GET metadata -> 200",
        }
    }
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    errors: AtomicU64,
    by_kind: Mutex<BTreeMap<Kind, u64>>,
    samples: Mutex<Vec<String>>,
    /// Latency histogram: bucket i counts requests of [2^i, 2^(i+1)) µs.
    latency: [AtomicU64; 32],
}

impl Stats {
    fn record(&self, kind: Kind, elapsed: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.by_kind.lock() {
            *m.entry(kind).or_default() += 1;
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).max(1);
        let bucket = usize::try_from(63 - micros.leading_zeros()).unwrap_or(0).min(31);
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.samples.lock()
            && s.len() < KEEP_ERRORS
        {
            s.push(what);
        }
    }

    /// The upper bound (ms) of the bucket holding quantile `q`.
    fn quantile_ms(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self.latency.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen as f64 >= q * total as f64 {
                return (1u64 << (i + 1)) as f64 / 1000.0;
            }
        }
        f64::INFINITY
    }
}

// ------------------------------------------------------------------- client

#[derive(Clone)]
struct Endpoints {
    authorize: String,
    token: String,
    register: String,
    revoke: String,
    resource: String,
    issuer: String,
    prm: String,
}

struct Registered {
    id: String,
    secret: Option<String>,
}

struct Grant {
    client: Registered,
    access: String,
    refresh: String,
}

struct Worker {
    base: String,
    http: reqwest::Client,
    ep: Endpoints,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    max_requests: u64,
    rng: u64,
    grant: Option<Grant>,
    revoked: Vec<String>,
}

/// An unexpected answer; the request is already counted.
struct Unexpected;

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // getrandom only fails without an OS entropy source; a zero buffer
    // still makes a well-formed (if predictable) test value.
    let _ = getrandom::fill(&mut buf);
    Base64UrlUnpadded::encode_string(&buf)
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

impl Worker {
    fn next_rand(&mut self) -> u64 {
        // xorshift64*: op selection only, nothing secret.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn exhausted(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.stats.requests.load(Ordering::Relaxed) >= self.max_requests
    }

    /// Send `req`, record it as `kind`, and compare the status with `expect`.
    async fn send(
        &self,
        kind: Kind,
        expect: u16,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Unexpected> {
        let started = Instant::now();
        let result = req.send().await;
        self.stats.record(kind, started.elapsed());
        match result {
            Ok(resp) if resp.status().as_u16() == expect => Ok(resp),
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body: String = resp.text().await.unwrap_or_default().chars().take(200).collect();
                self.stats.error(format!("{}: got {status} {body}", kind.label()));
                Err(Unexpected)
            }
            Err(e) => {
                self.stats.error(format!("{}: transport error: {e}", kind.label()));
                Err(Unexpected)
            }
        }
    }

    async fn json_body(&self, kind: Kind, resp: reqwest::Response) -> Result<Value, Unexpected> {
        match resp.json::<Value>().await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.stats.error(format!("{}: unreadable body: {e}", kind.label()));
                Err(Unexpected)
            }
        }
    }

    fn bad(&self, kind: Kind, what: String) -> Unexpected {
        self.stats.error(format!("{}: {what}", kind.label()));
        Unexpected
    }

    async fn register(&mut self) -> Result<Registered, Unexpected> {
        let confidential = self.next_rand().is_multiple_of(2);
        let method = if confidential { "client_secret_post" } else { "none" };
        let body = json!({
            "client_name": "soak",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
        });
        let req = self.http.post(&self.ep.register).header("content-type", "application/json").body(body.to_string());
        let resp = self.send(Kind::Register, 201, req).await?;
        let v = self.json_body(Kind::Register, resp).await?;
        let id = v["client_id"].as_str().ok_or_else(|| self.bad(Kind::Register, "no client_id".into()))?.to_owned();
        let secret = v["client_secret"].as_str().map(str::to_owned);
        if confidential != secret.is_some() {
            return Err(self.bad(Kind::Register, format!("secret presence {} for {method}", secret.is_some())));
        }
        Ok(Registered { id, secret })
    }

    fn client_auth<'a>(c: &'a Registered, pairs: &mut Vec<(&'a str, &'a str)>) {
        pairs.push(("client_id", &c.id));
        if let Some(s) = &c.secret {
            pairs.push(("client_secret", s));
        }
    }

    /// Register, authorize, exchange: a new grant.
    async fn code_flow(&mut self) -> Result<Grant, Unexpected> {
        let client = self.register().await?;
        let verifier = random_b64(32);
        let challenge = Base64UrlUnpadded::encode_string(&Sha256::digest(verifier.as_bytes()));
        let state = random_b64(12);
        let query = form(&[
            ("response_type", "code"),
            ("client_id", &client.id),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "todo:read todo:write"),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", &self.ep.resource),
        ]);
        let resp = self.send(Kind::Authorize, 302, self.http.get(format!("{}?{query}", self.ep.authorize))).await?;
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let loc =
            url::Url::parse(&location).map_err(|_| self.bad(Kind::Authorize, format!("Location {location:?}")))?;
        let param = |k: &str| loc.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
        if param("state").as_deref() != Some(state.as_str()) || param("iss").as_deref() != Some(self.ep.issuer.as_str())
        {
            return Err(self.bad(Kind::Authorize, format!("state/iss wrong in {location}")));
        }
        let code = param("code").ok_or_else(|| self.bad(Kind::Authorize, format!("no code in {location}")))?;
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier.as_str()),
            ("resource", self.ep.resource.as_str()),
        ];
        Self::client_auth(&client, &mut pairs);
        let body = form(&pairs);
        let req = self.http.post(&self.ep.token).header("content-type", "application/x-www-form-urlencoded").body(body);
        let resp = self.send(Kind::TokenCode, 200, req).await?;
        let v = self.json_body(Kind::TokenCode, resp).await?;
        match (v["access_token"].as_str(), v["refresh_token"].as_str()) {
            (Some(a), Some(r)) => Ok(Grant { client, access: a.to_owned(), refresh: r.to_owned() }),
            _ => Err(self.bad(Kind::TokenCode, format!("tokens missing: {v}"))),
        }
    }

    async fn refresh(&mut self) -> Result<(), Unexpected> {
        let Some(grant) = self.grant.take() else { return Ok(()) };
        let mut pairs = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", grant.refresh.as_str()),
            ("resource", self.ep.resource.as_str()),
        ];
        Self::client_auth(&grant.client, &mut pairs);
        let body = form(&pairs);
        let req = self.http.post(&self.ep.token).header("content-type", "application/x-www-form-urlencoded").body(body);
        let resp = self.send(Kind::TokenRefresh, 200, req).await?;
        let v = self.json_body(Kind::TokenRefresh, resp).await?;
        match (v["access_token"].as_str(), v["refresh_token"].as_str()) {
            (Some(a), Some(r)) => {
                self.grant = Some(Grant { client: grant.client, access: a.to_owned(), refresh: r.to_owned() });
                Ok(())
            }
            _ => Err(self.bad(Kind::TokenRefresh, format!("tokens missing: {v}"))),
        }
    }

    /// Revoke the grant (by its refresh token) and check its access token is refused.
    async fn revoke(&mut self) -> Result<(), Unexpected> {
        let Some(grant) = self.grant.take() else { return Ok(()) };
        let mut pairs = vec![("token", grant.refresh.as_str()), ("token_type_hint", "refresh_token")];
        Self::client_auth(&grant.client, &mut pairs);
        let body = form(&pairs);
        let req =
            self.http.post(&self.ep.revoke).header("content-type", "application/x-www-form-urlencoded").body(body);
        self.send(Kind::Revoke, 200, req).await?;
        self.echo(Kind::EchoRevoked, &grant.access, 401).await?;
        if self.revoked.len() >= 8 {
            self.revoked.remove(0);
        }
        self.revoked.push(grant.access);
        Ok(())
    }

    async fn echo(&self, kind: Kind, token: &str, expect: u16) -> Result<(), Unexpected> {
        let url = format!("{}/mcp/echo", self.base);
        let req = if token.is_empty() { self.http.get(url) } else { self.http.get(url).bearer_auth(token) };
        let resp = self.send(kind, expect, req).await?;
        if expect == 200 {
            let v = self.json_body(kind, resp).await?;
            if v["user_id"] != "demo" {
                return Err(self.bad(kind, format!("echo body {v}")));
            }
        } else {
            let challenge = resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !challenge.starts_with("Bearer ") {
                return Err(self.bad(kind, format!("challenge {challenge:?}")));
            }
            let _ = resp.bytes().await;
        }
        Ok(())
    }

    async fn mcp_call(&mut self, access: &str) -> Result<(), Unexpected> {
        let tool = if self.next_rand().is_multiple_of(2) { "whoami" } else { "list_todos" };
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}});
        let req = self
            .http
            .post(format!("{}/mcp", self.base))
            .bearer_auth(access)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        let resp = self.send(Kind::McpCall, 200, req).await?;
        let v = self.json_body(Kind::McpCall, resp).await?;
        if v["result"]["isError"] != false {
            return Err(self.bad(Kind::McpCall, format!("{tool}: {v}")));
        }
        Ok(())
    }

    /// One operation, chosen by weight. The grant is replaced when gone.
    async fn op(&mut self) -> Result<(), Unexpected> {
        if self.grant.is_none() {
            let g = self.code_flow().await?;
            self.grant = Some(g);
            return Ok(());
        }
        let access = self.grant.as_ref().map(|g| g.access.clone()).unwrap_or_default();
        match self.next_rand() % 100 {
            0..=64 => self.echo(Kind::Echo, &access, 200).await,
            65..=74 => self.mcp_call(&access).await,
            75..=77 => self.echo(Kind::EchoNoToken, "", 401).await,
            78..=80 => self.echo(Kind::EchoUnknownToken, &format!("mcp_at_{}", random_b64(48)), 401).await,
            81..=82 => match self.revoked.last().cloned() {
                Some(t) => self.echo(Kind::EchoRevoked, &t, 401).await,
                None => self.echo(Kind::Echo, &access, 200).await,
            },
            83..=86 => self.register().await.map(drop),
            87..=90 => self.refresh().await,
            91..=92 => self.revoke().await,
            93..=94 => {
                let body = form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &format!("mcp_rt_{}", random_b64(48))),
                    ("client_id", self.grant.as_ref().map(|g| g.client.id.as_str()).unwrap_or("x")),
                ]);
                let req = self
                    .http
                    .post(&self.ep.token)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body);
                // A public client's garbage refresh token is invalid_grant; a
                // confidential client without its secret is invalid_client (401).
                let expect = if self.grant.as_ref().is_some_and(|g| g.client.secret.is_some()) { 401 } else { 400 };
                self.send(Kind::TokenBadRefresh, expect, req).await.map(drop)
            }
            95..=96 => self.send(Kind::Metadata, 200, self.http.get(&self.ep.prm)).await.map(drop),
            _ => {
                // A new grant replaces the current one (which stays valid and unused).
                let g = self.code_flow().await?;
                self.grant = Some(g);
                Ok(())
            }
        }
    }

    async fn run(mut self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.exhausted() {
            ticker.tick().await;
            if self.exhausted() {
                break;
            }
            if self.op().await.is_err() {
                // The grant may be in an unknown state now: start afresh.
                self.grant = None;
            }
        }
    }
}

// ------------------------------------------------------------------ memory

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Sample {
    t: f64,
    rss: Option<u64>,
}

/// The flatness verdict: (first-window max, last-window max, ok, description).
fn rss_verdict(samples: &[Sample], run_secs: f64, growth_pct: u64) -> Option<(u64, u64, bool, String)> {
    let warmup = (run_secs / 5.0).max(10.0);
    let window = ((run_secs - warmup) / 2.0).min(60.0);
    if window < 5.0 {
        return None;
    }
    let max_in = |from: f64, to: f64| samples.iter().filter(|s| s.t >= from && s.t <= to).filter_map(|s| s.rss).max();
    let first = max_in(warmup, warmup + window)?;
    let last = max_in(run_secs - window, run_secs)?;
    let limit = first + first * growth_pct / 100;
    let ok = last <= limit;
    let text = format!(
        "first window [{warmup:.0}s, {:.0}s] max {first} KiB; last window [{:.0}s, {run_secs:.0}s] max {last} KiB; \
         growth {:+.1}% (limit +{growth_pct}%)",
        warmup + window,
        run_secs - window,
        (last as f64 - first as f64) * 100.0 / first as f64,
    );
    Some((first, last, ok, text))
}

// -------------------------------------------------------------------- main

/// RFC 8414 §3.1 / RFC 9728 §3.1: `/.well-known/{name}` goes between the
/// origin and the path of `url` (`https://h/p/mcp` ->
/// `https://h/.well-known/{name}/p/mcp`).
fn well_known(url: &str, name: &str) -> Result<String, String> {
    let u = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    Ok(format!("{}/.well-known/{name}{}", u.origin().ascii_serialization(), u.path().trim_end_matches('/')))
}

async fn discover(http: &reqwest::Client, base: &str) -> Result<Endpoints, String> {
    let get = |url: String| async move {
        let r = http.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        if r.status() != 200 {
            return Err(format!("GET {url}: HTTP {}", r.status()));
        }
        r.json::<Value>().await.map_err(|e| format!("GET {url}: {e}"))
    };
    let prm_url = well_known(&format!("{base}/mcp"), "oauth-protected-resource")?;
    let prm = get(prm_url.clone()).await?;
    let issuer = prm["authorization_servers"][0].as_str().ok_or("no authorization server in the PRM")?.to_owned();
    let meta = get(well_known(&issuer, "oauth-authorization-server")?).await?;
    let s = |k: &str| meta[k].as_str().map(str::to_owned).ok_or_else(|| format!("metadata has no {k}"));
    Ok(Endpoints {
        authorize: s("authorization_endpoint")?,
        token: s("token_endpoint")?,
        register: s("registration_endpoint")?,
        revoke: s("revocation_endpoint")?,
        resource: prm["resource"].as_str().ok_or("no resource in the PRM")?.to_owned(),
        issuer,
        prm: prm_url,
    })
}

async fn soak(o: Options) -> Result<bool, String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HTTP_TIMEOUT)
        .pool_max_idle_per_host(o.concurrency)
        .build()
        .map_err(|e| e.to_string())?;
    let ep = discover(&http, &o.base).await?;
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(o.seconds);

    // Each worker runs at rate / concurrency operations per second.
    let per_worker = Duration::from_secs_f64(o.concurrency as f64 / o.rate as f64);
    let mut workers = Vec::new();
    for i in 0..o.concurrency {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        let w = Worker {
            base: o.base.clone(),
            http: http.clone(),
            ep: ep.clone(),
            stats: stats.clone(),
            stop: stop.clone(),
            max_requests: o.max_requests,
            rng: u64::from_le_bytes(seed) | 1 | (i as u64) << 32,
            grant: None,
            revoked: Vec::new(),
        };
        workers.push(tokio::spawn(w.run(per_worker)));
    }

    println!(
        "soak: {} for {} s (at most {} requests), {} ops/s over {} workers, RSS of pid {} every {} s",
        o.base,
        o.seconds,
        o.max_requests,
        o.rate,
        o.concurrency,
        o.server_pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
        o.sample_secs
    );
    let mut samples = Vec::new();
    let mut server_gone = false;
    let mut tick = tokio::time::interval(Duration::from_secs(o.sample_secs));
    loop {
        tick.tick().await;
        let t = started.elapsed().as_secs_f64();
        let rss = o.server_pid.and_then(rss_kib);
        if o.server_pid.is_some() && rss.is_none() {
            server_gone = true;
        }
        let requests = stats.requests.load(Ordering::Relaxed);
        let errors = stats.errors.load(Ordering::Relaxed);
        println!(
            "  t={t:6.1}s requests={requests:8} errors={errors} rss={}",
            rss.map_or_else(|| "-".to_owned(), |r| format!("{r} KiB"))
        );
        samples.push(Sample { t, rss });
        if server_gone || Instant::now() >= deadline || requests >= o.max_requests {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = tokio::time::timeout(HTTP_TIMEOUT * 3, w).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(rss) = o.server_pid.and_then(rss_kib) {
        samples.push(Sample { t: elapsed, rss: Some(rss) });
    }

    // ---- summary
    let requests = stats.requests.load(Ordering::Relaxed);
    let errors = stats.errors.load(Ordering::Relaxed);
    println!("\nsoak summary");
    println!("  duration        {elapsed:.1} s");
    println!("  requests        {requests} ({:.0}/s)", requests as f64 / elapsed);
    println!("  errors          {errors}");
    println!(
        "  latency         p50 <= {:.1} ms, p99 <= {:.1} ms, p99.9 <= {:.1} ms",
        stats.quantile_ms(0.5),
        stats.quantile_ms(0.99),
        stats.quantile_ms(0.999)
    );
    if let Ok(m) = stats.by_kind.lock() {
        for (k, n) in m.iter() {
            println!("  {n:9}  {}", k.label());
        }
    }
    if let Ok(s) = stats.samples.lock() {
        for e in s.iter() {
            println!("  error: {e}");
        }
    }
    let mut ok = errors == 0 && requests > 0;
    if server_gone {
        println!("  FAIL: the server (pid {:?}) is gone", o.server_pid);
        ok = false;
    }
    if o.server_pid.is_some() {
        let rss: Vec<u64> = samples.iter().filter_map(|s| s.rss).collect();
        if let (Some(min), Some(max)) = (rss.iter().min(), rss.iter().max()) {
            println!("  server RSS      min {min} KiB, max {max} KiB over {} samples", rss.len());
        }
        match rss_verdict(&samples, elapsed, o.rss_growth_pct) {
            Some((_, _, flat, text)) => {
                println!("  memory          {text}: {}", if flat { "flat" } else { "GROWING" });
                ok &= flat;
            }
            None => println!("  memory          run too short for a flatness verdict"),
        }
    }
    println!("soak: {}", if ok { "PASS" } else { "FAIL" });
    Ok(ok)
}

fn main() -> ExitCode {
    let o = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(soak(o)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}
