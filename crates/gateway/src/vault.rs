//! Vendor OAuth tokens in the gateway's store: sealed at rest (`store.encryption_key_file`), and a
//! lease so that one replica at a time refreshes an account's tokens (DrChrono rotates its refresh
//! token: two replicas refreshing at once would spend each other's).

use std::time::Duration;

use adapter::vault::{TokenVault, VaultTokens};
use adapter::{AdapterError, Secret};

/// How long a refresh may hold the lease before another replica takes it over (a holder that died).
const LEASE: Duration = Duration::from_secs(60);

/// How long a replica waits for another's refresh.
const WAIT: Duration = Duration::from_secs(60);

/// One vendor account's tokens in the store.
#[derive(Debug, Clone)]
pub struct StoreVault {
    store: store::Store,
    /// `drchrono:<client id>`
    account: String,
    lease: String,
}

impl StoreVault {
    pub fn new(store: store::Store, vendor: &str, account: &str) -> Self {
        let account = format!("{vendor}:{account}");
        Self {
            store,
            lease: format!("refresh:{account}"),
            account,
        }
    }
}

fn store_error(e: store::StoreError) -> AdapterError {
    AdapterError::TokenStore { reason: e.to_string() }
}

#[async_trait::async_trait]
impl TokenVault for StoreVault {
    async fn load(&self) -> Result<Option<VaultTokens>, AdapterError> {
        let stored = self.store.vendor_tokens(&self.account).await.map_err(store_error)?;
        Ok(stored.and_then(|s| {
            let refresh = s.tokens.refresh?;
            Some(VaultTokens {
                refresh: Secret::new(refresh),
                access: s.tokens.access.map(Secret::new),
                access_refresh_at: s.tokens.access_refresh_at,
            })
        }))
    }

    async fn save(&self, tokens: &VaultTokens) -> Result<(), AdapterError> {
        let plain = store::VendorTokens {
            refresh: Some(tokens.refresh.expose().to_owned()),
            access: tokens.access.as_ref().map(|a| a.expose().to_owned()),
            access_refresh_at: tokens.access_refresh_at,
        };
        self.store
            .save_vendor_tokens(&self.account, &plain)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn acquire(&self) -> Result<(), AdapterError> {
        match self.store.lease_wait(&self.lease, LEASE, WAIT).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(AdapterError::TokenStore {
                reason: format!(
                    "another replica has held the {} refresh for over a minute",
                    self.account
                ),
            }),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn release(&self) {
        if let Err(e) = self.store.lease_release(&self.lease).await {
            tracing::warn!(error = %e, "could not release the token refresh lease (it expires by itself)");
        }
    }
}
