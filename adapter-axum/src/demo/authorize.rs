//! The authorization page: sign-in, consent, and the development
//! auto-approve switch.
//!
//! The protocol half (validating the request, recording the grant, building
//! the redirects) is oauth-core's `parse_authorization_request`,
//! `complete_authorization` and `deny_authorization`; this module is the
//! user interface around them.
//!
//! Its state lives in the store, not in process memory, so a page served by
//! one replica (or Lambda instance) can be posted to another:
//!
//! | key | record | expiry |
//! |---|---|---|
//! | `demo-authz/{id}` | a validated request waiting for the user | 10 minutes from the page |
//! | `demo-session/{browser}` | the user a browser signed in as | 8 hours |
//! | `demo-browser/{old}` | the id a browser moved to when it signed in | 10 minutes |
//! | `demo-signin-failures/{b64url(user)}` | recent wrong passwords for an account | the end of the window |
//!
//! How the forms are protected:
//! * The validated [`AuthorizationRequest`] stays on the server, in a
//!   short-lived pending record keyed by a random id. Forms carry only that
//!   id and a random CSRF token, so nothing the client asked for can be
//!   edited on the way through the page.
//! * Each pending record is bound to the browser that opened it by a random
//!   browser id in an HttpOnly, SameSite=Lax cookie (`__Host-` prefixed and
//!   Secure when the issuer is https). A form post must present the record's
//!   CSRF token and come from that browser.
//! * Signing in replaces the browser id (no session fixation) and the CSRF
//!   token. Other pages the browser has open stay bound to the old id; a
//!   short-lived `demo-browser/{old}` record names the new one, so their
//!   forms are still accepted from this browser, and only from it.
//! * A decision takes the pending record (an atomic read-and-delete), so
//!   each page is decided once, even when posted twice at the same moment.
//! * Failed sign-ins are counted per page (after a few, the page is gone)
//!   and per user name (after more, the name is locked for a while).
//!
//! Every `GET /authorize` with a valid client stores one pending record for
//! ten minutes; a public deployment rate-limits that endpoint at its edge.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use oauth_core::{Approval, AuthorizationError, AuthorizationRequest, Condition, UnixTime};
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::html;
use super::records::{AnyStore, RecordError, Records, Versioned, user_segment};
use crate::{EnvironmentError, OAuth};
use demo_ui::{Form, Users};

/// How long the sign-in and consent pages stay usable.
const PENDING_TTL: Duration = Duration::from_secs(10 * 60);
/// How long a browser stays signed in for later authorizations.
const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);
/// Wrong passwords allowed on one sign-in page.
const MAX_LOGIN_ATTEMPTS: u32 = 5;
/// Wrong passwords allowed for one user name across all pages within
/// [`FAILURE_WINDOW`]; past that the name is locked until the window ends.
/// Page-level counting alone would let a script open page after page.
const MAX_ACCOUNT_FAILURES: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Compare-and-swap attempts on one record before giving up.
const CAS_ATTEMPTS: usize = 8;
/// Sign-ins followed from a page's browser id to the browser's current one:
/// more than anyone completes in one page's ten minutes.
const MAX_BROWSER_MOVES: usize = 8;

/// One authorization request waiting for the user.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    request: AuthorizationRequest,
    csrf: String,
    browser: String,
    user: Option<String>,
    failed_logins: u32,
    /// Unix seconds; kept in the value so that updates keep the page's
    /// original deadline instead of extending it.
    expires_at: u64,
}

/// A browser that signed in.
#[derive(Debug, Serialize, Deserialize)]
struct Session {
    user: String,
}

/// Where a browser id went when the browser signed in.
#[derive(Debug, Serialize, Deserialize)]
struct Moved {
    browser: String,
}

/// Recent wrong passwords for one user name.
#[derive(Debug, Serialize, Deserialize)]
struct Failures {
    count: u32,
    /// Unix seconds.
    window_start: u64,
}

