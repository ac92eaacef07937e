//! The authorization page: sign-in, consent, and the development
//! auto-approve switch.
//!
//! The protocol half (validating the request, recording the grant, building
//! the redirects) is oauth-core's `parse_authorization_request`,
//! `complete_authorization` and `deny_authorization`; this module is the
//! user interface around them.
//!
//! Its state lives in the store (KV, or the Durable Object), not in the
//! isolate's memory: the page and the form posted from it are often served
//! by different isolates (or colos).
//!
//! | key | record | expiry |
//! |---|---|---|
//! | `app/authz/{id}` | a validated request waiting for the user | 10 minutes from the page |
//! | `app/session/{sha256(session cookie)}` | the user a browser signed in as | 8 hours |
//! | `app/signin-failures/{b64url(user)}` | recent wrong passwords for an account | the end of the window |
//!
//! How the forms are protected:
//! * The validated [`AuthorizationRequest`] stays on the server, under a
//!   random id. Forms carry only that id and a random CSRF token, so nothing
//!   the client asked for can be edited on the way through the page.
//! * Each pending record is bound to the browser that opened it by a random
//!   browser id in an HttpOnly, SameSite=Lax cookie (`__Host-` prefixed and
//!   Secure when the issuer is https). A form post must present the record's
//!   CSRF token and come from that browser.
//! * Signing in mints a new, separate session cookie; a session id that
//!   existed before the sign-in is never honoured after it (no session
//!   fixation), and the browser id, which proves only where a page was
//!   opened, keeps binding the browser's other open pages. Deciding needs
//!   both: the page's browser and a session of the user who signed in on it.
//! * Cookie values are stored only as SHA-256 digests, so reading KV does not
//!   yield a live session.
//! * A decision takes (reads and deletes) the pending record, so each page
//!   is decided once. On KV that is a read then a delete: two posts of one
//!   page in the same instant could both be honoured, each issuing its own
//!   code to the same client for the same user (docs/adapter-worker.md); on
//!   the Durable Object store it is atomic.
//! * Failed sign-ins are counted per page (after a few, the page is gone)
//!   and per user name (after more, the name is locked for a while).

use oauth_core::{Approval, AuthorizationError, AuthorizationRequest, Condition, SecureRandom, UnixTime};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use worker::{Request, Response};

use adapter_worker::{CryptoRandom, RequestContext, Store, to_worker_response};
use demo_ui::Form;

use crate::app::App;
use crate::records::{self, RecordError, Versioned, user_segment};

/// How long the sign-in and consent pages stay usable.
const PENDING_TTL: u64 = 10 * 60;
/// How long a browser stays signed in for later authorizations.
const SESSION_TTL: u64 = 8 * 60 * 60;
/// Wrong passwords allowed on one sign-in page.
const MAX_LOGIN_ATTEMPTS: u32 = 5;
/// Wrong passwords allowed for one user name across all pages within
/// [`FAILURE_WINDOW`]; past that the name is locked until the window ends.
/// Page-level counting alone would let a script open page after page.
const MAX_ACCOUNT_FAILURES: u32 = 10;
const FAILURE_WINDOW: u64 = 15 * 60;
/// Compare-and-swap attempts on one record before giving up.
const CAS_ATTEMPTS: usize = 8;

/// One authorization request waiting for the user.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    request: AuthorizationRequest,
    csrf: String,
    /// SHA-256 of the browser id it was opened in (hex).
    browser: String,
    user: Option<String>,
    failed_logins: u32,
    /// The end of the page's ten minutes; updates keep it.
    expires_at: UnixTime,
}

/// A browser that signed in.
#[derive(Debug, Serialize, Deserialize)]
struct Session {
    user: String,
}

/// Recent wrong passwords for one user name.
#[derive(Debug, Serialize, Deserialize)]
struct Failures {
    count: u32,
    window_start: u64,
}

