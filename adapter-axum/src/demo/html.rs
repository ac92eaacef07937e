//! HTML responses: the security headers every page carries. The pages
//! themselves (escaping, layout, templates) are the `demo-ui` crate's,
//! shared with adapter-worker's example.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

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
    response(status, demo_ui::error_page(heading, detail))
}
