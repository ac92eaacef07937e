//! Client ID metadata documents on Workers: [`WorkerFetcher`], the
//! adapter's [`Driver::fetch`](oauth_core::Driver::fetch), on the platform's
//! `fetch` with its strictest settings.
//!
//! A Worker cannot resolve a name or choose the address it connects to:
//! `fetch` is its only outbound HTTP, and Cloudflare's network resolves and
//! connects. So this fetcher enforces what it can see, and leaves the rest
//! to the platform (`docs/adapter-worker.md`, "Client ID metadata
//! documents"):
//!
//! | rule (oauth-core's `FetchRequest`) | here |
//! |---|---|
//! | https only | checked before `fetch` ([`FetchError::ForbiddenUrl`]), as are userinfo, fragments and IP-literal hosts |
//! | every resolved address public, the checked one connected to | **not enforceable**: no DNS or address is visible to a Worker; Cloudflare's egress does not route to private networks, and the `global_fetch_strictly_public` compatibility flag sends same-zone requests through the front door |
//! | no redirect followed | `redirect: "manual"`: a 3xx comes back as it is, and the core refuses it |
//! | at most `max_bytes` | a declared `Content-Length` above it is refused unread; the body is read from its stream, counting, and cancelled past the cap ([`FetchError::TooLarge`]) |
//! | the whole exchange within `timeout` | an `AbortController` aborted when a timer (`setTimeout`) fires first ([`FetchError::Timeout`]) |
//! | no cookies, credentials or ambient headers | a Worker's `fetch` has no cookie jar or ambient credentials; only `Accept` and `User-Agent` are sent |
//! | not from a shared cache | `cache: "no-store"`, no `cf` options |
//!
//! Failures of `fetch` itself (DNS, connection, TLS: Workers throws the same
//! `TypeError`-like errors for all of them) are [`FetchError::Connect`].

use core::time::Duration;

use oauth_core::FetchError;

/// The `User-Agent` of document fetches.
pub const USER_AGENT: &str = concat!("adapter-worker/", env!("CARGO_PKG_VERSION"), " (OAuth client metadata fetch)");

/// Refuse, before any network access, what the platform's `fetch` would
/// otherwise attempt: anything but `https`, userinfo, a fragment, and a host
/// that is an IP address rather than a name (the core refuses all of these
/// in a client ID already; this keeps the fetcher safe on its own).
pub(crate) fn check_url(url: &str) -> Result<(), FetchError> {
    let parsed = url::Url::parse(url).map_err(|_| FetchError::ForbiddenUrl)?;
    if parsed.scheme() != "https"
        || !parsed.username().is_empty()
        || parsed.password().is_some()
        || parsed.fragment().is_some()
    {
        return Err(FetchError::ForbiddenUrl);
    }
    match parsed.host() {
        Some(url::Host::Domain(name)) if !name.is_empty() => Ok(()),
        _ => Err(FetchError::ForbiddenUrl),
    }
}

/// Whether a declared `Content-Length` already exceeds the cap.
pub(crate) fn declared_too_large(content_length: Option<&str>, max_bytes: usize) -> bool {
    content_length.and_then(|v| v.trim().parse::<u64>().ok()).is_some_and(|n| n > max_bytes as u64)
}

/// A body read chunk by chunk, refused as soon as it passes the cap.
#[derive(Debug)]
pub(crate) struct CappedBody {
    max_bytes: usize,
    bytes: Vec<u8>,
}