fn pending_key(id: &str) -> String {
    format!("app/authz/{id}")
}

fn session_key(session: &str) -> String {
    format!("app/session/{}", digest(session))
}

fn failures_key(user: &str) -> String {
    format!("app/signin-failures/{}", user_segment(user))
}

fn digest(value: &str) -> String {
    hex(&Sha256::digest(value.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Cookie names: `__Host-` makes the browser refuse the cookie unless it is
/// Secure, host-only and for `/`, so no sibling subdomain can plant or read
/// it. Browsers reject Secure cookies over plain http, so local development
/// uses unprefixed names.
fn cookie_names(app: &App) -> (&'static str, &'static str) {
    if app.secure_cookies { ("__Host-mcp_browser", "__Host-mcp_session") } else { ("mcp_browser", "mcp_session") }
}

fn set_cookie(app: &App, name: &str, value: &str) -> String {
    let secure = if app.secure_cookies { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={SESSION_TTL}{secure}")
}

/// The value of cookie `name`, if the request has a well-formed one.
fn cookie(req: &Request, name: &str) -> worker::Result<Option<String>> {
    let header = req.headers().get("cookie")?.unwrap_or_default();
    Ok(header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, v)| *n == name && is_token(v))
        .map(|(_, v)| v.to_owned()))
}

/// 32 random bytes as hex: page ids, CSRF tokens, browser and session ids.
fn random_token() -> Option<String> {
    let mut rng = CryptoRandom::new();
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes);
    (!rng.failed()).then(|| hex(&bytes))
}

fn is_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An HTML response with headers that keep the page out of frames (so a
/// hostile site cannot overlay the consent buttons), out of caches (it holds
/// a CSRF token) and from leaking its URL in `Referer`.
pub(crate) fn html_response(status: u16, page: &str) -> worker::Result<Response> {
    let resp = Response::from_html(page)?.with_status(status);
    let h = resp.headers();
    h.set("cache-control", "no-store")?;
    h.set("x-frame-options", "DENY")?;
    h.set("x-content-type-options", "nosniff")?;
    h.set("referrer-policy", "no-referrer")?;
    // No `form-action`: browsers apply it to the redirect that follows a form
    // post, and Approve must be able to redirect to the client's callback.
    h.set(
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    )?;
    Ok(resp)
}

/// A page that explains why the flow cannot go on.
fn error_page(status: u16, heading: &str, detail: &str) -> worker::Result<Response> {
    html_response(status, &demo_ui::error_page(heading, detail))
}

fn internal_error(what: &str) -> worker::Result<Response> {
    worker::console_error!("authorization page: {what}");
    error_page(500, "Internal error", "The server cannot proceed right now.")
}

fn record_failure(e: &RecordError) -> worker::Result<Response> {
    internal_error(&format!("storage: {e}"))
}

fn redirect(status: u16, location: &str) -> worker::Result<Response> {
    let resp = Response::empty()?.with_status(status);
    resp.headers().set("location", location)?;
    resp.headers().set("cache-control", "no-store")?;
    Ok(resp)
}

fn store(cx: &RequestContext) -> &Store {
    cx.oauth.store()
}

/// Record a grant and send the user agent back to the client.
async fn complete(cx: &RequestContext, request: &AuthorizationRequest, approval: Approval) -> worker::Result<Response> {
    let user = approval.user_id.clone();
    let scope = approval.scope.join(" ");
    match cx.oauth.run(|p, now, rng| p.complete_authorization(request, approval, now, rng)).await {
        Ok(Ok(done)) => {
            worker::console_log!("authorization granted: client_id={} user={user} scope={scope}", request.client_id);
            to_worker_response(done.into_response())
        }
        Ok(Err(e)) => {
            worker::console_warn!("authorization could not be completed: client_id={}: {e}", request.client_id);
            error_page(e.status.as_u16(), "The authorization could not be completed", &e.description)
        }
        Err(e) => internal_error(&e.to_string()),
    }
}

/// `GET /authorize`: validate the request, then auto-approve, or show the
/// sign-in or consent page.
pub(crate) async fn authorize(app: &App, req: Request, cx: &RequestContext) -> worker::Result<Response> {
    let uri: http::Uri = match req.url()?.as_str().parse() {
        Ok(uri) => uri,
        Err(_) => return error_page(400, "This authorization link is not valid", "The URL cannot be read."),
    };
    let parsed = match cx.oauth.run(|p, now, _rng| p.parse_authorization_request(&uri, now)).await {
        Ok(parsed) => parsed,
        Err(e) => return internal_error(&e.to_string()),
    };
    let request = match parsed {
        Ok(request) => request,
        // The client or its redirect URI is not known to be genuine: tell the
        // user, and do not redirect anywhere.
        Err(AuthorizationError::Invalid(e)) => {
            return error_page(400, "This authorization link is not valid", &e.description);
        }
        Err(e) => return to_worker_response(e.into_response()),
    };

    if let Some(user) = &app.auto_approve {
        let props = json!({ "username": user, "login": "auto-approve" });
        let approval = Approval::new(user.clone(), request.scope.clone(), props);
        return complete(cx, &request, approval).await;
    }

    let (browser_cookie, session_cookie) = cookie_names(app);
    let (browser, new_browser) = match cookie(&req, browser_cookie)? {
        Some(b) => (b, false),
        None => match random_token() {
            Some(b) => (b, true),
            None => return internal_error("crypto.getRandomValues failed"),
        },
    };
    let now = cx.oauth.now();
    let user = match signed_in(cx, cookie(&req, session_cookie)?.as_deref(), now).await {
        Ok(user) => user,
        Err(e) => return record_failure(&e),
    };
    let (Some(id), Some(csrf)) = (random_token(), random_token()) else {
        return internal_error("crypto.getRandomValues failed");
    };
    let expires_at = now.plus(PENDING_TTL);
    let pending =
        Pending { request, csrf, browser: digest(&browser), user: user.clone(), failed_logins: 0, expires_at };
    let expires = Some(expires_at);
    match records::put(store(cx), &pending_key(&id), &pending, 1, expires, Condition::IfAbsent, now).await {
        Ok(true) => {}
        Ok(false) => return internal_error("a fresh page id was already taken"),
        Err(e) => return record_failure(&e),
    }
    let page = match &user {
        Some(user) => consent_page(app, &pending.request, user, &id, &pending.csrf)?,
        None => login_page(app, &pending.request, &id, &pending.csrf, None, "")?,
    };
    if new_browser {
        page.headers().append("set-cookie", &set_cookie(app, browser_cookie, &browser))?;
    }
    Ok(page)
}

/// The user a session cookie is signed in as.
async fn signed_in(cx: &RequestContext, session: Option<&str>, now: UnixTime) -> Result<Option<String>, RecordError> {
    let Some(session) = session else { return Ok(None) };
    let found: Option<Versioned<Session>> = records::get(store(cx), &session_key(session), now).await?;
    Ok(found.map(|s| s.value.user))
}

/// Why a posted form is refused before anything else is looked at.
enum FormRejection {
    Expired,
    Forged,
}

impl FormRejection {
    fn response(&self) -> worker::Result<Response> {
        match self {
            Self::Expired => error_page(
                400,
                "This page has expired",
                "Sign-in pages are valid for ten minutes and can be used once.",
            ),
            Self::Forged => error_page(
                403,
                "This form cannot be accepted",
                "It was not submitted from the page this server sent to this browser.",
            ),
        }
    }
}

/// The pending record a form names, if this browser posted it with the
/// record's CSRF token.
async fn check_form(
    cx: &RequestContext,
    form: &Form,
    browser: Option<&str>,
    now: UnixTime,
) -> Result<Result<(String, Versioned<Pending>), FormRejection>, RecordError> {
    let id = form.get("request").unwrap_or_default();
    if !is_token(id) {
        return Ok(Err(FormRejection::Expired));
    }
    let Some(entry) = records::get::<Pending, _>(store(cx), &pending_key(id), now).await? else {
        return Ok(Err(FormRejection::Expired));
    };
    let csrf_ok: bool = form.get("csrf").unwrap_or_default().as_bytes().ct_eq(entry.value.csrf.as_bytes()).into();
    let browser_ok: bool = match browser {
        Some(b) => digest(b).as_bytes().ct_eq(entry.value.browser.as_bytes()).into(),
        None => false,
    };
    if !csrf_ok || !browser_ok {
        return Ok(Err(FormRejection::Forged));
    }
    Ok(Ok((id.to_owned(), entry)))
}

/// Whether `username` is locked after too many wrong passwords.
async fn throttled(cx: &RequestContext, username: &str, now: UnixTime) -> Result<bool, RecordError> {
    let found: Option<Versioned<Failures>> = records::get(store(cx), &failures_key(username), now).await?;
    Ok(found.is_some_and(|f| f.value.count >= MAX_ACCOUNT_FAILURES))
}

/// Count a wrong password for `username`. Only accounts are tracked (a name
/// without one cannot be guessed into), so the records are bounded by the
/// number of accounts.
async fn count_failure(app: &App, cx: &RequestContext, username: &str, now: UnixTime) -> Result<(), RecordError> {
    if !app.users.exists(username) {
        return Ok(());
    }
    let key = failures_key(username);
    for _ in 0..CAS_ATTEMPTS {
        let current: Option<Versioned<Failures>> = records::get(store(cx), &key, now).await?;
        let (next, revision, condition) = match current {
            Some(f) => (
                Failures { count: f.value.count.saturating_add(1), window_start: f.value.window_start },
                f.revision.wrapping_add(1),
                Condition::IfRevision(f.revision),
            ),
            None => (Failures { count: 1, window_start: now.as_secs() }, 1, Condition::IfAbsent),
        };
        // The record lives to the end of its window: that is the lock's end.
        let expires = Some(UnixTime::from_secs(next.window_start).plus(FAILURE_WINDOW));
        if records::put(store(cx), &key, &next, revision, expires, condition, now).await? {
            if next.count == MAX_ACCOUNT_FAILURES {
                worker::console_warn!(
                    "account {username} locked for {} minutes after repeated wrong passwords",
                    FAILURE_WINDOW / 60
                );
            }
            return Ok(());
        }
    }
    Ok(())
}

/// Write back a pending record read at `read`.
async fn save_pending(
    cx: &RequestContext,
    id: &str,
    read: &Versioned<Pending>,
    pending: &Pending,
    now: UnixTime,
) -> Result<bool, RecordError> {
    // The page keeps its original deadline: signing in does not extend it.
    let expires = Some(pending.expires_at);
    let condition = Condition::IfRevision(read.revision);
    records::put(store(cx), &pending_key(id), pending, read.revision.wrapping_add(1), expires, condition, now).await
}

/// `POST /authorize/login`: check the password, then show the consent page.
pub(crate) async fn login(app: &App, mut req: Request, cx: &RequestContext) -> worker::Result<Response> {
    let form = Form::parse(&req.bytes().await?);
    let (browser_cookie, session_cookie) = cookie_names(app);
    let browser = cookie(&req, browser_cookie)?;
    let now = cx.oauth.now();

    let (id, entry) = match check_form(cx, &form, browser.as_deref(), now).await {
        Ok(Ok(found)) => found,
        Ok(Err(rejection)) => return rejection.response(),
        Err(e) => return record_failure(&e),
    };

    if form.get("action") == Some("cancel") {
        if let Err(e) = records::delete(store(cx), &pending_key(&id), now).await {
            return record_failure(&e);
        }
        return deny(app, &entry.value.request);
    }

    let username = form.get("username").unwrap_or_default().trim().to_owned();
    let password = form.get("password").unwrap_or_default();
    match throttled(cx, &username, now).await {
        Ok(false) => {}
        Ok(true) => {
            return error_page(
                429,
                "Too many failed sign-ins",
                "This account is locked for a few minutes after repeated wrong passwords. Try again later.",
            );
        }
        Err(e) => return record_failure(&e),
    }
    let user = app.users.verify(&username, password);
    // Typed user names are logged only when they name an account: a password
    // typed into the wrong field must not reach the log.
    let known = if app.users.exists(&username) { username.as_str() } else { "(unknown)" };

    let Some(user) = user else {
        if let Err(e) = count_failure(app, cx, &username, now).await {
            return record_failure(&e);
        }
        let mut pending = entry.value.clone();
        pending.failed_logins = pending.failed_logins.saturating_add(1);
        if pending.failed_logins >= MAX_LOGIN_ATTEMPTS {
            if let Err(e) = records::delete(store(cx), &pending_key(&id), now).await {
                return record_failure(&e);
            }
            worker::console_warn!("too many failed sign-ins on one page (user {known})");
            return error_page(429, "Too many failed sign-ins", "This sign-in page is no longer valid.");
        }
        match save_pending(cx, &id, &entry, &pending, now).await {
            Ok(true) => {}
            // Another post changed the page meanwhile: this one is stale.
            Ok(false) => return FormRejection::Expired.response(),
            Err(e) => return record_failure(&e),
        }
        worker::console_log!("failed sign-in (user {known})");
        return login_page(app, &pending.request, &id, &pending.csrf, Some("Wrong username or password."), &username);
    };
    if let Err(e) = records::delete(store(cx), &failures_key(&user), now).await {
        return record_failure(&e);
    }

    // Signed in: a session id minted now (one the browser held before is
    // dropped, never promoted), and a fresh CSRF token for the next form.
    let (Some(session), Some(csrf)) = (random_token(), random_token()) else {
        return internal_error("crypto.getRandomValues failed");
    };
    if let Some(old) = cookie(&req, session_cookie)? {
        if let Err(e) = records::delete(store(cx), &session_key(&old), now).await {
            return record_failure(&e);
        }
    }
    let record = Session { user: user.clone() };
    let expires = Some(now.plus(SESSION_TTL));
    match records::put(store(cx), &session_key(&session), &record, 1, expires, Condition::IfAbsent, now).await {
        Ok(true) => {}
        Ok(false) => return internal_error("a fresh session id was already taken"),
        Err(e) => return record_failure(&e),
    }
    let mut pending = entry.value.clone();
    pending.user = Some(user.clone());
    pending.csrf = csrf;
    match save_pending(cx, &id, &entry, &pending, now).await {
        Ok(true) => {}
        Ok(false) => return FormRejection::Expired.response(),
        Err(e) => return record_failure(&e),
    }
    worker::console_log!("signed in: {user}");
    // Post/redirect/get: reloading the consent page does not resend the
    // password.
    let location = format!("{}/authorize/consent?request={id}", app.base);
    let resp = redirect(303, &location)?;
    resp.headers().append("set-cookie", &set_cookie(app, session_cookie, &session))?;
    Ok(resp)
}

/// `GET /authorize/consent?request=ID`: the consent page after sign-in.
pub(crate) async fn consent(app: &App, req: Request, cx: &RequestContext) -> worker::Result<Response> {
    let url = req.url()?;
    let id = url.query_pairs().find(|(k, _)| k == "request").map(|(_, v)| v.into_owned()).unwrap_or_default();
    let (browser_cookie, session_cookie) = cookie_names(app);
    let browser = cookie(&req, browser_cookie)?;
    let now = cx.oauth.now();
    if !is_token(&id) {
        return FormRejection::Expired.response();
    }
    let entry = match records::get::<Pending, _>(store(cx), &pending_key(&id), now).await {
        Ok(Some(entry)) => entry,
        Ok(None) => return FormRejection::Expired.response(),
        Err(e) => return record_failure(&e),
    };
    let browser_ok = browser.is_some_and(|b| bool::from(digest(&b).as_bytes().ct_eq(entry.value.browser.as_bytes())));
    if !browser_ok {
        return FormRejection::Forged.response();
    }
    let session_user = match signed_in(cx, cookie(&req, session_cookie)?.as_deref(), now).await {
        Ok(user) => user,
        Err(e) => return record_failure(&e),
    };
    let p = &entry.value;
    match &p.user {
        Some(user) if session_user.as_ref() == Some(user) => consent_page(app, &p.request, user, &id, &p.csrf),
        _ => login_page(app, &p.request, &id, &p.csrf, None, ""),
    }
}

/// `POST /authorize/decision`: Approve or Deny.
pub(crate) async fn decision(app: &App, mut req: Request, cx: &RequestContext) -> worker::Result<Response> {
    let form = Form::parse(&req.bytes().await?);
    let (browser_cookie, session_cookie) = cookie_names(app);
    let browser = cookie(&req, browser_cookie)?;
    let now = cx.oauth.now();
    let (id, entry) = match check_form(cx, &form, browser.as_deref(), now).await {
        Ok(Ok(found)) => found,
        Ok(Err(rejection)) => return rejection.response(),
        Err(e) => return record_failure(&e),
    };
    // The page was signed in on (its user), and this browser still holds a
    // session of that user.
    let session_user = match signed_in(cx, cookie(&req, session_cookie)?.as_deref(), now).await {
        Ok(user) => user,
        Err(e) => return record_failure(&e),
    };
    let user = match entry.value.user {
        Some(user) if session_user.as_ref() == Some(&user) => user,
        _ => return error_page(403, "You are not signed in", "Sign in before you decide."),
    };
    // Removed now, whatever follows: one decision per page.
    let request = match records::take::<Pending, _>(store(cx), &pending_key(&id), now).await {
        Ok(Some(taken)) => taken.request,
        Ok(None) => return FormRejection::Expired.response(),
        Err(e) => return record_failure(&e),
    };
    match form.get("decision") {
        Some("approve") => {
            // Only scopes the client asked for, and only those still ticked.
            let ticked: Vec<&str> = form.all("scope").collect();
            let scope: Vec<String> = request.scope.iter().filter(|s| ticked.contains(&s.as_str())).cloned().collect();
            let props = json!({ "username": user, "login": "password" });
            complete(cx, &request, Approval::new(user, scope, props)).await
        }
        Some("deny") => {
            worker::console_log!("authorization denied: client_id={} user={user}", request.client_id);
            deny(app, &request)
        }
        _ => error_page(400, "No decision", "Choose Approve or Deny."),
    }
}

fn deny(app: &App, request: &AuthorizationRequest) -> worker::Result<Response> {
    redirect(302, &app.provider.deny_authorization(request))
}

fn login_page(
    app: &App,
    request: &AuthorizationRequest,
    id: &str,
    csrf: &str,
    error: Option<&str>,
    username: &str,
) -> worker::Result<Response> {
    let demo = app.demo_account.then_some("Set the <code>MCP_USERS</code> secret to replace it.");
    let action = format!("{}/authorize/login", app.base);
    let html = demo_ui::login_page(request, &action, id, csrf, error, username, demo);
    html_response(if error.is_some() { 401 } else { 200 }, &html)
}

fn consent_page(
    app: &App,
    request: &AuthorizationRequest,
    user: &str,
    id: &str,
    csrf: &str,
) -> worker::Result<Response> {
    let action = format!("{}/authorize/decision", app.base);
    html_response(200, &demo_ui::consent_page(request, user, &action, id, csrf))
}