fn pending_key(id: &str) -> String {
    format!("demo-authz/{id}")
}

fn session_key(browser: &str) -> String {
    format!("demo-session/{browser}")
}

fn moved_key(browser: &str) -> String {
    format!("demo-browser/{browser}")
}

fn failures_key(user: &str) -> String {
    format!("demo-signin-failures/{}", user_segment(user))
}

/// Everything the authorization page needs.
pub(crate) struct AuthPages {
    oauth: OAuth<AnyStore>,
    records: Records,
    users: Users,
    /// Development only: approve every request as this user, without a page.
    auto_approve: Option<String>,
    /// Whether the built-in `demo:demo` account is active (shown on the page).
    demo_account: bool,
    cookie_name: &'static str,
    secure_cookies: bool,
    /// The issuer's path, which prefixes this page's own routes.
    base: String,
}

/// Why a request to the pages cannot go on.
enum Refusal {
    /// The page is unknown, expired or already decided.
    Expired,
    /// The form did not come from the page this browser was sent.
    Forged,
    /// The store, clock or generator failed.
    Failed(RecordError),
}

impl From<RecordError> for Refusal {
    fn from(e: RecordError) -> Self {
        Self::Failed(e)
    }
}

impl Refusal {
    fn response(&self) -> Response {
        match self {
            Self::Expired => html::error_page(
                StatusCode::BAD_REQUEST,
                "This page has expired",
                "Sign-in pages are valid for ten minutes and can be used once.",
            ),
            Self::Forged => html::error_page(
                StatusCode::FORBIDDEN,
                "This form cannot be accepted",
                "It was not submitted from the page this server sent to this browser.",
            ),
            Self::Failed(e) => unavailable(e),
        }
    }
}

impl AuthPages {
    pub(crate) fn new(
        oauth: OAuth<AnyStore>,
        users: Users,
        demo_account: bool,
        auto_approve: Option<String>,
        base: String,
    ) -> Self {
        let secure_cookies = oauth.provider().config().issuer_url().scheme() == "https";
        // `__Host-` makes the browser refuse the cookie unless it is Secure,
        // host-only and for `/`: no sibling subdomain can plant or read it.
        // Browsers reject Secure cookies over plain http, so local
        // development uses an unprefixed name.
        let cookie_name = if secure_cookies { "__Host-mcp_session" } else { "mcp_session" };
        let records = Records::new(oauth.clone());
        Self { oauth, records, users, auto_approve, demo_account, cookie_name, secure_cookies, base }
    }

    /// Whether `username` is locked after too many wrong passwords.
    async fn throttled(&self, username: &str) -> Result<bool, RecordError> {
        // Only accounts are counted (see `record_failure`).
        if !self.users.exists(username) {
            return Ok(false);
        }
        let failures = self.records.get::<Failures>(&failures_key(username)).await?;
        // The record expires with its window, so a live one is current.
        Ok(failures.is_some_and(|f| f.value.count >= MAX_ACCOUNT_FAILURES))
    }

    /// Count a wrong password for `username`. Only accounts are tracked (a
    /// name without one cannot be guessed into), so the records are bounded
    /// by the number of accounts.
    async fn record_failure(&self, username: &str) -> Result<(), RecordError> {
        if !self.users.exists(username) {
            return Ok(());
        }
        let key = failures_key(username);
        for _ in 0..CAS_ATTEMPTS {
            let now = self.records.now()?;
            let (next, revision, condition) = match self.records.get::<Failures>(&key).await? {
                Some(Versioned { value, revision }) => (
                    Failures { count: value.count.saturating_add(1), window_start: value.window_start },
                    revision.wrapping_add(1),
                    Condition::IfRevision(revision),
                ),
                // No live record: a new window starts now.
                None => (Failures { count: 1, window_start: now.as_secs() }, 1, Condition::IfAbsent),
            };
            let window_end = UnixTime::from_secs(next.window_start).plus(FAILURE_WINDOW.as_secs());
            if self.records.put(&key, &next, revision, Some(window_end), condition).await? {
                if next.count == MAX_ACCOUNT_FAILURES {
                    tracing::warn!(
                        user = username,
                        "account locked for {} minutes after repeated wrong passwords",
                        FAILURE_WINDOW.as_secs() / 60
                    );
                }
                return Ok(());
            }
        }
        // Lost every race: as many failures are being counted at once, and
        // the account will lock from those.
        Ok(())
    }

