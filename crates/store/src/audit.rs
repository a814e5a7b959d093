//! The audit trail, kept as chunks (`audit_chunks`): the events of one append together in one row
//! (a JSON array, opaque to the database), each value a search looks for listed once per chunk in
//! `audit_terms`. Writing an event costs the database a few bytes rather than a row and its index
//! entries; a search finds the candidate chunks by term and time span and picks the matching
//! events out of them, in order, with keyset paging. An event's number is its chunk's number ×
//! 65 536 plus its place in the chunk. Never changed (both backends refuse an `UPDATE` with a
//! trigger); the retention sweep deletes whole chunks once all their events are past it.
//!
//! Every query is built from fixed SQL text and `$n` placeholders: values are only ever bound.

use std::collections::BTreeSet;

use futures::TryStreamExt;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

use crate::{Store, StoreError, query_error};

/// One audit event as stored. `id` is assigned by the store (ignored by [`Store::audit_append`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    /// Unix milliseconds.
    pub recorded_ms: i64,
    pub type_code: String,
    pub subtype: String,
    pub action: String,
    pub outcome: String,
    pub client_id: Option<String>,
    pub user_ref: Option<String>,
    pub patient: Option<String>,
    /// What the event is about (`Type/id`, or the type searched) when that is not `patient`
    /// (an `entity` search matches either column).
    pub entity: Option<String>,
    pub ip: Option<String>,
    /// The AuditEvent JSON.
    pub resource: String,
}

/// A search of the audit trail. Every non-empty filter must match (AND); the values inside one
/// filter are alternatives (OR).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// recorded_ms >= from (inclusive)
    pub from_ms: Option<i64>,
    /// recorded_ms < to (exclusive)
    pub to_ms: Option<i64>,
    pub patient: Vec<String>,
    /// matches `entity` or `patient`
    pub entity: Vec<String>,
    /// matches `user_ref` or `client_id`
    pub agent: Vec<String>,
    /// matches `type_code` or `subtype`
    pub type_code: Vec<String>,
    pub subtype: Vec<String>,
    pub action: Vec<String>,
    pub outcome: Vec<String>,
    /// newest first (recorded_ms DESC, id DESC) when true, else oldest first (ASC, ASC)
    pub newest_first: bool,
    /// keyset paging: only rows strictly after this (recorded_ms, id) in the chosen order
    pub after: Option<(i64, i64)>,
    /// at most this many rows (clamped to 1..=1000)
    pub limit: u32,
}

/// The most rows one search returns.
const MAX_LIMIT: u32 = 1000;

/// The most events in one chunk (an append of more is split): an event's place in its chunk is
/// the low 16 bits of its number.
const CHUNK_EVENTS: usize = 2000;

/// An event's number: its chunk's, shifted, plus its place in the chunk.
const PLACE_BITS: u32 = 16;

/// A value bound to a placeholder.
#[derive(Clone, Copy)]
enum Param<'a> {
    Int(i64),
    Text(&'a str),
}

/// A WHERE clause under construction: its conditions (SQL text with `$n` placeholders only) and
/// the values bound to them, in placeholder order.
#[derive(Default)]
struct Conditions<'a> {
    clauses: Vec<String>,
    params: Vec<Param<'a>>,
}

