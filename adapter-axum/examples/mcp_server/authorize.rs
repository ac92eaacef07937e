//! The authorization page: sign-in, consent, and the development
//! auto-approve switch.
//!
//! The protocol half (validating the request, recording the grant, building
//! the redirects) is oauth-core's `parse_authorization_request`,
//! `complete_authorization` and `deny_authorization`; this module is the
//! user interface around them.
//!
//! How the forms are protected:
//! * The validated [`AuthorizationRequest`] stays on the server, in a
//!   short-lived pending entry keyed by a random id. Forms carry only that
//!   id and a random CSRF token, so nothing the client asked for can be
//!   edited on the way through the page.
//! * Each pending entry is bound to the browser that opened it by a random
//!   browser id in an HttpOnly, SameSite=Lax cookie (`__Host-` prefixed and
//!   Secure when the issuer is https). A form post must present the entry's
//!   CSRF token and come from that browser.
//! * Signing in replaces the browser id (no session fixation) and the CSRF
//!   token; an entry is removed when it is decided, so each is used once.
//! * Failed sign-ins are counted per entry (after a few, the entry is gone)
//!   and per user name (after more, the name is locked for a while).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use adapter_axum::OAuth;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use oauth_core::{Approval, AuthorizationError, AuthorizationRequest};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::db::Db;
use crate::html::{self, escape};
use crate::users::Users;

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
/// Bounds on the in-memory tables, so a flood of page loads cannot exhaust
/// memory; expired entries are purged first.
const MAX_PENDING: usize = 10_000;
const MAX_SESSIONS: usize = 10_000;

/// One authorization request waiting for the user.
struct Pending {
    request: AuthorizationRequest,
    csrf: String,
    browser: String,
    user: Option<String>,
    expires: Instant,
    failed_logins: u32,
}

/// Recent wrong passwords for one user name.
struct Failures {
    count: u32,
    window_start: Instant,
}

/// A browser that signed in.
struct Session {
    user: String,
    expires: Instant,
}

/// Everything the authorization page needs.
pub(crate) struct AuthPages {
    oauth: OAuth<Db>,
    users: Users,
    /// Development only: approve every request as this user, without a page.
    auto_approve: Option<String>,
    /// Whether the built-in `demo:demo` account is active (shown on the page).
    demo_account: bool,
    cookie_name: &'static str,
    secure_cookies: bool,
    /// The issuer's path, which prefixes this page's own routes.
    base: String,
    pending: Mutex<HashMap<String, Pending>>,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, Failures>>,
}