    /// The user this browser is signed in as, if any.
    async fn signed_in(&self, browser: &str) -> Result<Option<String>, RecordError> {
        Ok(self.records.get::<Session>(&session_key(browser)).await?.map(|s| s.value.user))
    }

    /// Whether the browser presenting the id `cookie` is the one `bound`
    /// was given: the same id, or the id it moved to by signing in since.
    async fn same_browser(&self, bound: &str, cookie: Option<&str>) -> Result<bool, RecordError> {
        let Some(cookie) = cookie else { return Ok(false) };
        let mut current = bound.to_owned();
        for _ in 0..=MAX_BROWSER_MOVES {
            if current.as_bytes().ct_eq(cookie.as_bytes()).into() {
                return Ok(true);
            }
            match self.records.get::<Moved>(&moved_key(&current)).await? {
                Some(moved) => current = moved.value.browser,
                None => return Ok(false),
            }
        }
        Ok(false)
    }

    fn set_cookie(&self, value: &str) -> HeaderValue {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        let cookie = format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            self.cookie_name,
            SESSION_TTL.as_secs()
        );
        // The value is hex and the rest is fixed text, so this cannot fail.
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The browser id from the request's cookie, if it has a well-formed one.
    fn browser_cookie(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, value)| *name == self.cookie_name && is_token(value))
            .map(|(_, value)| value.to_owned())
    }

    fn path(&self, page: &str) -> String {
        format!("{}/authorize{page}", self.base)
    }

    /// The pending record `id` names, if it is live and this browser's.
    async fn pending_for(&self, id: &str, browser: Option<&str>) -> Result<Versioned<Pending>, Refusal> {
        // Ids are ours (random hex); anything else names no record.
        if !is_token(id) {
            return Err(Refusal::Expired);
        }
        let entry = self.records.get::<Pending>(&pending_key(id)).await?.ok_or(Refusal::Expired)?;
        if !self.same_browser(&entry.value.browser, browser).await? {
            return Err(Refusal::Forged);
        }
        Ok(entry)
    }

    /// Find the pending record a form names and check that this browser
    /// posted it with the record's CSRF token.
    async fn check_form(&self, form: &Form, browser: Option<&str>) -> Result<(String, Versioned<Pending>), Refusal> {
        let id = form.get("request").unwrap_or_default();
        let entry = self.pending_for(id, browser).await?;
        let csrf_ok: bool = form.get("csrf").unwrap_or_default().as_bytes().ct_eq(entry.value.csrf.as_bytes()).into();
        if !csrf_ok {
            return Err(Refusal::Forged);
        }
        Ok((id.to_owned(), entry))
    }

    /// Take the pending record `id` (so it is decided once) and check that
    /// it is still the one the form was checked against.
    async fn take_pending(&self, id: &str, form: &Form) -> Result<Pending, Refusal> {
        let taken = self.records.take::<Pending>(&pending_key(id)).await?.ok_or(Refusal::Expired)?;
        // A sign-in racing with this post may have replaced the CSRF token
        // between the check and the take; the post then loses.
        let csrf_ok: bool = form.get("csrf").unwrap_or_default().as_bytes().ct_eq(taken.csrf.as_bytes()).into();
        if csrf_ok { Ok(taken) } else { Err(Refusal::Forged) }
    }

    /// Replace the pending record `id` read at `revision`, keeping its
    /// deadline; false if it changed or expired meanwhile.
    async fn update_pending(&self, id: &str, entry: &Pending, revision: u64) -> Result<bool, RecordError> {
        let expires = Some(UnixTime::from_secs(entry.expires_at));
        let condition = Condition::IfRevision(revision);
        self.records.put(&pending_key(id), entry, revision.wrapping_add(1), expires, condition).await
    }

    /// Record a grant and send the user agent back to the client.
    async fn complete(&self, request: &AuthorizationRequest, approval: Approval) -> Response {
        let user = approval.user_id.clone();
        let scope = approval.scope.join(" ");
        let outcome = self.oauth.run(|p, now, rng| p.complete_authorization(request, approval, now, rng)).await;
        match outcome {
            Ok(Ok(done)) => {
                tracing::info!(client_id = %request.client_id, %user, %scope, "authorization granted");
                done.into_response().map(Body::from)
            }
            Ok(Err(e)) => {
                tracing::warn!(client_id = %request.client_id, error = %e, "authorization could not be completed");
                html::error_page(e.status, "The authorization could not be completed", &e.description)
            }
            Err(e) => internal_error(&e),
        }
    }
}

