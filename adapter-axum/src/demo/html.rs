//! HTML for the sign-in and consent pages: escaping, one layout, and the
//! security headers every page carries.
//!
//! Pages are assembled with `format!`, so every value that did not come from
//! this file goes through [`escape`] first: client names, redirect hosts and
//! usernames are chosen by whoever registers a client or types in a form.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

/// Escape text for an HTML text node or a double- or single-quoted attribute.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Inline so the page needs no other request and works offline; the CSP
/// below allows inline styles and nothing else.
const CSS: &str = r#"
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #57606a; --bg: #f6f8fa; --card: #fff;
  --border: #d0d7de; --accent: #0969da; --accent-fg: #fff; --danger: #cf222e; --warn-bg: #fff8c5;
  --warn-border: #d4a72c; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #8d96a0; --bg: #0d1117; --card: #161b22;
  --border: #30363d; --accent: #2f81f7; --warn-bg: #3b2e00; --warn-border: #9e6a03; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); display: flex; justify-content: center; padding: 48px 16px; }
main { width: 100%; max-width: 440px; background: var(--card); border: 1px solid var(--border); border-radius: 12px;
  padding: 28px 28px 24px; box-shadow: 0 1px 3px rgba(0,0,0,.06); }
h1 { font-size: 20px; margin: 0 0 4px; }
p { margin: 8px 0; }
.muted { color: var(--muted); font-size: 13px; }
label { display: block; font-weight: 600; margin: 14px 0 4px; }
input[type=text], input[type=password] { width: 100%; padding: 8px 10px; font: inherit; color: inherit;
  background: var(--bg); border: 1px solid var(--border); border-radius: 6px; }
input:focus { outline: 2px solid var(--accent); outline-offset: 0; }
.actions { display: flex; gap: 10px; margin-top: 22px; }
.actions.reverse { flex-direction: row-reverse; }
button { flex: 1; padding: 9px 14px; font: inherit; font-weight: 600; border-radius: 6px; cursor: pointer;
  border: 1px solid var(--border); background: var(--bg); color: var(--fg); }
button.primary { background: var(--accent); border-color: var(--accent); color: var(--accent-fg); }
.error { color: var(--danger); font-weight: 600; }
.warn { background: var(--warn-bg); border: 1px solid var(--warn-border); border-radius: 6px; padding: 8px 10px;
  font-size: 13px; margin: 12px 0; }
.scopes { list-style: none; padding: 0; margin: 12px 0; border: 1px solid var(--border); border-radius: 8px; }
.scopes li { padding: 10px 12px; border-top: 1px solid var(--border); }
.scopes li:first-child { border-top: 0; }
.scopes label { display: flex; gap: 10px; margin: 0; font-weight: normal; align-items: flex-start; }
.scopes code { font-weight: 600; }
.scopes input { margin-top: 4px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }
pre { white-space: pre-wrap; word-break: break-all; background: var(--bg); border: 1px solid var(--border);
  border-radius: 6px; padding: 8px 10px; }
.host { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-weight: 600; }
"#;

/// A whole page around `body` (which must already be escaped HTML).
pub(crate) fn page(title: &str, body: &str) -> String {
    let title = escape(title);
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title}</title><style>{CSS}</style></head>\
         <body><main>{body}</main></body></html>\n"
    )
}

/// An HTML response with headers that keep the page out of frames (so a
/// hostile site cannot overlay the consent buttons), out of caches (it
/// holds a CSRF token) and from leaking its URL in `Referer`.
pub(crate) fn response(status: StatusCode, html: String) -> Response {
    let mut resp = Response::new(Body::from(html));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // No `form-action`: browsers apply it to the redirect that follows a form
    // post, and Approve must be able to redirect to the client's callback.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    resp
}

/// A page that explains why the flow cannot go on.
pub(crate) fn error_page(status: StatusCode, heading: &str, detail: &str) -> Response {
    let body = format!(
        "<h1>{}</h1><p>{}</p><p class=\"muted\">Return to the application you came from and start the \
         connection again.</p>",
        escape(heading),
        escape(detail)
    );
    response(status, page(heading, &body))
}