impl CappedBody {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self { max_bytes, bytes: Vec::new() }
    }

    /// Add `chunk`, or refuse it: the caller cancels the stream.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<(), FetchError> {
        if self.bytes.len().saturating_add(chunk.len()) > self.max_bytes {
            return Err(FetchError::TooLarge);
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// The timer's delay for a budget: at least a millisecond.
pub(crate) fn timer_delay(timeout: Duration) -> Duration {
    timeout.max(Duration::from_millis(1))
}

#[cfg(target_arch = "wasm32")]
pub use glue::WorkerFetcher;

#[cfg(target_arch = "wasm32")]
mod glue {
    use core::time::Duration;
    use std::pin::pin;

    use bytes::Bytes;
    use futures_util::future::{Either, select};
    use http::HeaderMap;
    use http::header::{AGE, CACHE_CONTROL, CONTENT_TYPE};
    use js_sys::futures::JsFuture;
    use oauth_core::{FetchError, FetchRequest, FetchResponse};
    use wasm_bindgen::{JsCast, JsValue};
    use web_sys::{
        AbortController, Headers, ReadableStreamDefaultReader, RequestCache, RequestInit, RequestRedirect, Response,
        WorkerGlobalScope,
    };

    use super::{CappedBody, USER_AGENT, check_url, declared_too_large, timer_delay};
    use crate::kv::js_message;

    /// Fetches client ID metadata documents and key sets with the
    /// platform's `fetch`, under the rules in the [module
    /// documentation](super): https only, no redirect followed, the body
    /// capped while streaming, the whole exchange bounded, nothing cached.
    ///
    /// It has no settings: nothing about it may be loosened. A test serves
    /// documents by configuring the local runtime instead (workerd's trusted
    /// certificates; see `scripts/test.d/55-worker-cimd.sh`).
    #[derive(Clone, Copy, Debug, Default)]
    #[non_exhaustive]
    pub struct WorkerFetcher;

    impl WorkerFetcher {
        /// The fetcher.
        pub const fn new() -> Self {
            Self
        }

        /// Perform the core's request.
        pub async fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, FetchError> {
            self.get(&request.url, request.accept, request.max_bytes, request.timeout).await
        }

        /// `GET url` with `Accept: accept`, at most `max_bytes` of body, all
        /// within `timeout`. Any status is answered as received, with a body
        /// only for 200 (a 3xx is never followed).
        pub async fn get(
            &self,
            url: &str,
            accept: &str,
            max_bytes: usize,
            timeout: Duration,
        ) -> Result<FetchResponse, FetchError> {
            check_url(url)?;
            let controller = AbortController::new().map_err(|e| other("AbortController", &e))?;
            let exchange = pin!(exchange(url, accept, max_bytes, &controller));
            let timer = pin!(worker::Delay::from(timer_delay(timeout)));
            match select(exchange, timer).await {
                Either::Left((result, _)) => {
                    if result.is_err() {
                        // Whatever is still open (a refused body) is torn down.
                        controller.abort();
                    }
                    result
                }
                Either::Right(((), _)) => {
                    // Aborts the request, or the body's stream mid-read.
                    controller.abort();
                    Err(FetchError::Timeout)
                }
            }
        }
    }

    fn other(what: &str, e: &JsValue) -> FetchError {
        FetchError::Other(format!("{what}: {}", js_message(e)))
    }

    async fn exchange(
        url: &str,
        accept: &str,
        max_bytes: usize,
        controller: &AbortController,
    ) -> Result<FetchResponse, FetchError> {
        let headers = Headers::new().map_err(|e| other("Headers", &e))?;
        headers.set("accept", accept).map_err(|e| other("Accept", &e))?;
        headers.set("user-agent", USER_AGENT).map_err(|e| other("User-Agent", &e))?;
        let init = RequestInit::new();
        init.set_method("GET");
        init.set_headers(&headers);
        init.set_redirect(RequestRedirect::Manual);
        init.set_cache(RequestCache::NoStore);
        init.set_signal(Some(&controller.signal()));

        let global: WorkerGlobalScope = js_sys::global().unchecked_into();
        let response = JsFuture::from(global.fetch_with_str_and_init(url, &init)).await.map_err(|e| {
            // DNS, connection and TLS failures alike: Workers does not tell
            // them apart in a way worth parsing.
            worker::console_warn!("client metadata fetch of {url} failed: {}", js_message(&e));
            FetchError::Connect
        })?;
        let response: Response = response.dyn_into().map_err(|e| other("fetch answered", &e))?;
        let status = response.status();
        let picked = picked_headers(&response.headers());
        if status != 200 {
            cancel_body(&response).await;
            return Ok(FetchResponse::new(status, &picked, Bytes::new()));
        }
        let content_length = response.headers().get("content-length").ok().flatten();
        if declared_too_large(content_length.as_deref(), max_bytes) {
            cancel_body(&response).await;
            return Err(FetchError::TooLarge);
        }
        let Some(stream) = response.body() else {
            return Ok(FetchResponse::new(status, &picked, Bytes::new()));
        };
        let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
        let mut body = CappedBody::new(max_bytes);
        loop {
            let chunk = JsFuture::from(reader.read()).await.map_err(|e| other("reading the body", &e))?;
            let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done")).map_err(|e| other("read", &e))?;
            if done.is_truthy() {
                break;
            }
            let value = js_sys::Reflect::get(&chunk, &JsValue::from_str("value")).map_err(|e| other("read", &e))?;
            let bytes = js_sys::Uint8Array::new(&value).to_vec();
            if let Err(e) = body.push(&bytes) {
                // Stop the transfer now rather than when the budget ends.
                let _ = JsFuture::from(reader.cancel()).await;
                return Err(e);
            }
        }
        Ok(FetchResponse::new(status, &picked, Bytes::from(body.into_bytes())))
    }

    /// The headers the core reads (a repeated header arrives joined with
    /// `, `, as `Headers.get` gives it).
    fn picked_headers(headers: &Headers) -> HeaderMap {
        let mut map = HeaderMap::new();
        for name in [CONTENT_TYPE, CACHE_CONTROL, AGE] {
            if let Some(value) = headers.get(name.as_str()).ok().flatten().and_then(|v| v.parse().ok()) {
                map.insert(name, value);
            }
        }
        map
    }

    /// Release a body that will not be read.
    async fn cancel_body(response: &Response) {
        if let Some(stream) = response.body() {
            let _ = JsFuture::from(stream.cancel()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_naming_a_host() {
        assert_eq!(check_url("https://client.example/app.json"), Ok(()));
        assert_eq!(check_url("https://client.example:8443/a?b=c"), Ok(()));
        for url in [
            "http://client.example/app.json",
            "ftp://client.example/app.json",
            "file:///etc/passwd",
            "https://user@client.example/app.json",
            "https://user:pw@client.example/app.json",
            "https://client.example/app.json#frag",
            "https://127.0.0.1/app.json",
            "https://0x7f.1/app.json",
            "https://[::1]/app.json",
            "https://[::ffff:127.0.0.1]/app.json",
            "https://169.254.169.254/latest/meta-data",
            "not a url",
            "",
        ] {
            assert_eq!(check_url(url), Err(FetchError::ForbiddenUrl), "{url}");
        }
    }

    #[test]
    fn the_body_cap() {
        assert!(declared_too_large(Some("5121"), 5120));
        assert!(!declared_too_large(Some("5120"), 5120));
        assert!(!declared_too_large(Some("nonsense"), 5120), "then the stream decides");
        assert!(!declared_too_large(None, 5120));

        let mut body = CappedBody::new(5120);
        assert_eq!(body.push(&[b' '; 4096]), Ok(()));
        assert_eq!(body.push(&[b' '; 1024]), Ok(()));
        assert_eq!(body.push(b" "), Err(FetchError::TooLarge));
        assert_eq!(body.into_bytes().len(), 5120);
    }

    #[test]
    fn a_zero_budget_still_arms_a_timer() {
        assert_eq!(timer_delay(Duration::ZERO), Duration::from_millis(1));
        assert_eq!(timer_delay(Duration::from_secs(5)), Duration::from_secs(5));
    }
}