/// `GET /authorize`: validate the request, then auto-approve, or show the
/// sign-in or consent page.
pub(crate) async fn authorize(State(app): State<Arc<AuthPages>>, headers: HeaderMap, uri: Uri) -> Response {
    let parsed = match app.oauth.run(|p, now, _rng| p.parse_authorization_request(&uri, now)).await {
        Ok(parsed) => parsed,
        Err(e) => return internal_error(&e),
    };
    let request = match parsed {
        Ok(request) => request,
        // The client or its redirect URI is not known to be genuine: tell
        // the user, and do not redirect anywhere.
        Err(AuthorizationError::Invalid(e)) => {
            return html::error_page(StatusCode::BAD_REQUEST, "This authorization link is not valid", &e.description);
        }
        Err(e) => return e.into_response().map(Body::from),
    };

    if let Some(user) = &app.auto_approve {
        let props = json!({ "username": user, "login": "auto-approve" });
        let approval = Approval::new(user.clone(), request.scope.clone(), props);
        return app.complete(&request, approval).await;
    }

    match show_authorize(&app, request, &headers).await {
        Ok(resp) => resp,
        Err(e) => unavailable(&e),
    }
}

async fn show_authorize(
    app: &AuthPages,
    request: AuthorizationRequest,
    headers: &HeaderMap,
) -> Result<Response, RecordError> {
    let (browser, new_cookie) = match app.browser_cookie(headers) {
        Some(b) => (b, false),
        None => (random_token()?, true),
    };
    let user = app.signed_in(&browser).await?;
    let (id, csrf) = (random_token()?, random_token()?);
    let page = match &user {
        Some(user) => consent_page(app, &request, user, &id, &csrf),
        None => login_page(app, &request, &id, &csrf, None, ""),
    };
    let expires = app.records.now()?.plus(PENDING_TTL.as_secs());
    let pending =
        Pending { request, csrf, browser: browser.clone(), user, failed_logins: 0, expires_at: expires.as_secs() };
    // The id is 256 random bits: IfAbsent only guards against a broken
    // generator handing out an id twice.
    if !app.records.put(&pending_key(&id), &pending, 1, Some(expires), Condition::IfAbsent).await? {
        return Err(RecordError::Corrupt("a fresh page id was already in use"));
    }
    let mut resp = page;
    if new_cookie {
        resp.headers_mut().append(header::SET_COOKIE, app.set_cookie(&browser));
    }
    Ok(resp)
}

/// `POST /authorize/login`: check the password, then show the consent page.
pub(crate) async fn login(State(app): State<Arc<AuthPages>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let browser = app.browser_cookie(&headers);
    match try_login(&app, &form, browser.as_deref()).await {
        Ok(resp) => resp,
        Err(refusal) => refusal.response(),
    }
}