impl<'a> Conditions<'a> {
    /// Binds `value` to the next placeholder; returns the placeholder (`$n`).
    fn placeholder(&mut self, value: Param<'a>) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    /// `id IN (SELECT chunk FROM audit_terms WHERE term IN ($i, …))`: chunks holding an event
    /// with any of the `terms`. Nothing when there are none.
    fn any_term(&mut self, terms: &'a [String]) {
        if terms.is_empty() {
            return;
        }
        let list: Vec<String> = terms
            .iter()
            .map(|t| self.placeholder(Param::Text(t.as_str())))
            .collect();
        self.clauses.push(format!(
            "id IN (SELECT chunk FROM audit_terms WHERE term IN ({}))",
            list.join(", ")
        ));
    }

    /// `column op $n`.
    fn compare(&mut self, column: &str, op: &str, value: i64) {
        let p = self.placeholder(Param::Int(value));
        self.clauses.push(format!("{column} {op} {p}"));
    }

    /// ` WHERE a AND b …`, or nothing.
    fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// One filter of a query as the terms a chunk lists: `prefix:value` for each value and prefix.
fn terms(prefixes: &[&str], values: &[String]) -> Vec<String> {
    prefixes
        .iter()
        .flat_map(|p| values.iter().map(move |v| format!("{p}:{v}")))
        .collect()
}

/// The terms each filter of `q` looks for (empty filters give none).
fn query_terms(q: &AuditQuery) -> Vec<Vec<String>> {
    [
        terms(&["p"], &q.patient),
        terms(&["e", "p"], &q.entity),
        terms(&["u", "c"], &q.agent),
        terms(&["t", "s"], &q.type_code),
        terms(&["s"], &q.subtype),
        terms(&["a"], &q.action),
        terms(&["o"], &q.outcome),
    ]
    .into_iter()
    .filter(|t| !t.is_empty())
    .collect()
}

/// The terms a chunk of `rows` lists.
fn chunk_terms(rows: &[AuditRow]) -> BTreeSet<String> {
    let mut distinct: BTreeSet<(&str, &str)> = BTreeSet::new();
    for r in rows {
        for (prefix, value) in [
            ("p", r.patient.as_deref()),
            ("e", r.entity.as_deref()),
            ("c", r.client_id.as_deref()),
            ("u", r.user_ref.as_deref()),
            ("o", Some(r.outcome.as_str())),
            ("t", Some(r.type_code.as_str())),
            ("s", Some(r.subtype.as_str())),
            ("a", Some(r.action.as_str())),
        ] {
            if let Some(v) = value {
                distinct.insert((prefix, v));
            }
        }
    }
    distinct.into_iter().map(|(p, v)| format!("{p}:{v}")).collect()
}

/// The conditions on chunks that may hold events `q` finds (every filter's terms, the date range);
/// with `keyset`, also `q.after`.
fn chunk_filters<'a>(q: &AuditQuery, term_lists: &'a [Vec<String>], keyset: bool) -> Conditions<'a> {
    let mut c = Conditions::default();
    for list in term_lists {
        c.any_term(list);
    }
    if let Some(from) = q.from_ms {
        c.compare("last_ms", ">=", from);
    }
    if let Some(to) = q.to_ms {
        c.compare("first_ms", "<", to);
    }
    if keyset && let Some((recorded_ms, _)) = q.after {
        if q.newest_first {
            c.compare("first_ms", "<=", recorded_ms);
        } else {
            c.compare("last_ms", ">=", recorded_ms);
        }
    }
    c
}

/// Whether `value` is one of `wanted` (or `wanted` is empty: no filter).
fn one_of(wanted: &[String], value: Option<&str>) -> bool {
    wanted.is_empty() || value.is_some_and(|v| wanted.iter().any(|w| w == v))
}

/// Whether the event `r` matches every filter of `q` (not `after` or `limit`).
fn matches(q: &AuditQuery, r: &AuditRow) -> bool {
    q.from_ms.is_none_or(|from| r.recorded_ms >= from)
        && q.to_ms.is_none_or(|to| r.recorded_ms < to)
        && one_of(&q.patient, r.patient.as_deref())
        && (one_of(&q.entity, r.entity.as_deref()) || one_of(&q.entity, r.patient.as_deref()))
        && (one_of(&q.agent, r.user_ref.as_deref()) || one_of(&q.agent, r.client_id.as_deref()))
        && (one_of(&q.type_code, Some(&r.type_code)) || one_of(&q.type_code, Some(&r.subtype)))
        && one_of(&q.subtype, Some(&r.subtype))
        && one_of(&q.action, Some(&r.action))
        && one_of(&q.outcome, Some(&r.outcome))
}

/// Binds `params` in order.
fn bind_all<'q>(mut query: Query<'q, Any, AnyArguments<'q>>, params: &[Param<'q>]) -> Query<'q, Any, AnyArguments<'q>> {
    for param in params {
        query = match *param {
            Param::Int(v) => query.bind(v),
            Param::Text(v) => query.bind(v),
        };
    }
    query
}

/// One event in a chunk's body: `[recorded_ms, type_code, subtype, action, outcome, client_id,
/// user_ref, patient, entity, ip, resource]`.
type Encoded = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

/// A chunk's body.
fn encode(rows: &[AuditRow]) -> Result<String, StoreError> {
    let body: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.recorded_ms,
                &r.type_code,
                &r.subtype,
                &r.action,
                &r.outcome,
                &r.client_id,
                &r.user_ref,
                &r.patient,
                &r.entity,
                &r.ip,
                &r.resource,
            )
        })
        .collect();
    serde_json::to_string(&body).map_err(|e| StoreError::Query {
        operation: "audit_append",
        reason: e.to_string(),
    })
}

