//! Zoom-style paging: `page_size` (default 30, at most 300) and an opaque `next_page_token`
//! that expires (the doc: after 15 minutes; [`super::ZoomSimConfig::next_page_token_ttl`]).
//!
//! A token remembers the list it pages through (the ids matched when the first page was asked
//! for), so later pages are stable while data changes; the objects themselves are read fresh.
//! A token may be used again until it expires (a client retrying a failed page gets the same
//! page).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use rand::Rng;

use super::api::{ApiError, Params, codes};
use super::{Shared, lock};

pub(crate) const DEFAULT_PAGE_SIZE: usize = 30;
pub(crate) const MAX_PAGE_SIZE: usize = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListKind {
    Notes,
    Visits,
    Providers,
    WaitingRoom,
}

/// `from`/`to` as the first request gave them, echoed on every page.
#[derive(Clone, Debug, Default)]
pub(crate) struct Echo {
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
}

#[derive(Clone)]
struct Cursor {
    kind: ListKind,
    ids: Arc<Vec<String>>,
    offset: usize,
    page_size: usize,
    echo: Echo,
    expires_at: Instant,
}

#[derive(Default)]
pub(crate) struct PageStore {
    cursors: HashMap<String, Cursor>,
    /// The lists the live cursors page through, by a hash of their ids: tokens of identical lists
    /// (the same query asked again and again) share one copy.
    lists: HashMap<u64, Weak<Vec<String>>>,
}

impl PageStore {
    fn issue(&mut self, mut cursor: Cursor) -> String {
        let now = Instant::now();
        self.cursors.retain(|_, c| c.expires_at > now);
        self.lists.retain(|_, list| list.strong_count() > 0);
        let hash = {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            cursor.ids.hash(&mut hasher);
            hasher.finish()
        };
        match self.lists.get(&hash).and_then(Weak::upgrade) {
            Some(shared) if shared == cursor.ids => cursor.ids = shared,
            _ => {
                self.lists.insert(hash, Arc::downgrade(&cursor.ids));
            }
        }
        let token = random_token();
        self.cursors.insert(token.clone(), cursor);
        token
    }

    fn resolve(&self, token: &str, kind: ListKind) -> Option<Cursor> {
        self.cursors
            .get(token)
            .filter(|c| c.kind == kind && c.expires_at > Instant::now())
            .cloned()
    }
}

/// A UUID-shaped token, like the doc's `ff9d4fb9-8b64-4d6d-93ff-8bc86b18f5c4`.
fn random_token() -> String {
    let mut rng = rand::rng();
    let hex = |rng: &mut rand::rngs::ThreadRng, n: usize| -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
            .collect()
    };
    format!(
        "{}-{}-4{}-{}{}-{}",
        hex(&mut rng, 8),
        hex(&mut rng, 4),
        hex(&mut rng, 3),
        char::from(b"89ab"[rng.random_range(0..4)]),
        hex(&mut rng, 3),
        hex(&mut rng, 12)
    )
}

/// One page of ids.
pub(crate) struct Page {
    pub(crate) ids: Vec<String>,
    pub(crate) next_page_token: String,
    pub(crate) page_size: u32,
    pub(crate) total: u64,
    pub(crate) echo: Echo,
}

fn page_size(params: &Params) -> Result<Option<usize>, ApiError> {
    let Some(raw) = params.get("page_size") else {
        return Ok(None);
    };
    match raw.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(Some(usize::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE))),
        _ => Err(ApiError::field(
            "page_size",
            "page_size must be a number from 1 to 300.",
        )),
    }
}

pub(crate) fn expired_token() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        codes::INVALID,
        "The next page token is invalid or expired.",
    )
}

/// The requested page: from the token's list when the request has a `next_page_token`
/// (filters in the request are then ignored), else from `fresh()`.
pub(crate) fn paginate(
    shared: &Shared,
    kind: ListKind,
    params: &Params,
    fresh: impl FnOnce() -> Result<(Vec<String>, Echo), ApiError>,
) -> Result<Page, ApiError> {
    let requested = page_size(params)?;
    let (ids, offset, size, echo) = match params.get("next_page_token") {
        Some(token) => {
            let cursor = lock(&shared.pages).resolve(token, kind).ok_or_else(expired_token)?;
            (
                cursor.ids,
                cursor.offset,
                requested.unwrap_or(cursor.page_size),
                cursor.echo,
            )
        }
        None => {
            let (ids, echo) = fresh()?;
            (Arc::new(ids), 0, requested.unwrap_or(DEFAULT_PAGE_SIZE), echo)
        }
    };
    let start = offset.min(ids.len());
    let end = start.saturating_add(size).min(ids.len());
    let page: Vec<String> = ids[start..end].to_vec();
    let next_page_token = if end < ids.len() {
        let ttl: Duration = shared.config.next_page_token_ttl;
        let now = Instant::now();
        lock(&shared.pages).issue(Cursor {
            kind,
            ids: ids.clone(),
            offset: end,
            page_size: size,
            echo: echo.clone(),
            expires_at: now.checked_add(ttl).unwrap_or(now),
        })
    } else {
        String::new()
    };
    Ok(Page {
        ids: page,
        next_page_token,
        page_size: u32::try_from(size).unwrap_or(u32::MAX),
        total: ids.len() as u64,
        echo,
    })
}

#[cfg(test)]
mod tests {
    use super::random_token;

    #[test]
    fn tokens_are_uuid_shaped() {
        let token = random_token();
        let parts: Vec<usize> = token.split('-').map(str::len).collect();
        assert_eq!(parts, vec![8, 4, 4, 4, 12], "{token}");
    }
}
