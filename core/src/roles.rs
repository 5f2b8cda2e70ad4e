//! A member's role, a leaf of the domain: the accounts rules and the SQL that stores roles
//! (`store::keys`, `store::accounts`) both name it, so it depends on neither.

use crate::{Error, Result};

/// A member's role. Owners may do everything; admins everything except touching owners and
/// deleting the organization; agents see and place their own calls and manage their own
/// devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Agent,
    Admin,
    Owner,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "agent" => Some(Role::Agent),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }

    /// Parses a role from a request field.
    pub fn from_field(field: &str, s: &str) -> Result<Self> {
        Self::parse(s).ok_or_else(|| Error::invalid(field, "one of owner, admin, agent"))
    }
}
