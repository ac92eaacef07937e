//! The example applications' user interface, shared by adapter-axum's demo
//! (the axum and Lambda examples) and adapter-worker's example: HTML
//! escaping, one page layout, the sign-in, consent, error and home pages, the
//! forms they post, and the development user store.
//!
//! Everything here is runtime-neutral: pages are plain `String`s, and each
//! example wraps them in its own responses (status, security headers) and
//! keeps its own cookies and storage.

mod form;
mod html;
mod pages;
mod users;

pub use form::Form;
pub use html::{escape, page};
pub use pages::{client_label, consent_page, describe_scope, error_page, home_page, login_page};
pub use users::{DevUser, Users, validate_user_name};
