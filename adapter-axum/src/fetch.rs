//! The SSRF-safe fetcher behind [`Driver::fetch`](oauth_core::Driver::fetch):
//! how this adapter gets client ID metadata documents and key sets.
//!
//! A client ID is a URL anyone may send, so every fetch is treated as an
//! attempt to reach the server's own network. [`SafeFetcher`]:
//!
//! * fetches `https` URLs only, with the platform's web PKI roots
//!   (`webpki-roots`) unless told otherwise;
//! * resolves the host itself (through a [`Resolve`], the system resolver by
//!   default) and refuses the request unless **every** address it gets is a
//!   public unicast address ([`is_public`]): one private answer among public
//!   ones is how DNS rebinding starts, so it poisons the whole answer;
//! * connects to an address it checked, never resolving again, and sends the
//!   original host name for SNI, certificate verification and `Host`;
//! * follows no redirect: a 3xx is handed to the core as it is, which
//!   refuses it;
//! * reads at most the request's `max_bytes` of body, counting as it
//!   streams, and gives the whole exchange, resolution included, the
//!   request's `timeout`;
//! * sends no cookies or credentials: `Accept`, `User-Agent`, `Host` and
//!   `Connection: close` are the only headers.
//!
//! Tests serve documents from a local HTTPS server: they trust its CA with
//! [`SafeFetcherBuilder::add_root_certificate`] and let named test hosts
//! reach loopback with [`SafeFetcherBuilder::insecure_allow_loopback_host`].
//! Neither is on by default.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{Request, Uri, header};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use oauth_core::{FetchError, FetchRequest, FetchResponse};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// A boxed, `Send` resolution, as [`Resolve`] returns.
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Turns a host name into addresses. The fetcher checks whatever comes back,
/// so a resolver needs no policy of its own; tests supply one that maps
/// made-up names to chosen addresses.
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `host`.
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a>;
}

/// The operating system's resolver (`getaddrinfo`, through tokio).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, 443)).await?.map(|a| a.ip()).collect()) })
    }
}

/// Why a [`SafeFetcher`] could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum FetcherError {
    /// TLS could not be configured.
    Tls(rustls::Error),
    /// A root certificate was not accepted.
    RootCertificate(String),
}

impl fmt::Display for FetcherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tls(e) => write!(f, "cannot configure TLS: {e}"),
            Self::RootCertificate(e) => write!(f, "root certificate refused: {e}"),
        }
    }
}

impl std::error::Error for FetcherError {}

/// Fetches client ID metadata documents and key sets under the rules in the
/// module documentation. Cheap to clone.
#[derive(Clone)]
pub struct SafeFetcher {
    resolver: Arc<dyn Resolve>,
    tls: TlsConnector,
    loopback_hosts: Arc<BTreeSet<String>>,
}

impl fmt::Debug for SafeFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafeFetcher").field("loopback_hosts", &self.loopback_hosts).finish_non_exhaustive()
    }
}

/// Configures a [`SafeFetcher`]. The defaults are the production ones.
#[must_use]
pub struct SafeFetcherBuilder {
    resolver: Arc<dyn Resolve>,
    roots: Vec<CertificateDer<'static>>,
    web_roots: bool,
    loopback_hosts: BTreeSet<String>,
}

impl fmt::Debug for SafeFetcherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafeFetcherBuilder")
            .field("extra_roots", &self.roots.len())
            .field("web_roots", &self.web_roots)
            .field("loopback_hosts", &self.loopback_hosts)
            .finish_non_exhaustive()
    }
}

impl SafeFetcherBuilder {
    /// Resolve with `resolver` instead of the system's.
    pub fn resolver(mut self, resolver: impl Resolve) -> Self {
        self.resolver = Arc::new(resolver);
        self
    }

    /// Also trust this CA certificate (DER): a test CA, or a private PKI.
    pub fn add_root_certificate(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.roots.push(CertificateDer::from(der.into()));
        self
    }

    /// Trust only the certificates added with
    /// [`add_root_certificate`](Self::add_root_certificate), not the web PKI.
    pub fn only_added_roots(mut self) -> Self {
        self.web_roots = false;
        self
    }

    /// **Tests only.** Let `host` (exactly this name) resolve to loopback
    /// addresses (`127.0.0.0/8`, `::1`), so a test can serve documents from a
    /// local server. Every other special-use range stays refused for it, and
    /// every other name keeps the full check. The CIMD draft (§8.6) allows
    /// this relaxation for development only; never set it in production.
    pub fn insecure_allow_loopback_host(mut self, host: impl Into<String>) -> Self {
        self.loopback_hosts.insert(host.into().to_ascii_lowercase());
        self
    }

