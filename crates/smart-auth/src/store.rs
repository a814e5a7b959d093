//! The authorization server's memory: authorization transactions, codes, refresh-token families,
//! revoked token ids, seen assertion ids, EHR launch contexts. Everything expires and every map is
//! bounded; secrets (codes, refresh tokens) are keyed by their SHA-256, never stored as given.

use std::collections::HashMap;

use crate::scopes::ScopeSet;
use crate::util::now;

/// Bounds: past them a new entry is refused (or, for launch contexts, the oldest is dropped) rather
/// than a security-relevant entry being forgotten early.
pub(crate) const MAX_TRANSACTIONS: usize = 10_000;
pub(crate) const MAX_CODES: usize = 10_000;
pub(crate) const MAX_FAMILIES: usize = 100_000;
pub(crate) const MAX_ASSERTION_JTIS: usize = 100_000;
pub(crate) const MAX_LAUNCHES: usize = 10_000;
/// Access tokens remembered per refresh family (to revoke them with it).
const MAX_ACCESS_PER_FAMILY: usize = 64;

/// Sweeps run at most this often (seconds).
const SWEEP_EVERY: i64 = 10;

/// What a grant is: the scopes and context every token issued from it carries.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub(crate) client_id: String,
    pub(crate) scopes: ScopeSet,
    /// `sub`: the username, or the client id for client credentials.
    pub(crate) subject: String,
    pub(crate) patient: Option<String>,
    pub(crate) encounter: Option<String>,
    /// The user's FHIR resource as configured (`Practitioner/x`).
    pub(crate) fhir_user: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) auth_time: Option<i64>,
}

/// Where an authorization transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Login,
    PickPatient,
    Consent,
}

/// An authorization request in progress (the login, picker and consent pages).
#[derive(Clone, Debug)]
pub(crate) struct AuthTx {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) state: String,
    pub(crate) code_challenge: String,
    pub(crate) scopes: ScopeSet,
    pub(crate) nonce: Option<String>,
    /// From an EHR launch.
    pub(crate) launch: Option<LaunchContext>,
    pub(crate) step: Step,
    pub(crate) username: Option<String>,
    pub(crate) auth_time: Option<i64>,
    pub(crate) patient: Option<String>,
    pub(crate) patient_display: Option<String>,
    /// The picker's last list (to show the chosen patient's name).
    pub(crate) last_results: Vec<crate::PatientChoice>,
    pub(crate) login_failures: u32,
    pub(crate) expires_at: i64,
}

/// An issued authorization code.
#[derive(Clone, Debug)]
pub(crate) struct CodeRecord {
    pub(crate) redirect_uri: String,
    pub(crate) code_challenge: String,
    pub(crate) grant: Grant,
    pub(crate) expires_at: i64,
    /// Set when redeemed: what was issued from it (revoked if the code comes back).
    pub(crate) redeemed: Option<Issued>,
    /// How long the record is kept (after redemption: while its tokens live).
    pub(crate) keep_until: i64,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Issued {
    pub(crate) access: Vec<(String, i64)>,
    pub(crate) family: Option<String>,
}

/// A refresh-token family: one grant, rotated tokens.
#[derive(Clone, Debug)]
pub(crate) struct Family {
    pub(crate) grant: Grant,
    /// Access tokens issued in the family (jti, exp).
    pub(crate) access: Vec<(String, i64)>,
    /// When the current refresh token expires.
    pub(crate) expires_at: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct RefreshRecord {
    pub(crate) family: String,
    pub(crate) used: bool,
    pub(crate) expires_at: i64,
}

/// An EHR launch context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LaunchContext {
    pub(crate) patient: Option<String>,
    pub(crate) encounter: Option<String>,
}

#[derive(Default)]
pub(crate) struct Store {
    pub(crate) transactions: HashMap<String, AuthTx>,
    pub(crate) codes: HashMap<[u8; 32], CodeRecord>,
    pub(crate) families: HashMap<String, Family>,
    pub(crate) refresh: HashMap<[u8; 32], RefreshRecord>,
    /// Revoked access-token jtis until their exp.
    pub(crate) revoked: HashMap<String, i64>,
    /// `client_id` + `jti` of accepted client assertions until their exp.
    pub(crate) assertion_jtis: HashMap<(String, String), i64>,
    pub(crate) launches: HashMap<String, (LaunchContext, i64)>,
    last_sweep: i64,
}

/// Leeway added to every expiry kept for revocation checks.
const LEEWAY: i64 = 60;

impl Store {
    /// Drops expired entries (at most every few seconds, unless `force`).
    pub(crate) fn sweep(&mut self, force: bool) {
        let t = now();
        if !force && t - self.last_sweep < SWEEP_EVERY {
            return;
        }
        self.last_sweep = t;
        self.transactions.retain(|_, tx| tx.expires_at > t);
        self.codes.retain(|_, c| c.keep_until > t);
        self.refresh.retain(|_, r| r.expires_at > t);
        self.families.retain(|_, f| {
            f.access.retain(|(_, exp)| *exp + LEEWAY > t);
            f.expires_at > t
        });
        self.revoked.retain(|_, exp| *exp + LEEWAY > t);
        self.assertion_jtis.retain(|_, exp| *exp + LEEWAY > t);
        self.launches.retain(|_, (_, exp)| *exp > t);
    }

    /// Frees room in a map before an insert; false when it is still full of live entries.
    pub(crate) fn has_room(&mut self, len: impl Fn(&Self) -> usize, max: usize) -> bool {
        if len(self) < max {
            return true;
        }
        self.sweep(true);
        len(self) < max
    }

    pub(crate) fn revoke_access(&mut self, jti: &str, exp: i64) {
        self.sweep(false);
        self.revoked.insert(jti.to_owned(), exp);
    }

    pub(crate) fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.contains_key(jti)
    }

    /// Revokes a family: its refresh tokens stop working and its access tokens are revoked.
    pub(crate) fn revoke_family(&mut self, family: &str) {
        if let Some(f) = self.families.remove(family) {
            for (jti, exp) in f.access {
                self.revoked.insert(jti, exp);
            }
        }
    }

    /// Records an access token issued in a family.
    pub(crate) fn add_family_access(&mut self, family: &str, jti: &str, exp: i64) {
        if let Some(f) = self.families.get_mut(family) {
            let t = now();
            f.access.retain(|(_, e)| *e + LEEWAY > t);
            if f.access.len() >= MAX_ACCESS_PER_FAMILY {
                f.access.remove(0);
            }
            f.access.push((jti.to_owned(), exp));
        }
    }

    /// Stores a launch context, dropping the oldest one when full.
    pub(crate) fn add_launch(&mut self, id: String, ctx: LaunchContext, expires_at: i64) {
        if !self.has_room(|s| s.launches.len(), MAX_LAUNCHES)
            && let Some(oldest) = self
                .launches
                .iter()
                .min_by_key(|(_, (_, exp))| *exp)
                .map(|(k, _)| k.clone())
        {
            self.launches.remove(&oldest);
        }
        self.launches.insert(id, (ctx, expires_at));
    }

    /// Takes a launch context (single use).
    pub(crate) fn take_launch(&mut self, id: &str) -> Option<LaunchContext> {
        let (ctx, exp) = self.launches.remove(id)?;
        (exp > now()).then_some(ctx)
    }
}
