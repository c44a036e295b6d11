//! Authorization (DESIGN.md §1, the authorize phase): what an authenticated caller may do
//! on a route. Role, scope and consumer rules are compiled into sets once per load; Cedar
//! policies (in [`cedar`]) are parsed and validated against a schema generated from the
//! config, so a typo in an attribute name fails the load, not a request.
#![forbid(unsafe_code)]

pub mod cedar;
mod rules;

pub use cedar::{CedarPolicy, CedarSchema};
pub use rules::Authorize;
