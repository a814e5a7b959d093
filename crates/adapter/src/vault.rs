//! Where a vendor client keeps its OAuth tokens across restarts and shares them across replicas.
//!
//! A vendor that rotates refresh tokens (DrChrono) invalidates the old refresh token with every
//! grant: a token kept only in memory is lost at the next restart, and two replicas refreshing at
//! once spend each other's tokens. A [`TokenVault`] is the durable copy (sealed at rest by the
//! implementation) and the cross-process lock around a refresh: a client acquires it, loads what
//! another process may have stored meanwhile, refreshes only when that is not usable, saves the
//! newly granted refresh token *before* using it, and releases.

use crate::{AdapterError, Secret};

/// A vendor account's OAuth tokens as kept durably (sealed at rest by the implementation).
#[derive(Clone, Debug, PartialEq)]
pub struct VaultTokens {
    pub refresh: Secret,
    pub access: Option<Secret>,
    /// Unix seconds at which the access token is due for replacement.
    pub access_refresh_at: Option<i64>,
}

/// Where a vendor client keeps its tokens across restarts and shares them across replicas.
///
/// Errors are [`AdapterError::TokenStore`]s whose reason never carries a token.
#[async_trait::async_trait]
pub trait TokenVault: Send + Sync {
    /// The stored tokens, if any were saved.
    async fn load(&self) -> Result<Option<VaultTokens>, AdapterError>;
    /// Saves durably; called with a newly granted refresh token *before* it is used.
    async fn save(&self, tokens: &VaultTokens) -> Result<(), AdapterError>;
    /// Waits until this process is the only one refreshing (across replicas).
    async fn acquire(&self) -> Result<(), AdapterError>;
    /// Ends what `acquire` began.
    async fn release(&self);
}
