//! What a personal API token may call. A token is read-only or read-write, for every service
//! or only the services it names; it never reaches the admin service, and never manages
//! tokens or the account itself (a leaked script token cannot mint others or delete its owner).

use std::fmt;

/// Prefix of every personal API token: the auth layer tells them from JWTs by it.
pub const API_TOKEN_PREFIX: &str = "aimesh_pat_";

/// The role that makes an account an administrator.
pub const ROLE_ADMIN: &str = "admin";

/// Methods no API token may call, whatever its scope (exact gRPC paths).
const NEVER_WITH_API_TOKENS: &[&str] = &[
    "/aimesh.identity.v1.IdentityService/CreateApiToken",
    "/aimesh.identity.v1.IdentityService/RevokeApiToken",
    "/aimesh.identity.v1.IdentityService/DeleteAccount",
];

/// Services no API token may call (administration needs a login).
const SERVICES_NEVER_WITH_API_TOKENS: &[&str] = &["aimesh.admin.v1.AdminService"];

/// Method name prefixes that only read.
const READ_PREFIXES: &[&str] = &["Get", "List", "Watch", "Search", "Download"];

/// Whether a token may change anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Only methods that read (`Get*`, `List*`, `Watch*`, `Search*`, `Download*`).
    ReadOnly,
    /// Every method its services have.
    ReadWrite,
}

impl Access {
    /// Returns the name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadOnly => "read-only",
            Access::ReadWrite => "read-write",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "read-only" => Some(Access::ReadOnly),
            "read-write" => Some(Access::ReadWrite),
            _ => None,
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scope of a personal API token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenScope {
    /// Read-only or read-write.
    pub access: Access,
    /// Full service names (`aimesh.notes.v1.NotesService`) the token may call; empty: every
    /// service.
    pub services: Vec<String>,
}

impl TokenScope {
    /// Returns whether a call of the gRPC `path` (`/package.Service/Method`) is within scope.
    pub fn allows(&self, path: &str) -> bool {
        if NEVER_WITH_API_TOKENS.contains(&path) {
            return false;
        }
        let Some((service, method)) = path.trim_start_matches('/').split_once('/') else {
            return false;
        };
        if SERVICES_NEVER_WITH_API_TOKENS.contains(&service) {
            return false;
        }
        if !self.services.is_empty() && !self.services.iter().any(|s| s == service) {
            return false;
        }
        match self.access {
            Access::ReadWrite => true,
            Access::ReadOnly => READ_PREFIXES.iter().any(|prefix| {
                method.starts_with(prefix)
                    && method[prefix.len()..]
                        .chars()
                        .next()
                        .is_none_or(char::is_uppercase)
            }),
        }
    }
}

/// Returns whether `token` has the shape of a personal API token.
pub fn is_api_token(token: &str) -> bool {
    token.starts_with(API_TOKEN_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_tokens_reach_only_reads_of_their_services() {
        let scope = TokenScope {
            access: Access::ReadOnly,
            services: vec!["aimesh.notes.v1.NotesService".into()],
        };
        assert!(scope.allows("/aimesh.notes.v1.NotesService/GetNote"));
        assert!(scope.allows("/aimesh.notes.v1.NotesService/ListNotes"));
        assert!(!scope.allows("/aimesh.notes.v1.NotesService/CreateNote"));
        assert!(!scope.allows("/aimesh.notes.v1.NotesService/Getaway"));
        assert!(!scope.allows("/aimesh.jobs.v1.JobsService/GetJob"));
        assert!(!scope.allows("garbage"));
    }

    #[test]
    fn no_token_administers_or_mints_tokens() {
        let scope = TokenScope {
            access: Access::ReadWrite,
            services: Vec::new(),
        };
        assert!(scope.allows("/aimesh.jobs.v1.JobsService/CancelJob"));
        assert!(scope.allows("/aimesh.identity.v1.IdentityService/GetProfile"));
        assert!(!scope.allows("/aimesh.identity.v1.IdentityService/CreateApiToken"));
        assert!(!scope.allows("/aimesh.identity.v1.IdentityService/DeleteAccount"));
        assert!(!scope.allows("/aimesh.admin.v1.AdminService/ListUsers"));
    }
}