/// The events of chunk `chunk` (its body `body`), numbered.
fn decode(chunk: i64, body: &str) -> Result<Vec<AuditRow>, StoreError> {
    let events: Vec<Encoded> = serde_json::from_str(body).map_err(|e| StoreError::Query {
        operation: "audit_chunk",
        reason: format!("chunk {chunk} cannot be read: {e}"),
    })?;
    Ok(events
        .into_iter()
        .enumerate()
        .map(|(place, e)| AuditRow {
            id: (chunk << PLACE_BITS) | i64::try_from(place).unwrap_or(0),
            recorded_ms: e.0,
            type_code: e.1,
            subtype: e.2,
            action: e.3,
            outcome: e.4,
            client_id: e.5,
            user_ref: e.6,
            patient: e.7,
            entity: e.8,
            ip: e.9,
            resource: e.10,
        })
        .collect())
}

/// A chunk row (`id, first_ms, last_ms, body`) read.
fn chunk_of(r: &AnyRow) -> Result<(i64, i64, i64, String), StoreError> {
    let id: i64 = r.try_get(0).map_err(query_error("audit_chunk"))?;
    let first: i64 = r.try_get(1).map_err(query_error("audit_chunk"))?;
    let last: i64 = r.try_get(2).map_err(query_error("audit_chunk"))?;
    let body: String = r.try_get(3).map_err(query_error("audit_chunk"))?;
    Ok((id, first, last, body))
}

/// The order of events in a search: `(recorded_ms, id)`, ascending or descending.
fn key(r: &AuditRow) -> (i64, i64) {
    (r.recorded_ms, r.id)
}

