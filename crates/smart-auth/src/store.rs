//! The authorization server's memory: authorization transactions, codes, refresh-token families,
//! revoked token ids, seen assertion ids, EHR launch contexts. Everything expires and every map is
//! bounded; secrets (codes, refresh tokens) are keyed by their SHA-256, never stored as given.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::scopes::ScopeSet;
use crate::throttle::ClientIp;
use crate::util::now;

/// Bounds: past them a new entry is refused rather than a security-relevant entry being forgotten
/// early. Launch contexts and transactions that have not passed the login page (which anyone can
/// start) drop their oldest instead; used refresh tokens (kept to detect their reuse) are forgotten
/// oldest first.
pub(crate) const MAX_TRANSACTIONS: usize = 10_000;
pub(crate) const MAX_CODES: usize = 10_000;
pub(crate) const MAX_FAMILIES: usize = 100_000;
pub(crate) const MAX_ASSERTION_JTIS: usize = 100_000;
pub(crate) const MAX_LAUNCHES: usize = 10_000;
/// Access tokens remembered per refresh family (to revoke them with it); past it the oldest is
/// revoked rather than forgotten, so a family's revocation always reaches every token it issued.
const MAX_ACCESS_PER_FAMILY: usize = 64;
/// Refresh-token records kept at most (each family's current token and the used ones).
pub(crate) const MAX_REFRESH_RECORDS: usize = 300_000;
/// Used refresh tokens remembered per family (a reuse of one revokes the family); older ones are
/// forgotten (a reuse of those is then refused as unknown, without revoking the family).
pub(crate) const MAX_USED_PER_FAMILY: usize = 16;

/// Sweeps run at most this often (seconds).
const SWEEP_EVERY: i64 = 10;

/// What a grant is: the scopes and context every token issued from it carries.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Grant {
    pub(crate) client_id: String,
    #[serde(with = "crate::scopes::as_string")]
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
    /// The address that started it (pre-login transactions are bounded per address).
    pub(crate) ip: ClientIp,
}

/// An issued authorization code.
#[derive(Clone, Debug, Serialize, Deserialize)]
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

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Issued {
    pub(crate) access: Vec<(String, i64)>,
    pub(crate) family: Option<String>,
}

/// A refresh-token family: one grant, rotated tokens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Family {
    pub(crate) grant: Grant,
    /// Access tokens issued in the family (jti, exp).
    pub(crate) access: Vec<(String, i64)>,
    /// When the current refresh token expires.
    pub(crate) expires_at: i64,
    /// The SHA-256 of its refresh tokens still remembered, oldest first (the last is the current).
    pub(crate) refresh: VecDeque<[u8; 32]>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RefreshRecord {
    pub(crate) family: String,
    pub(crate) used: bool,
    pub(crate) expires_at: i64,
}

/// An EHR launch context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Ids of the transactions at the login page, oldest first, overall and per starting address
    /// (ids of transactions gone or past the login page are skipped, and pruned by the sweep).
    pre_login: VecDeque<String>,
    pre_login_by_ip: HashMap<ClientIp, VecDeque<String>>,
    /// SHA-256 of the used refresh tokens, oldest use first (ids no longer stored are skipped, and
    /// pruned by the sweep).
    used_refresh: VecDeque<[u8; 32]>,
    last_sweep: i64,
    /// What changed since the durable store last heard (only kept once one is attached).
    pub(crate) journal: Journal,
}

/// The changes the durable store has not heard of yet: revocations to publish, and the keys of
/// codes, families and refresh tokens to write again (or delete, when no longer in memory).
#[derive(Default, Debug)]
pub(crate) struct Journal {
    pub(crate) on: bool,
    pub(crate) revoked: Vec<(String, i64)>,
    pub(crate) codes: HashSet<[u8; 32]>,
    pub(crate) families: HashSet<String>,
    pub(crate) refresh: HashSet<[u8; 32]>,
}

impl Journal {
    fn revoked(&mut self, jti: &str, exp: i64) {
        if self.on {
            self.revoked.push((jti.to_owned(), exp));
        }
    }

    pub(crate) fn code(&mut self, hash: [u8; 32]) {
        if self.on {
            self.codes.insert(hash);
        }
    }

    pub(crate) fn family(&mut self, family: &str) {
        if self.on {
            self.families.insert(family.to_owned());
        }
    }

    fn refresh(&mut self, hash: [u8; 32]) {
        if self.on {
            self.refresh.insert(hash);
        }
    }