    /// Build the fetcher.
    pub fn build(self) -> Result<SafeFetcher, FetcherError> {
        let mut roots = RootCertStore::empty();
        if self.web_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for der in self.roots {
            roots.add(der).map_err(|e| FetcherError::RootCertificate(e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(FetcherError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(SafeFetcher {
            resolver: self.resolver,
            tls: TlsConnector::from(Arc::new(config)),
            loopback_hosts: Arc::new(self.loopback_hosts),
        })
    }
}

/// The most response-head bytes buffered.
const MAX_HEADER_BUFFER: usize = 16 * 1024;

const USER_AGENT: &str = concat!("adapter-axum/", env!("CARGO_PKG_VERSION"), " (OAuth client metadata fetch)");

impl SafeFetcher {
    /// The production fetcher: system resolver, web PKI roots.
    pub fn new() -> Result<Self, FetcherError> {
        Self::builder().build()
    }

    /// Start from the production settings.
    pub fn builder() -> SafeFetcherBuilder {
        SafeFetcherBuilder {
            resolver: Arc::new(SystemResolver),
            roots: Vec::new(),
            web_roots: true,
            loopback_hosts: BTreeSet::new(),
        }
    }

    /// Perform `request`. Never follows a redirect; any status is returned
    /// as it is, with a body only for 200.
    pub async fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, FetchError> {
        let budget = request.timeout;
        match tokio::time::timeout(budget, self.fetch_inner(&request)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    async fn fetch_inner(&self, request: &FetchRequest) -> Result<FetchResponse, FetchError> {
        let target = Target::parse(&request.url)?;
        let loopback_ok = self.loopback_hosts.contains(&target.host.to_ascii_lowercase());
        let addresses = match target.host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => self.resolver.resolve(&target.host).await.map_err(|_| FetchError::Resolve)?,
        };
        if addresses.is_empty() {
            return Err(FetchError::Resolve);
        }
        let allowed = |ip: &IpAddr| is_public(*ip) || (loopback_ok && canonical(*ip).is_loopback());
        if !addresses.iter().all(allowed) {
            return Err(FetchError::ForbiddenAddress);
        }
        let stream = connect(&addresses, target.port).await?;
        let name = match target.host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(target.host.clone()).map_err(|_| FetchError::ForbiddenUrl)?,
        };
        let tls = self.tls.connect(name, stream).await.map_err(|_| FetchError::Connect)?;
        // Headers are buffered whole; bound them well below hyper's default
        // (~400 KiB) so a hostile server cannot make each fetch costly.
        let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(MAX_HEADER_BUFFER)
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|_| FetchError::Connect)?;
        // The connection task ends with this exchange (`Connection: close`),
        // and is aborted if the exchange is abandoned (timeout, drop).
        let driver = AbortOnDrop(tokio::spawn(connection));

        let http_request = Request::get(target.path_and_query.as_str())
            .header(header::HOST, target.host_header())
            .header(header::ACCEPT, request.accept)
            .header(header::USER_AGENT, USER_AGENT)
            .header(header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|_| FetchError::ForbiddenUrl)?;
        let response = sender.send_request(http_request).await.map_err(|e| FetchError::Other(e.to_string()))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if status != 200 {
            drop(driver);
            return Ok(FetchResponse::new(status, &headers, Bytes::new()));
        }
        let declared =
            headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > request.max_bytes as u64) {
            return Err(FetchError::TooLarge);
        }
        let mut body = response.into_body();
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| FetchError::Other(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                if buf.len().saturating_add(data.len()) > request.max_bytes {
                    return Err(FetchError::TooLarge);
                }
                buf.extend_from_slice(data);
            }
        }
        drop(driver);
        Ok(FetchResponse::new(status, &headers, buf.freeze()))
    }
}

/// The fetcher a layer gets by default: the production one when the
/// provider has client ID metadata documents on, else none.
pub(crate) fn for_provider(provider: &oauth_core::Provider) -> Option<SafeFetcher> {
    provider.config().cimd.as_ref()?;
    match SafeFetcher::new() {
        Ok(fetcher) => Some(fetcher),
        Err(error) => {
            // Flows then answer `server_error` (reason cimd_fetch_unsupported).
            tracing::error!(%error, "cannot build the client metadata fetcher");
            None
        }
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connect to the first of `addresses` (all already checked) that answers.
async fn connect(addresses: &[IpAddr], port: u16) -> Result<TcpStream, FetchError> {
    for ip in addresses {
        if let Ok(stream) = TcpStream::connect(SocketAddr::new(*ip, port)).await {
            let _ = stream.set_nodelay(true);
            return Ok(stream);
        }
    }
    Err(FetchError::Connect)
}

/// The parts of an `https` URL the fetcher uses.
struct Target {
    host: String,
    port: u16,
    path_and_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, FetchError> {
        let uri: Uri = url.parse().map_err(|_| FetchError::ForbiddenUrl)?;
        if uri.scheme_str() != Some("https") {
            return Err(FetchError::ForbiddenUrl);
        }
        let authority = uri.authority().ok_or(FetchError::ForbiddenUrl)?;
        if authority.as_str().contains('@') {
            return Err(FetchError::ForbiddenUrl);
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        if host.is_empty() {
            return Err(FetchError::ForbiddenUrl);
        }
        let path_and_query = uri.path_and_query().map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        Ok(Self { host, port: authority.port_u16().unwrap_or(443), path_and_query })
    }

    fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == 443 { host } else { format!("{host}:{}", self.port) }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Whether `ip` is a public unicast address, safe to fetch from: not in any
/// special-use range of RFC 6890 and its successors (the IANA special-purpose
/// registries). IPv4-mapped IPv6 addresses are judged as the IPv4 address
/// they carry.
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    const SPECIAL: &[([u8; 4], u32)] = &[
        ([0, 0, 0, 0], 8),       // "this network"
        ([10, 0, 0, 0], 8),      // private
        ([100, 64, 0, 0], 10),   // shared address space (CGNAT)
        ([127, 0, 0, 0], 8),     // loopback
        ([169, 254, 0, 0], 16),  // link-local, cloud metadata services
        ([172, 16, 0, 0], 12),   // private
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // TEST-NET-1
        ([192, 31, 196, 0], 24), // AS112-v4
        ([192, 52, 193, 0], 24), // AMT
        ([192, 88, 99, 0], 24),  // deprecated 6to4 relay anycast
        ([192, 168, 0, 0], 16),  // private
        ([192, 175, 48, 0], 24), // direct delegation AS112
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // TEST-NET-2
        ([203, 0, 113, 0], 24),  // TEST-NET-3
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, and 255.255.255.255 broadcast
    ];
    !SPECIAL.iter().any(|(net, prefix)| in_v4(ip, *net, *prefix))
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
    (u128::from(ip) & mask) == (u128::from(Ipv6Addr::from(net)) & mask)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    // Only global unicast (2000::/3) can be public. That one rule refuses
    // ::, ::1, the IPv4-compatible ::/96, 64:ff9b::/96 and 64:ff9b:1::/48
    // (NAT64, which would reach IPv4 space by another name), 100::/64
    // (discard), fc00::/7 (unique local), fe80::/10 (link-local), fec0::/10
    // and ff00::/8 (multicast).
    if !in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        return false;
    }
    const SPECIAL: &[([u16; 8], u32)] = &[
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), // IETF protocol assignments (Teredo, ORCHID, benchmarking…)
        ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32), // documentation
        ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), // 6to4: an IPv4 address in disguise
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), // documentation (RFC 9637)
    ];
    !SPECIAL.iter().any(|(net, prefix)| in_v6(ip, *net, *prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn special_ranges_are_refused() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.31.196.1",
            "192.52.193.1",
            "192.88.99.1",
            "192.168.1.1",
            "192.175.48.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::8.8.8.8",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:2::1",
            "2001:10::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(!public(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in ["8.8.8.8", "1.1.1.1", "100.128.0.1", "172.32.0.1", "192.0.3.1", "::ffff:8.8.8.8", "2606:4700::1111"]
        {
            assert!(public(ip), "{ip} is public");
        }
    }

    #[test]
    fn targets() {
        let t = Target::parse("https://app.example:8443/a/b.json?x=1").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path_and_query.as_str()), ("app.example", 8443, "/a/b.json?x=1"));
        assert_eq!(t.host_header(), "app.example:8443");
        assert_eq!(Target::parse("https://[::1]/x").unwrap().host_header(), "[::1]");
        assert!(matches!(Target::parse("http://app.example/x"), Err(FetchError::ForbiddenUrl)));
        assert!(matches!(Target::parse("https://u@app.example/x"), Err(FetchError::ForbiddenUrl)));
    }
}