impl AuthPages {
    pub(crate) fn new(
        oauth: OAuth<Db>,
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
        Self {
            oauth,
            users,
            auto_approve,
            demo_account,
            cookie_name,
            secure_cookies,
            base,
            pending: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<String, Pending>> {
        // A panic while holding the lock leaves the maps consistent (every
        // update is a single insert or remove), so a poisoned lock is usable.
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn failures(&self) -> MutexGuard<'_, HashMap<String, Failures>> {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `username` is locked after too many wrong passwords.
    fn throttled(&self, username: &str) -> bool {
        self.failures()
            .get(username)
            .is_some_and(|f| f.count >= MAX_ACCOUNT_FAILURES && f.window_start.elapsed() < FAILURE_WINDOW)
    }

    /// Count a wrong password for `username`. Only accounts are tracked (a
    /// name without one cannot be guessed into), so the table is bounded by
    /// the number of accounts.
    fn record_failure(&self, username: &str) {
        if !self.users.exists(username) {
            return;
        }
        let mut failures = self.failures();
        let now = Instant::now();
        let entry = failures.entry(username.to_owned()).or_insert(Failures { count: 0, window_start: now });
        if entry.window_start.elapsed() >= FAILURE_WINDOW {
            *entry = Failures { count: 0, window_start: now };
        }
        entry.count += 1;
        if entry.count == MAX_ACCOUNT_FAILURES {
            tracing::warn!(
                user = username,
                "account locked for {} minutes after repeated wrong passwords",
                FAILURE_WINDOW.as_secs() / 60
            );
        }
    }

    fn clear_failures(&self, username: &str) {
        self.failures().remove(username);
    }

    /// The user this browser is signed in as, if any.
    fn signed_in(&self, browser: &str) -> Option<String> {
        let sessions = self.sessions();
        sessions.get(browser).filter(|s| s.expires > Instant::now()).map(|s| s.user.clone())
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

    let (browser, new_cookie) = match app.browser_cookie(&headers) {
        Some(b) => (b, false),
        None => match random_token() {
            Some(b) => (b, true),
            None => return random_failure(),
        },
    };
    let user = app.signed_in(&browser);
    let (Some(id), Some(csrf)) = (random_token(), random_token()) else {
        return random_failure();
    };
    let page = match &user {
        Some(user) => consent_page(&app, &request, user, &id, &csrf),
        None => login_page(&app, &request, &id, &csrf, None, ""),
    };
    {
        let mut pending = app.pending();
        if pending.len() >= MAX_PENDING {
            let now = Instant::now();
            pending.retain(|_, p| p.expires > now);
            if pending.len() >= MAX_PENDING {
                return html::error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Too many sign-ins in progress",
                    "Please try again in a few minutes.",
                );
            }
        }
        let expires = Instant::now() + PENDING_TTL;
        pending.insert(id, Pending { request, csrf, browser: browser.clone(), user, expires, failed_logins: 0 });
    }
    let mut resp = page;
    if new_cookie {
        resp.headers_mut().append(header::SET_COOKIE, app.set_cookie(&browser));
    }
    resp
}

/// Why a posted form is refused before anything else is looked at.
enum FormRejection {
    Expired,
    Forged,
}

impl FormRejection {
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
        }
    }
}

/// Find the pending entry a form names and check that this browser posted
/// it with the entry's CSRF token; returns the entry's id. Expired entries
/// are removed.
fn check_form(
    pending: &mut HashMap<String, Pending>,
    form: &Form,
    browser: Option<&str>,
) -> Result<String, FormRejection> {
    let id = form.get("request").unwrap_or_default();
    if pending.get(id).is_some_and(|p| p.expires <= Instant::now()) {
        pending.remove(id);
    }
    let entry = pending.get(id).ok_or(FormRejection::Expired)?;
    let csrf_ok: bool = form.get("csrf").unwrap_or_default().as_bytes().ct_eq(entry.csrf.as_bytes()).into();
    if !csrf_ok || browser != Some(entry.browser.as_str()) {
        return Err(FormRejection::Forged);
    }
    Ok(id.to_owned())
}

/// `POST /authorize/login`: check the password, then show the consent page.
pub(crate) async fn login(State(app): State<Arc<AuthPages>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let browser = app.browser_cookie(&headers);

    if form.get("action") == Some("cancel") {
        let request = {
            let mut pending = app.pending();
            let id = match check_form(&mut pending, &form, browser.as_deref()) {
                Ok(id) => id,
                Err(rejection) => return rejection.response(),
            };
            match pending.remove(&id) {
                Some(p) => p.request,
                None => return FormRejection::Expired.response(),
            }
        };
        return deny(&app, &request);
    }

    let username = form.get("username").unwrap_or_default().trim().to_owned();
    let password = form.get("password").unwrap_or_default();
    // Forged or stale posts are refused before they count as attempts.
    if let Err(rejection) = check_form(&mut app.pending(), &form, browser.as_deref()) {
        return rejection.response();
    }
    if app.throttled(&username) {
        return html::error_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins",
            "This account is locked for a few minutes after repeated wrong passwords. Try again later.",
        );
    }
    let user = app.users.verify(&username, password);
    // Typed user names are logged only when they name an account: a
    // password typed into the wrong field must not reach the log.
    let known = if app.users.exists(&username) { username.as_str() } else { "(unknown)" };