async fn try_login(app: &AuthPages, form: &Form, browser: Option<&str>) -> Result<Response, Refusal> {
    // Forged or stale posts are refused before they count as attempts.
    let (id, _) = app.check_form(form, browser).await?;
    if form.get("action") == Some("cancel") {
        let pending = app.take_pending(&id, form).await?;
        return Ok(deny(app, &pending.request));
    }

    let username = form.get("username").unwrap_or_default().trim().to_owned();
    let password = form.get("password").unwrap_or_default();
    if app.throttled(&username).await? {
        return Ok(html::error_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins",
            "This account is locked for a few minutes after repeated wrong passwords. Try again later.",
        ));
    }
    let user = app.users.verify(&username, password);
    // Typed user names are logged only when they name an account: a
    // password typed into the wrong field must not reach the log.
    let known = if app.users.exists(&username) { username.as_str() } else { "(unknown)" };

    let Some(user) = user else {
        app.record_failure(&username).await?;
        for _ in 0..CAS_ATTEMPTS {
            let (_, Versioned { value: mut entry, revision }) = app.check_form(form, browser).await?;
            entry.failed_logins = entry.failed_logins.saturating_add(1);
            if entry.failed_logins >= MAX_LOGIN_ATTEMPTS {
                app.records.delete(&pending_key(&id)).await?;
                tracing::warn!(user = known, "too many failed sign-ins on one page");
                return Ok(html::error_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed sign-ins",
                    "This sign-in page is no longer valid.",
                ));
            }
            if app.update_pending(&id, &entry, revision).await? {
                tracing::info!(user = known, "failed sign-in");
                let error = Some("Wrong username or password.");
                return Ok(login_page(app, &entry.request, &id, &entry.csrf, error, &username));
            }
        }
        // Lost every race on this page: so many posts at once are a script.
        return Err(Refusal::Expired);
    };

    // Signed in: a fresh browser id so an id planted before sign-in is
    // worth nothing afterwards, and a fresh CSRF token for the next form.
    let (new_browser, new_csrf) = (random_token()?, random_token()?);
    let (_, Versioned { value: mut entry, revision }) = app.check_form(form, browser).await?;
    entry.user = Some(user.clone());
    entry.browser.clone_from(&new_browser);
    entry.csrf = new_csrf;
    if !app.update_pending(&id, &entry, revision).await? {
        // Changed since it was read (a second post of the same form).
        return Err(Refusal::Expired);
    }
    let now = app.records.now()?;
    if let Some(old) = browser {
        // Other pages this browser has open are bound to the old id; this
        // record lets them follow, for as long as a page can live.
        let moved = Moved { browser: new_browser.clone() };
        let until = Some(now.plus(PENDING_TTL.as_secs()));
        app.records.put(&moved_key(old), &moved, 1, until, Condition::Always).await?;
        app.records.delete(&session_key(old)).await?;
    }
    app.records
        .put(
            &session_key(&new_browser),
            &Session { user: user.clone() },
            1,
            Some(now.plus(SESSION_TTL.as_secs())),
            Condition::Always,
        )
        .await?;
    // Cleared last: a failure above leaves the count, never less.
    app.records.delete(&failures_key(&user)).await?;
    tracing::info!(%user, "signed in");
    // Post/redirect/get: reloading the consent page does not resend the
    // password.
    let location = format!("{}?request={id}", app.path("/consent"));
    let mut resp = redirect(StatusCode::SEE_OTHER, &location);
    resp.headers_mut().append(header::SET_COOKIE, app.set_cookie(&new_browser));
    Ok(resp)
}