    /// Takes what changed, leaving the journal empty (and on).
    pub(crate) fn take(&mut self) -> Journal {
        Journal {
            on: self.on,
            revoked: std::mem::take(&mut self.revoked),
            codes: std::mem::take(&mut self.codes),
            families: std::mem::take(&mut self.families),
            refresh: std::mem::take(&mut self.refresh),
        }
    }
}

/// Leeway added to every expiry kept for revocation checks: longer than the verifiers' 60 s clock
/// leeway, so a revocation is remembered for as long as its token could be accepted.
const LEEWAY: i64 = 120;

/// True when `id` is a live transaction still at the login page.
fn is_pre_login(transactions: &HashMap<String, AuthTx>, id: &str) -> bool {
    transactions.get(id).is_some_and(|tx| tx.step == Step::Login)
}

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
        let transactions = &self.transactions;
        self.pre_login.retain(|id| is_pre_login(transactions, id));
        self.pre_login_by_ip.retain(|_, ids| {
            ids.retain(|id| is_pre_login(transactions, id));
            !ids.is_empty()
        });
        let refresh = &self.refresh;
        self.used_refresh.retain(|h| refresh.contains_key(h));
    }

    /// Stores a new transaction (at the login page). One address keeps at most `per_ip` of those
    /// (its oldest is dropped), and when the table is full the oldest of anyone's is dropped. False
    /// only when the table is full of transactions past the login page.
    pub(crate) fn add_transaction(&mut self, id: String, tx: AuthTx, per_ip: usize) -> bool {
        self.sweep(false);
        let ip = tx.ip;
        let transactions = &mut self.transactions;
        let mine = self.pre_login_by_ip.entry(ip).or_default();
        mine.retain(|id| is_pre_login(&*transactions, id));
        while mine.len() >= per_ip.max(1) {
            let Some(oldest) = mine.pop_front() else { break };
            transactions.remove(&oldest);
        }
        if self.transactions.len() >= MAX_TRANSACTIONS {
            self.sweep(true);
        }
        while self.transactions.len() >= MAX_TRANSACTIONS {
            let Some(oldest) = self.pre_login.pop_front() else {
                return false;
            };
            if is_pre_login(&self.transactions, &oldest) {
                self.transactions.remove(&oldest);
            }
        }
        self.pre_login.push_back(id.clone());
        self.pre_login_by_ip.entry(ip).or_default().push_back(id.clone());
        self.transactions.insert(id, tx);
        true
    }

    /// Stores a family's new refresh token (the one it replaces, if any, is then marked used with
    /// [`Store::mark_refresh_used`]). A family remembers its last [`MAX_USED_PER_FAMILY`] used
    /// tokens; when the table is full the oldest used token of any family is forgotten. False when
    /// the table is full of current tokens.
    pub(crate) fn add_refresh(&mut self, family: &str, hash: [u8; 32], expires_at: i64) -> bool {
        self.add_refresh_within(family, hash, expires_at, MAX_REFRESH_RECORDS)
    }

    fn add_refresh_within(&mut self, family: &str, hash: [u8; 32], expires_at: i64, max: usize) -> bool {
        if self.refresh.len() >= max {
            self.sweep(true);
        }
        while self.refresh.len() >= max {
            let Some(oldest) = self.used_refresh.pop_front() else {
                return false;
            };
            if self.refresh.get(&oldest).is_some_and(|r| r.used) {
                self.refresh.remove(&oldest);
                self.journal.refresh(oldest);
            }
        }
        self.refresh.insert(
            hash,
            RefreshRecord {
                family: family.to_owned(),
                used: false,
                expires_at,
            },
        );
        self.journal.refresh(hash);
        self.journal.family(family);
        if let Some(f) = self.families.get_mut(family) {
            f.refresh.push_back(hash);
            while f.refresh.len() > MAX_USED_PER_FAMILY + 1 {
                if let Some(old) = f.refresh.pop_front() {
                    self.refresh.remove(&old);
                    self.journal.refresh(old);
                }
            }
        }
        true
    }

    /// Marks a refresh token used: it stays known (a reuse revokes its family) until it expires or
    /// is among the oldest forgotten.
    pub(crate) fn mark_refresh_used(&mut self, hash: &[u8; 32]) {
        if let Some(r) = self.refresh.get_mut(hash)
            && !r.used
        {
            r.used = true;
            self.used_refresh.push_back(*hash);
            self.journal.refresh(*hash);
        }
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
        self.journal.revoked(jti, exp);
    }

    pub(crate) fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.contains_key(jti)
    }

    /// Revokes a family: its refresh tokens are forgotten (so they stop working) and its access
    /// tokens are revoked. Returns the revoked access-token ids.
    pub(crate) fn revoke_family(&mut self, family: &str) -> Vec<String> {
        let Some(f) = self.families.remove(family) else {
            return Vec::new();
        };
        self.journal.family(family);
        for hash in &f.refresh {
            self.refresh.remove(hash);
            self.journal.refresh(*hash);
        }
        let mut jtis = Vec::with_capacity(f.access.len());
        for (jti, exp) in f.access {
            self.revoked.insert(jti.clone(), exp);
            self.journal.revoked(&jti, exp);
            jtis.push(jti);
        }
        jtis
    }

    /// Records an access token issued in a family. When the family already holds
    /// [`MAX_ACCESS_PER_FAMILY`] live ones, its oldest is revoked (it has been replaced that many
    /// times over) rather than forgotten.
    pub(crate) fn add_family_access(&mut self, family: &str, jti: &str, exp: i64) {
        if let Some(f) = self.families.get_mut(family) {
            let t = now();
            f.access.retain(|(_, e)| *e + LEEWAY > t);
            if f.access.len() >= MAX_ACCESS_PER_FAMILY {
                let (oldest, oldest_exp) = f.access.remove(0);
                self.journal.revoked(&oldest, oldest_exp);
                self.revoked.insert(oldest, oldest_exp);
            }
            f.access.push((jti.to_owned(), exp));
            self.journal.family(family);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn ip(a: u8, b: u8) -> ClientIp {
        ClientIp::of(Some(SocketAddr::from(([10, 0, a, b], 5000))))
    }

    fn tx(ip: ClientIp) -> AuthTx {
        AuthTx {
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            state: "st".into(),
            code_challenge: String::new(),
            scopes: ScopeSet::default(),
            nonce: None,
            launch: None,
            step: Step::Login,
            username: None,
            auth_time: None,
            patient: None,
            patient_display: None,
            last_results: Vec::new(),
            login_failures: 0,
            expires_at: now() + 600,
            ip,
        }
    }

    fn family() -> Family {
        Family {
            grant: Grant {
                client_id: "app".into(),
                scopes: ScopeSet::default(),
                subject: "dr".into(),
                patient: None,
                encounter: None,
                fhir_user: None,
                nonce: None,
                auth_time: None,
            },
            access: Vec::new(),
            expires_at: now() + 600,
            refresh: VecDeque::new(),
        }
    }

    fn ids(store: &Store) -> Vec<String> {
        let mut ids: Vec<String> = store.transactions.keys().cloned().collect();
        ids.sort();
        ids
    }

    fn hash(i: usize) -> [u8; 32] {
        crate::util::sha256(&i.to_be_bytes())
    }

    #[test]
    fn pre_login_transactions_are_bounded_per_address_oldest_first() {
        let mut store = Store::default();
        for i in 0..5 {
            assert!(store.add_transaction(format!("a{i}"), tx(ip(0, 1)), 3));
        }
        assert_eq!(ids(&store), ["a2", "a3", "a4"]);
        // Another address has its own bound; a transaction past the login page no longer counts.
        assert!(store.add_transaction("b0".into(), tx(ip(0, 2)), 3));
        if let Some(t) = store.transactions.get_mut("a2") {
            t.step = Step::Consent;
        }
        assert!(store.add_transaction("a5".into(), tx(ip(0, 1)), 3));
        assert_eq!(ids(&store), ["a2", "a3", "a4", "a5", "b0"]);
        assert!(store.add_transaction("a6".into(), tx(ip(0, 1)), 3));
        assert_eq!(ids(&store), ["a2", "a4", "a5", "a6", "b0"]);
        // The sweep prunes the indexes of what is gone.
        store.transactions.clear();
        store.sweep(true);
        assert!(store.pre_login.is_empty() && store.pre_login_by_ip.is_empty());
    }

    #[test]
    fn a_full_table_drops_the_oldest_pre_login_transaction_not_a_signed_in_one() {
        let mut store = Store::default();
        for i in 0..MAX_TRANSACTIONS {
            let addr = ip((i >> 8) as u8, i as u8);
            assert!(store.add_transaction(format!("t{i:05}"), tx(addr), 20));
        }
        if let Some(t) = store.transactions.get_mut("t00000") {
            t.step = Step::Consent;
        }
        assert!(store.add_transaction("new".into(), tx(ip(250, 1)), 20));
        assert_eq!(store.transactions.len(), MAX_TRANSACTIONS);
        assert!(store.transactions.contains_key("t00000"), "past the login page: kept");
        assert!(
            !store.transactions.contains_key("t00001"),
            "the oldest pre-login one goes"
        );
        assert!(store.transactions.contains_key("new"));
        // Full of signed-in transactions: a new one is refused.
        for t in store.transactions.values_mut() {
            t.step = Step::Consent;
        }
        assert!(!store.add_transaction("refused".into(), tx(ip(250, 2)), 20));
        assert_eq!(store.transactions.len(), MAX_TRANSACTIONS);
    }

    #[test]
    fn a_family_remembers_a_bounded_number_of_used_refresh_tokens() {
        let mut store = Store::default();
        store.families.insert("f".into(), family());
        let exp = now() + 600;
        assert!(store.add_refresh("f", hash(0), exp));
        for i in 1..=40 {
            store.mark_refresh_used(&hash(i - 1));
            assert!(store.add_refresh("f", hash(i), exp));
        }
        assert_eq!(store.refresh.len(), MAX_USED_PER_FAMILY + 1);
        assert!(!store.refresh[&hash(40)].used, "the current token");
        assert!(
            store.refresh[&hash(40 - MAX_USED_PER_FAMILY)].used,
            "the oldest remembered use"
        );
        assert!(!store.refresh.contains_key(&hash(39 - MAX_USED_PER_FAMILY)));
        // Revoking the family forgets its tokens.
        store.revoke_family("f");
        assert!(store.refresh.is_empty());
        store.sweep(true);
        assert!(store.used_refresh.is_empty());
    }

    #[test]
    fn a_full_refresh_table_forgets_the_oldest_used_token_and_never_a_current_one() {
        let mut store = Store::default();
        store.families.insert("f".into(), family());
        store.families.insert("g".into(), family());
        let exp = now() + 600;
        assert!(store.add_refresh_within("f", hash(0), exp, 4));
        store.mark_refresh_used(&hash(0));
        assert!(store.add_refresh_within("f", hash(1), exp, 4));
        store.mark_refresh_used(&hash(1));
        assert!(store.add_refresh_within("f", hash(2), exp, 4));
        assert!(store.add_refresh_within("g", hash(10), exp, 4));
        store.mark_refresh_used(&hash(10));
        assert!(store.add_refresh_within("g", hash(11), exp, 4));
        assert!(
            !store.refresh.contains_key(&hash(0)),
            "the oldest use is forgotten first"
        );
        assert!(store.add_refresh_within("g", hash(12), exp, 4));
        assert!(!store.refresh.contains_key(&hash(1)));
        assert!(store.refresh.contains_key(&hash(2)) && store.refresh.contains_key(&hash(10)));
        assert_eq!(store.refresh.len(), 4);
        // Full of current tokens: refused.
        let mut live = Store::default();
        live.families.insert("a".into(), family());
        live.families.insert("b".into(), family());
        assert!(live.add_refresh_within("a", hash(0), exp, 1));
        assert!(!live.add_refresh_within("b", hash(1), exp, 1));
    }

    #[test]
    fn expired_refresh_tokens_are_swept() {
        let mut store = Store::default();
        store.families.insert("f".into(), family());
        assert!(store.add_refresh("f", hash(0), now() - 1));
        store.mark_refresh_used(&hash(0));
        assert!(store.add_refresh("f", hash(1), now() + 600));
        store.sweep(true);
        assert!(!store.refresh.contains_key(&hash(0)) && store.refresh.contains_key(&hash(1)));
        assert!(store.used_refresh.is_empty());
    }

    #[test]
    fn a_family_revokes_its_oldest_access_token_rather_than_forget_it() {
        let mut store = Store::default();
        store.families.insert("f".into(), family());
        let exp = now() + 600;
        for i in 0..=MAX_ACCESS_PER_FAMILY {
            store.add_family_access("f", &format!("jti-{i}"), exp);
        }
        assert!(store.is_revoked("jti-0"));
        assert!(!store.is_revoked("jti-1"));
        let revoked = store.revoke_family("f");
        assert_eq!(revoked.len(), MAX_ACCESS_PER_FAMILY);
        assert!((0..=MAX_ACCESS_PER_FAMILY).all(|i| store.is_revoked(&format!("jti-{i}"))));
    }
}
