//! One module per endpoint.

pub(crate) mod authorize;
pub(crate) mod metadata;
pub(crate) mod register;
pub(crate) mod resource;
pub(crate) mod revoke;
pub(crate) mod token;
