//! How the app store asks whether an owner exists without knowing auth's tables: a small
//! trait that the auth store implements, and that tests or other deployments can
//! implement differently.

pub type LookupError = Box<dyn std::error::Error + Send + Sync>;

/// Answers whether users and teams exist, wherever they live.
pub trait OwnerDirectory {
    fn user_exists(&mut self, user_id: &str) -> Result<bool, LookupError>;
    fn team_exists(&mut self, team_id: &str) -> Result<bool, LookupError>;
}