impl Store {
    /// Appends rows in one transaction (all or none), as one chunk (or several, past
    /// [`CHUNK_EVENTS`]). Returns how many were written. The rows' `id`s are ignored.
    pub async fn audit_append(&self, rows: &[AuditRow]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let terms_sql = match self.inner.backend {
            crate::Backend::Sqlite => "INSERT INTO audit_terms (term, chunk) SELECT value, $2 FROM json_each($1)",
            crate::Backend::Postgres => {
                "INSERT INTO audit_terms (term, chunk) SELECT value, $2::bigint FROM json_array_elements_text($1::json)"
            }
        };
        let mut tx = self.inner.pool.begin().await.map_err(query_error("audit_append"))?;
        let mut written = 0;
        for chunk in rows.chunks(CHUNK_EVENTS) {
            let first = chunk.iter().map(|r| r.recorded_ms).min().unwrap_or(0);
            let last = chunk.iter().map(|r| r.recorded_ms).max().unwrap_or(0);
            let events = i64::try_from(chunk.len()).unwrap_or(i64::MAX);
            let id: i64 = sqlx::query(
                "INSERT INTO audit_chunks (first_ms, last_ms, events, body) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(first)
            .bind(last)
            .bind(events)
            .bind(encode(chunk)?)
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(query_error("audit_append"))?;
            let terms: Vec<String> = chunk_terms(chunk).into_iter().collect();
            let terms = serde_json::to_string(&terms).map_err(|e| StoreError::Query {
                operation: "audit_append",
                reason: e.to_string(),
            })?;
            sqlx::query(terms_sql)
                .bind(terms)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(query_error("audit_append"))?;
            written += chunk.len() as u64;
        }
        // Dropped without a commit (an error above), the transaction is rolled back.
        tx.commit().await.map_err(query_error("audit_append"))?;
        Ok(written)
    }

    /// The rows matching `q`, in its order, after its `after` key, at most its `limit`.
    ///
    /// Candidate chunks come in the order of their earliest event (latest, newest first); an
    /// event is placed once no chunk still to come can hold one before it.
    pub async fn audit_search(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        let limit = q.limit.clamp(1, MAX_LIMIT) as usize;
        let term_lists = query_terms(q);
        let c = chunk_filters(q, &term_lists, true);
        let order = if q.newest_first {
            "ORDER BY last_ms DESC, id DESC"
        } else {
            "ORDER BY first_ms ASC, id ASC"
        };
        let sql = format!(
            "SELECT id, first_ms, last_ms, body FROM audit_chunks{} {order}",
            c.where_sql()
        );
        let past_after = |r: &AuditRow| match q.after {
            None => true,
            Some(after) if q.newest_first => key(r) < after,
            Some(after) => key(r) > after,
        };
        // Placed events, in order; events waiting for their place.
        let mut placed: Vec<AuditRow> = Vec::new();
        let mut waiting: Vec<AuditRow> = Vec::new();
        let place = |waiting: &mut Vec<AuditRow>, placed: &mut Vec<AuditRow>, horizon: Option<i64>| {
            if q.newest_first {
                waiting.sort_unstable_by_key(|r| std::cmp::Reverse(key(r)));
            } else {
                waiting.sort_unstable_by_key(key);
            }
            let ready = waiting
                .iter()
                .take_while(|r| match horizon {
                    None => true,
                    Some(h) if q.newest_first => r.recorded_ms > h,
                    Some(h) => r.recorded_ms < h,
                })
                .count();
            placed.extend(waiting.drain(..ready));
        };
        let query = bind_all(sqlx::query(&sql), &c.params);
        let mut chunks = query.fetch(&self.inner.pool);
        while let Some(row) = chunks.try_next().await.map_err(query_error("audit_search"))? {
            let (id, first, last, body) = chunk_of(&row)?;
            place(
                &mut waiting,
                &mut placed,
                Some(if q.newest_first { last } else { first }),
            );
            if placed.len() >= limit {
                break;
            }
            waiting.extend(
                decode(id, &body)?
                    .into_iter()
                    .filter(|r| matches(q, r) && past_after(r)),
            );
        }
        drop(chunks);
        place(&mut waiting, &mut placed, None);
        placed.truncate(limit);
        Ok(placed)
    }

    /// How many rows match `q`'s filters (ignores `after` and `limit`).
    pub async fn audit_count(&self, q: &AuditQuery) -> Result<u64, StoreError> {
        let term_lists = query_terms(q);
        let mut total: u64 = 0;
        let mut c = chunk_filters(q, &term_lists, false);
        if term_lists.is_empty() {
            // Chunks wholly inside the date range count whole; only those across its ends are read.
            let mut whole = Conditions::default();
            let mut across = Vec::new();
            if let Some(from) = q.from_ms {
                whole.compare("first_ms", ">=", from);
                across.push("first_ms < ");
            }
            if let Some(to) = q.to_ms {
                whole.compare("last_ms", "<", to);
                across.push("last_ms >= ");
            }
            let sql = format!("SELECT COALESCE(SUM(events), 0) FROM audit_chunks{}", whole.where_sql());
            let row = bind_all(sqlx::query(&sql), &whole.params)
                .fetch_one(&self.inner.pool)
                .await
                .map_err(query_error("audit_count"))?;
            let n: i64 = row.try_get(0).map_err(query_error("audit_count"))?;
            total = u64::try_from(n).unwrap_or(0);
            if across.is_empty() {
                return Ok(total);
            }
            let mut ends = Vec::new();
            for (test, value) in across.iter().zip([q.from_ms, q.to_ms].into_iter().flatten()) {
                ends.push(format!("{test}{}", c.placeholder(Param::Int(value))));
            }
            c.clauses.push(format!("({})", ends.join(" OR ")));
        }
        let sql = format!("SELECT id, first_ms, last_ms, body FROM audit_chunks{}", c.where_sql());
        let query = bind_all(sqlx::query(&sql), &c.params);
        let mut chunks = query.fetch(&self.inner.pool);
        while let Some(row) = chunks.try_next().await.map_err(query_error("audit_count"))? {
            let (id, _, _, body) = chunk_of(&row)?;
            total += decode(id, &body)?.iter().filter(|r| matches(q, r)).count() as u64;
        }
        Ok(total)
    }

    /// The row numbered `id`, if there is one.
    pub async fn audit_get(&self, id: i64) -> Result<Option<AuditRow>, StoreError> {
        if id < 0 {
            return Ok(None);
        }
        let (chunk, place) = (id >> PLACE_BITS, id & ((1 << PLACE_BITS) - 1));
        let row = sqlx::query("SELECT id, first_ms, last_ms, body FROM audit_chunks WHERE id = $1")
            .bind(chunk)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(query_error("audit_get"))?;
        let Some(row) = row else { return Ok(None) };
        let (chunk, _, _, body) = chunk_of(&row)?;
        Ok(decode(chunk, &body)?
            .into_iter()
            .nth(usize::try_from(place).unwrap_or(usize::MAX)))
    }

    /// Deletes the chunks whose events were all recorded before `before_ms` (unix milliseconds:
    /// the retention setting); returns how many events. An event is kept past `before_ms` while
    /// a later event of its chunk (the same writer batch: milliseconds later) is not.
    pub async fn audit_sweep(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(query_error("audit_sweep"))?;
        sqlx::query("DELETE FROM audit_terms WHERE chunk IN (SELECT id FROM audit_chunks WHERE last_ms < $1)")
            .bind(before_ms)
            .execute(&mut *tx)
            .await
            .map_err(query_error("audit_sweep"))?;
        let deleted = sqlx::query("DELETE FROM audit_chunks WHERE last_ms < $1 RETURNING events")
            .bind(before_ms)
            .fetch_all(&mut *tx)
            .await
            .map_err(query_error("audit_sweep"))?;
        tx.commit().await.map_err(query_error("audit_sweep"))?;
        let mut events: u64 = 0;
        for row in &deleted {
            let n: i64 = row.try_get(0).map_err(query_error("audit_sweep"))?;
            events += u64::try_from(n).unwrap_or(0);
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(recorded_ms: i64, patient: Option<&str>, client: Option<&str>) -> AuditRow {
        AuditRow {
            id: 0,
            recorded_ms,
            type_code: "rest".into(),
            subtype: "read".into(),
            action: "R".into(),
            outcome: "0".into(),
            client_id: client.map(str::to_owned),
            user_ref: None,
            patient: patient.map(str::to_owned),
            entity: None,
            ip: None,
            resource: "{}".into(),
        }
    }

    #[test]
    fn chunk_filters_bind_values_and_never_reuse_a_placeholder() {
        let q = AuditQuery {
            from_ms: Some(10),
            to_ms: Some(20),
            entity: vec!["Patient/a".into(), "x' OR 1=1 --".into()],
            outcome: vec!["0".into()],
            after: Some((15, 7)),
            ..AuditQuery::default()
        };
        let lists = query_terms(&q);
        let c = chunk_filters(&q, &lists, true);
        assert_eq!(
            c.where_sql(),
            " WHERE id IN (SELECT chunk FROM audit_terms WHERE term IN ($1, $2, $3, $4)) \
             AND id IN (SELECT chunk FROM audit_terms WHERE term IN ($5)) AND last_ms >= $6 AND first_ms < $7 \
             AND last_ms >= $8"
        );
        assert_eq!(c.params.len(), 8);
        assert!(!c.where_sql().contains("OR 1=1"));
        assert_eq!(
            lists[0],
            ["e:Patient/a", "e:x' OR 1=1 --", "p:Patient/a", "p:x' OR 1=1 --"]
        );
        assert_eq!(chunk_filters(&AuditQuery::default(), &[], true).where_sql(), "");
    }

    #[test]
    fn a_chunk_lists_each_term_once_and_its_body_reads_back_numbered() {
        let rows = vec![
            row(5, Some("Patient/a"), Some("app")),
            row(6, Some("Patient/a"), Some("app")),
            row(7, None, Some("other")),
        ];
        let t = chunk_terms(&rows);
        assert_eq!(
            t.into_iter().collect::<Vec<_>>(),
            ["a:R", "c:app", "c:other", "o:0", "p:Patient/a", "s:read", "t:rest"]
        );
        let back = decode(3, &encode(&rows).unwrap()).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[2].id, (3 << 16) + 2);
        assert_eq!(back[1].patient.as_deref(), Some("Patient/a"));
        assert_eq!(back[2].patient, None);
        assert!(decode(3, "not json").is_err());
    }

    #[test]
    fn events_match_as_the_filters_say() {
        let r = AuditRow {
            entity: Some("Observation/1".into()),
            user_ref: Some("Practitioner/p".into()),
            ..row(10, Some("Patient/a"), Some("app"))
        };
        let q = |f: fn(&mut AuditQuery)| {
            let mut q = AuditQuery::default();
            f(&mut q);
            matches(&q, &r)
        };
        assert!(q(|_| {}));
        assert!(q(|q| q.entity = vec!["Patient/a".into()]));
        assert!(q(|q| q.entity = vec!["Observation/1".into()]));
        assert!(!q(|q| q.patient = vec!["Observation/1".into()]));
        assert!(q(|q| q.agent = vec!["app".into()]));
        assert!(q(|q| q.agent = vec!["Practitioner/p".into()]));
        assert!(q(|q| q.type_code = vec!["read".into()]));
        assert!(!q(|q| q.subtype = vec!["rest".into()]));
        assert!(q(|q| q.from_ms = Some(10)));
        assert!(!q(|q| q.to_ms = Some(10)));
        assert!(!q(|q| q.outcome = vec!["4".into()]));
    }
}