/// `GET /authorize/consent?request=ID`: the consent page after sign-in.
pub(crate) async fn consent(State(app): State<Arc<AuthPages>>, headers: HeaderMap, uri: Uri) -> Response {
    let query = Form::parse(uri.query().unwrap_or_default().as_bytes());
    let id = query.get("request").unwrap_or_default();
    let browser = app.browser_cookie(&headers);
    let entry = match app.pending_for(id, browser.as_deref()).await {
        Ok(entry) => entry.value,
        Err(refusal) => return refusal.response(),
    };
    match &entry.user {
        Some(user) => consent_page(&app, &entry.request, user, id, &entry.csrf),
        None => login_page(&app, &entry.request, id, &entry.csrf, None, ""),
    }
}

/// `POST /authorize/decision`: Approve or Deny.
pub(crate) async fn decision(State(app): State<Arc<AuthPages>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let browser = app.browser_cookie(&headers);
    let pending = match app.check_form(&form, browser.as_deref()).await {
        // Taken now, whatever follows: one decision per page.
        Ok((id, _)) => app.take_pending(&id, &form).await,
        Err(refusal) => Err(refusal),
    };
    let Pending { request, user, .. } = match pending {
        Ok(pending) => pending,
        Err(refusal) => return refusal.response(),
    };
    // The record is bound to the browser that signed in (its id was
    // replaced at sign-in), so the user recorded on it is the one deciding.
    let Some(user) = user else {
        return html::error_page(StatusCode::FORBIDDEN, "You are not signed in", "Sign in before you decide.");
    };
    match form.get("decision") {
        Some("approve") => {
            // Only scopes the client asked for, and only those still ticked.
            let ticked: Vec<&str> = form.all("scope").collect();
            let scope: Vec<String> = request.scope.iter().filter(|s| ticked.contains(&s.as_str())).cloned().collect();
            let props = json!({ "username": user, "login": "password" });
            app.complete(&request, Approval::new(user, scope, props)).await
        }
        Some("deny") => {
            tracing::info!(client_id = %request.client_id, %user, "authorization denied");
            deny(&app, &request)
        }
        _ => html::error_page(StatusCode::BAD_REQUEST, "No decision", "Choose Approve or Deny."),
    }
}

fn deny(app: &AuthPages, request: &AuthorizationRequest) -> Response {
    redirect(StatusCode::FOUND, &app.oauth.provider().deny_authorization(request))
}

fn redirect(status: StatusCode, location: &str) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    match HeaderValue::from_str(location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        // Locations are URLs the core serialised; this is unreachable.
        Err(_) => html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", "Bad redirect location."),
    }
}

fn internal_error(e: &EnvironmentError) -> Response {
    tracing::error!(error = %e, "cannot run an authorization flow");
    html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", "The server cannot proceed right now.")
}

/// The page for a failure of the store, clock or generator: retryable for
/// the store, an internal error otherwise.
fn unavailable(e: &RecordError) -> Response {
    match e {
        RecordError::Environment(e) => internal_error(e),
        RecordError::Storage(_) | RecordError::Corrupt(_) => {
            tracing::error!(error = %e, "the sign-in pages' storage failed");
            html::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The server cannot proceed right now. Please try again in a moment.",
            )
        }
    }
}

/// 32 random bytes as hex: page ids, CSRF tokens and browser ids.
fn random_token() -> Result<String, RecordError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| RecordError::Environment(EnvironmentError::Random))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn is_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn login_page(
    app: &AuthPages,
    request: &AuthorizationRequest,
    id: &str,
    csrf: &str,
    error: Option<&str>,
    username: &str,
) -> Response {
    let demo = app.demo_account.then_some(
        "Start the server with <code>--user NAME:PASSWORD</code> (or set <code>MCP_USERS</code>) to replace it.",
    );
    let html = demo_ui::login_page(request, &app.path("/login"), id, csrf, error, username, demo);
    let status = if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    html::response(status, html)
}

fn consent_page(app: &AuthPages, request: &AuthorizationRequest, user: &str, id: &str, csrf: &str) -> Response {
    html::response(StatusCode::OK, demo_ui::consent_page(request, user, &app.path("/decision"), id, csrf))
}