    let (Some(new_browser), Some(new_csrf)) = (random_token(), random_token()) else {
        return random_failure();
    };
    let mut pending = app.pending();
    let id = match check_form(&mut pending, &form, browser.as_deref()) {
        Ok(id) => id,
        Err(rejection) => return rejection.response(),
    };
    let Some(entry) = pending.get_mut(&id) else {
        return FormRejection::Expired.response();
    };
    let Some(user) = user else {
        app.record_failure(&username);
        entry.failed_logins += 1;
        if entry.failed_logins >= MAX_LOGIN_ATTEMPTS {
            pending.remove(&id);
            tracing::warn!(user = known, "too many failed sign-ins on one page");
            return html::error_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed sign-ins",
                "This sign-in page is no longer valid.",
            );
        }
        tracing::info!(user = known, "failed sign-in");
        return login_page(&app, &entry.request, &id, &entry.csrf, Some("Wrong username or password."), &username);
    };
    app.clear_failures(&user);

    // Signed in: a fresh browser id so an id planted before sign-in is
    // worth nothing afterwards, and a fresh CSRF token for the next form.
    let old_browser = std::mem::replace(&mut entry.browser, new_browser.clone());
    entry.user = Some(user.clone());
    entry.csrf = new_csrf;
    // Other pages this browser has open (another tab, another client) move
    // to the new id with it, or their forms would be refused as forged.
    for other in pending.values_mut().filter(|p| p.browser == old_browser) {
        other.browser.clone_from(&new_browser);
    }
    drop(pending);
    {
        let mut sessions = app.sessions();
        sessions.remove(&old_browser);
        if sessions.len() >= MAX_SESSIONS {
            let now = Instant::now();
            sessions.retain(|_, s| s.expires > now);
        }
        // At the cap the browser still finishes this authorization; it just
        // is not remembered for the next one.
        if sessions.len() < MAX_SESSIONS {
            sessions.insert(new_browser.clone(), Session { user: user.clone(), expires: Instant::now() + SESSION_TTL });
        }
    }
    tracing::info!(%user, "signed in");
    // Post/redirect/get: reloading the consent page does not resend the
    // password.
    let location = format!("{}?request={id}", app.path("/consent"));
    let mut resp = redirect(StatusCode::SEE_OTHER, &location);
    resp.headers_mut().append(header::SET_COOKIE, app.set_cookie(&new_browser));
    resp
}

/// `GET /authorize/consent?request=ID`: the consent page after sign-in.
pub(crate) async fn consent(State(app): State<Arc<AuthPages>>, headers: HeaderMap, uri: Uri) -> Response {
    let query = Form::parse(uri.query().unwrap_or_default().as_bytes());
    let id = query.get("request").unwrap_or_default();
    let browser = app.browser_cookie(&headers);
    let pending = app.pending();
    let Some(entry) = pending.get(id).filter(|p| p.expires > Instant::now()) else {
        return FormRejection::Expired.response();
    };
    if browser.as_deref() != Some(entry.browser.as_str()) {
        return FormRejection::Forged.response();
    }
    match &entry.user {
        Some(user) => consent_page(&app, &entry.request, user, id, &entry.csrf),
        None => login_page(&app, &entry.request, id, &entry.csrf, None, ""),
    }
}

/// `POST /authorize/decision`: Approve or Deny.
pub(crate) async fn decision(State(app): State<Arc<AuthPages>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let browser = app.browser_cookie(&headers);
    let (request, user) = {
        let mut pending = app.pending();
        let id = match check_form(&mut pending, &form, browser.as_deref()) {
            Ok(id) => id,
            Err(rejection) => return rejection.response(),
        };
        // Removed now, whatever follows: one decision per page.
        let Some(entry) = pending.remove(&id) else {
            return FormRejection::Expired.response();
        };
        (entry.request, entry.user)
    };
    // The entry is bound to the browser that signed in (its id was replaced
    // at sign-in), so the user recorded on it is the one deciding.
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

fn internal_error(e: &adapter_axum::EnvironmentError) -> Response {
    tracing::error!(error = %e, "cannot run an authorization flow");
    html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", "The server cannot proceed right now.")
}

fn random_failure() -> Response {
    internal_error(&adapter_axum::EnvironmentError::Random)
}

/// 32 random bytes as hex: page ids, CSRF tokens and browser ids.
fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn is_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Human descriptions for the consent screen.
fn describe_scope(scope: &str) -> &'static str {
    match scope {
        "todo:read" => "Read your todo list.",
        "todo:write" => "Add, complete and delete your todos (includes reading them).",
        "offline_access" => "Stay connected between sessions (this server allows it for every connection).",
        _ => "A permission this server does not describe.",
    }
}

