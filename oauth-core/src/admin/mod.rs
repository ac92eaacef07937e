//! Administration of clients: create, read, update, delete and list them
//! from the application's own code (an admin page, a provisioning script),
//! as flows driven like any request. Validation is the very same as for
//! dynamic registration, so an administrator cannot register a redirect URI
//! a client could not.
//!
//! Administration of grants and tokens: list a user's grants, revoke one,
//! look a token up, and sweep the user index (see [`Provider::purge_expired`]).
//!
//! [`Provider::purge_expired`]: crate::Provider::purge_expired

mod clients;
pub use clients::*;
mod grants;
pub use grants::*;
