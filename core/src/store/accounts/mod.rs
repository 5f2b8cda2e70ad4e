//! People and their access: users, identities, memberships, sessions, pending sign-ins,
//! invitations and the audit log, one module per table. Everything is re-exported here, so
//! callers keep writing `store::accounts::insert_user` whatever module holds it.

mod audit;
mod identities;
mod invitations;
mod member_agents;
mod memberships;
mod sessions;
mod sign_ins;
mod users;

pub use audit::*;
pub use identities::*;
pub use invitations::*;
pub use member_agents::*;
pub use memberships::*;
pub use sessions::*;
pub use sign_ins::*;
pub use users::*;
