//! What the Workers runtime supplies a flow: the time and random bytes.

use oauth_core::{SecureRandom, UnixTime};
use wasm_bindgen::{JsCast, JsValue};

/// The Workers clock (`Date.now()`), in whole seconds.
///
/// Workers advances this clock only between I/O operations (a Spectre
/// mitigation), so within one request it reads the request's start, give or
/// take the I/O done so far: the right `now` for a flow.
pub fn now() -> UnixTime {
    UnixTime::from_secs(worker::Date::now().as_millis() / 1000)
}

/// `crypto.getRandomValues`, the Workers CSPRNG.
///
/// The core's [`SecureRandom`] cannot fail, so a failure (no `crypto` global,
/// or the call throwing) is latched in [`failed`](Self::failed) and the
/// bytes are zeroed; callers check it before using anything the flow made.
#[derive(Debug, Default)]
pub struct CryptoRandom {
    failed: bool,
}

/// `getRandomValues` fills at most 65 536 bytes per call.
const MAX_CHUNK: usize = 65_536;

impl CryptoRandom {
    /// A generator that has not failed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether any fill failed.
    pub fn failed(&self) -> bool {
        self.failed
    }

    fn try_fill(dest: &mut [u8]) -> Result<(), JsValue> {
        let crypto = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))?;
        if crypto.is_undefined() {
            return Err(JsValue::from_str("no crypto global"));
        }
        let crypto: web_sys::Crypto = crypto.unchecked_into();
        for chunk in dest.chunks_mut(MAX_CHUNK) {
            crypto.get_random_values_with_u8_array(chunk)?;
        }
        Ok(())
    }
}

impl SecureRandom for CryptoRandom {
    fn fill(&mut self, dest: &mut [u8]) {
        if Self::try_fill(dest).is_err() {
            dest.fill(0);
            self.failed = true;
        }
    }
}
