//! Users, API tokens and ACL groups: the bodies of `/api/users`, `/api/tokens`,
//! `/api/acls` and `/api/whoami`, and the client's calls for them.

use crate::client::{Client, ClientError};
use serde::{Deserialize, Serialize};

/// The name of the ACL group every new user and every new host joins.
pub const EVERYONE: &str = "Everyone";

/// `POST /api/users` (admins only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CreateUser {
    pub name: String,
    #[serde(default)]
    pub admin: bool,
}

/// One user, as `GET /api/users` and `atest user list --json` show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserView {
    pub name: String,
    pub admin: bool,
    /// RFC 3339, UTC.
    pub created: String,
    /// The ACL groups the user belongs to, by name.
    #[serde(default)]
    pub acl_groups: Vec<String>,
}

/// A token just made: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenCreated {
    /// What `atest token revoke ID` takes.
    pub id: i64,
    /// The secret to send as `Authorization: Bearer TOKEN`.
    pub token: String,
}

/// `POST /api/users`: the user and its first token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserCreated {
    pub user: UserView,
    pub token: TokenCreated,
}

/// One of the caller's tokens, without its secret (`GET /api/tokens`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenView {
    pub id: i64,
    pub user: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// RFC 3339, UTC; absent while the token is valid.
    #[serde(default)]
    pub revoked: Option<String>,
}

/// `GET /api/whoami`: who the scheduler takes the caller to be.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WhoAmI {
    pub name: String,
    pub admin: bool,
}

/// One ACL group (`GET /api/acls`, `atest acl list --json`), and the body of
/// `POST /api/acls`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AclView {
    pub name: String,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// `POST /api/acls/{name}/add` and `POST /api/acls/{name}/remove`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AclMembers {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
}

impl Client {
    /// `GET /api/whoami`.
    pub fn whoami(&self) -> Result<WhoAmI, ClientError> {
        self.get("/api/whoami")
    }
    /// `POST /api/users`: the new user and its first token.
    pub fn create_user(&self, name: &str, admin: bool) -> Result<UserCreated, ClientError> {
        self.post(
            "/api/users",
            CreateUser {
                name: name.into(),
                admin,
            },
        )
    }
    /// `GET /api/users`.
    pub fn users(&self) -> Result<Vec<UserView>, ClientError> {
        self.get("/api/users")
    }
    /// `POST /api/tokens`: a new token for the caller.
    pub fn create_token(&self) -> Result<TokenCreated, ClientError> {
        self.post("/api/tokens", serde_json::json!({}))
    }
    /// `GET /api/tokens`: the caller's tokens (every user's, for an admin).
    pub fn tokens(&self) -> Result<Vec<TokenView>, ClientError> {
        self.get("/api/tokens")
    }
    /// `POST /api/tokens/{id}/revoke`: the caller's own token, or any for an admin.
    pub fn revoke_token(&self, id: i64) -> Result<TokenView, ClientError> {
        self.post(&format!("/api/tokens/{id}/revoke"), serde_json::json!({}))
    }
    /// `GET /api/acls`.
    pub fn acls(&self) -> Result<Vec<AclView>, ClientError> {
        self.get("/api/acls")
    }
    /// `POST /api/acls`.
    pub fn create_acl(&self, body: &AclView) -> Result<AclView, ClientError> {
        self.post("/api/acls", body)
    }
    /// `POST /api/acls/{name}/add`.
    pub fn acl_add(&self, name: &str, members: &AclMembers) -> Result<AclView, ClientError> {
        self.post(&format!("/api/acls/{name}/add"), members)
    }
    /// `POST /api/acls/{name}/remove`.
    pub fn acl_remove(&self, name: &str, members: &AclMembers) -> Result<AclView, ClientError> {
        self.post(&format!("/api/acls/{name}/remove"), members)
    }
}