/// The client as the pages name it: its self-chosen name, else its id.
fn client_label(request: &AuthorizationRequest) -> String {
    match request.client_name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => name.to_owned(),
        None => request.client_id.clone(),
    }
}

fn hidden_fields(id: &str, csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"request\" value=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(id),
        escape(csrf)
    )
}

fn login_page(
    app: &AuthPages,
    request: &AuthorizationRequest,
    id: &str,
    csrf: &str,
    error: Option<&str>,
    username: &str,
) -> Response {
    let client = escape(&client_label(request));
    let demo = if app.demo_account {
        "<div class=\"warn\"><b>Development server.</b> Built-in account: username <code>demo</code>, password \
         <code>demo</code>. Start the server with <code>--user NAME:PASSWORD</code> to replace it.</div>"
    } else {
        ""
    };
    let error = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    // Sign in comes first in the markup because Enter submits a form with
    // its first button; CSS shows it on the right.
    let autofocus_user = if username.is_empty() { " autofocus" } else { "" };
    let autofocus_password = if username.is_empty() { "" } else { " autofocus" };
    let body = format!(
        "<h1>Sign in</h1>\
         <p class=\"muted\">to let <b>{client}</b> use your todo list</p>\
         {demo}{error}\
         <form method=\"post\" action=\"{action}\">{hidden}\
         <label for=\"username\">Username</label>\
         <input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" autocapitalize=\"none\" \
         spellcheck=\"false\" required value=\"{username}\"{autofocus_user}>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" \
         required{autofocus_password}>\
         <div class=\"actions reverse\">\
         <button class=\"primary\" type=\"submit\" name=\"action\" value=\"login\">Sign in</button>\
         <button type=\"submit\" name=\"action\" value=\"cancel\" formnovalidate>Cancel</button>\
         </div></form>",
        action = escape(&app.path("/login")),
        hidden = hidden_fields(id, csrf),
        username = escape(username),
    );
    let status = if error.is_empty() { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
    html::response(status, html::page("Sign in", &body))
}

fn consent_page(app: &AuthPages, request: &AuthorizationRequest, user: &str, id: &str, csrf: &str) -> Response {
    let client = escape(&client_label(request));
    let scopes = if request.scope.is_empty() {
        "<p>It asks for no permissions: it will only be able to see who you are.</p>".to_owned()
    } else {
        let items: String = request
            .scope
            .iter()
            .map(|s| {
                format!(
                    "<li><label><input type=\"checkbox\" name=\"scope\" value=\"{s}\" checked>\
                     <span><code>{s}</code><br><span class=\"muted\">{d}</span></span></label></li>",
                    s = escape(s),
                    d = escape(describe_scope(s)),
                )
            })
            .collect();
        format!("<p>It asks to:</p><ul class=\"scopes\">{items}</ul>")
    };
    let host = request.redirect_host().unwrap_or_else(|| request.redirect_uri.clone());
    let name_note = if request.client_name.is_some() {
        "<p class=\"muted\">Applications choose their own names. Approve only if you started this connection \
         and recognise where you will be sent.</p>"
    } else {
        ""
    };
    // Deny comes first in the markup, so a stray Enter denies.
    let body = format!(
        "<h1>Authorize {client}</h1>\
         <p class=\"muted\">Signed in as <b>{user}</b></p>\
         <form method=\"post\" action=\"{action}\">{hidden}\
         <p><b>{client}</b> wants to use your todo list on this server.</p>\
         {scopes}\
         <p>Afterwards you will be sent to <span class=\"host\">{host}</span>.</p>\
         {name_note}\
         <p class=\"muted\">Client ID: <code>{client_id}</code></p>\
         <div class=\"actions\">\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
         <button class=\"primary\" type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
         </div></form>",
        user = escape(user),
        action = escape(&app.path("/decision")),
        hidden = hidden_fields(id, csrf),
        host = escape(&host),
        client_id = escape(&request.client_id),
    );
    html::response(StatusCode::OK, html::page(&format!("Authorize {}", client_label(request)), &body))
}

/// A parsed `application/x-www-form-urlencoded` body or query string.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(bytes: &[u8]) -> Self {
        Self(form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (ticked checkboxes).
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}
