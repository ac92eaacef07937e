//! Placeholder: replaced by the full endpoint.

use std::sync::Arc;

use bytes::Bytes;
use http::Request;

use crate::config::Config;
use crate::error::{OAuthError, Reason};
use crate::flow::{Flow, FlowOutput};
use crate::provider::Outcome;
use crate::time::UnixTime;

pub(crate) fn start(
    _cfg: Arc<Config>,
    _request: Request<Bytes>,
    _now: UnixTime,
    _rng: &mut dyn crate::rng::SecureRandom,
) -> Flow<Outcome> {
    Flow::ready(Outcome::from_error(OAuthError::server_error(Reason::new("not_implemented"))))
}
