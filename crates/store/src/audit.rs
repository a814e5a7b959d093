//! The audit trail: `audit_events`, one row per AuditEvent (its JSON, opaque to the store, with the
//! columns it is searched by). Appended in batches, searched with keyset paging, swept after the
//! retention period; never changed (both backends refuse an `UPDATE` with a trigger).
//!
//! Every query is built from fixed SQL text and `$n` placeholders: values are only ever bound.

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

/// The columns a search reads, in the order [`audit_row_of`] reads them.
const SELECT_COLUMNS: &str = "id, recorded_ms, type_code, subtype, action, outcome, client_id, user_ref, patient, \
                              entity, ip, resource";

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

    /// `(c1 IN ($i, …) OR c2 IN ($j, …))`: any of `values` in any of `columns` (fixed names).
    /// Nothing when `values` is empty. Each column gets its own placeholders (none is reused).
    fn any_of(&mut self, columns: &[&str], values: &'a [String]) {
        if values.is_empty() {
            return;
        }
        let mut alternatives = Vec::with_capacity(columns.len());
        for column in columns {
            let list: Vec<String> = values
                .iter()
                .map(|v| self.placeholder(Param::Text(v.as_str())))
                .collect();
            alternatives.push(format!("{column} IN ({})", list.join(", ")));
        }
        self.clauses.push(format!("({})", alternatives.join(" OR ")));
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

/// The conditions of `q`'s filters (not of `after`, `limit` or the order).
fn filters(q: &AuditQuery) -> Conditions<'_> {
    let mut c = Conditions::default();
    if let Some(from) = q.from_ms {
        let p = c.placeholder(Param::Int(from));
        c.clauses.push(format!("recorded_ms >= {p}"));
    }
    if let Some(to) = q.to_ms {
        let p = c.placeholder(Param::Int(to));
        c.clauses.push(format!("recorded_ms < {p}"));
    }
    c.any_of(&["patient"], &q.patient);
    c.any_of(&["entity", "patient"], &q.entity);
    c.any_of(&["user_ref", "client_id"], &q.agent);
    c.any_of(&["type_code", "subtype"], &q.type_code);
    c.any_of(&["subtype"], &q.subtype);
    c.any_of(&["action"], &q.action);
    c.any_of(&["outcome"], &q.outcome);
    c
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

/// `INSERT INTO audit_events (…) VALUES ($1, …, $11), ($12, …), …` for `rows` rows.
/// Rows per batch statement (one JSON parameter each).
const ROWS_PER_BATCH: usize = 2000;

/// The statement appending a JSON array of rows (`[recorded_ms, type_code, …, resource]` each).
fn batch_insert_sql(backend: crate::Backend) -> &'static str {
    match backend {
        crate::Backend::Sqlite => {
            "INSERT INTO audit_events (recorded_ms, type_code, subtype, action, outcome, client_id, user_ref, \
             patient, entity, ip, resource) \
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
             json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
             json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'), \
             json_extract(value, '$[9]'), json_extract(value, '$[10]') FROM json_each($1) ORDER BY key"
        }
        crate::Backend::Postgres => {
            "INSERT INTO audit_events (recorded_ms, type_code, subtype, action, outcome, client_id, user_ref, \
             patient, entity, ip, resource) \
             SELECT (e->>0)::bigint, e->>1, e->>2, e->>3, e->>4, e->>5, e->>6, e->>7, e->>8, e->>9, e->>10 \
             FROM json_array_elements($1::json) WITH ORDINALITY AS t(e, n) ORDER BY n"
        }
    }
}

fn audit_row_of(r: &AnyRow) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        id: r.try_get(0).map_err(query_error("audit_event"))?,
        recorded_ms: r.try_get(1).map_err(query_error("audit_event"))?,
        type_code: r.try_get(2).map_err(query_error("audit_event"))?,
        subtype: r.try_get(3).map_err(query_error("audit_event"))?,
        action: r.try_get(4).map_err(query_error("audit_event"))?,
        outcome: r.try_get(5).map_err(query_error("audit_event"))?,
        client_id: r.try_get(6).map_err(query_error("audit_event"))?,
        user_ref: r.try_get(7).map_err(query_error("audit_event"))?,
        patient: r.try_get(8).map_err(query_error("audit_event"))?,
        entity: r.try_get(9).map_err(query_error("audit_event"))?,
        ip: r.try_get(10).map_err(query_error("audit_event"))?,
        resource: r.try_get(11).map_err(query_error("audit_event"))?,
    })
}

impl Store {
    /// Appends rows in one transaction (all or none). Returns how many were written. The rows'
    /// `id`s are ignored: the store numbers them.
    pub async fn audit_append(&self, rows: &[AuditRow]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        // The whole batch is one parameter, a JSON array of rows that the database unpacks itself
        // (`json_each` / `json_array_elements`): binding 11 values per row costs the writer far
        // more than the database's own JSON parsing.
        let mut tx = self.inner.pool.begin().await.map_err(query_error("audit_append"))?;
        let mut written = 0;
        for chunk in rows.chunks(ROWS_PER_BATCH) {
            let batch: Vec<_> = chunk
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
            let json = serde_json::to_string(&batch).map_err(|e| StoreError::Query {
                operation: "audit_append",
                reason: e.to_string(),
            })?;
            written += sqlx::query(batch_insert_sql(self.inner.backend))
                .bind(json)
                .execute(&mut *tx)
                .await
                .map_err(query_error("audit_append"))?
                .rows_affected();
        }
        // Dropped without a commit (an error above), the transaction is rolled back.
        tx.commit().await.map_err(query_error("audit_append"))?;
        Ok(written)
    }

    /// The rows matching `q`, in its order, after its `after` key, at most its `limit`.
    pub async fn audit_search(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        let mut c = filters(q);
        let (beyond, direction) = if q.newest_first { ("<", "DESC") } else { (">", "ASC") };
        if let Some((recorded_ms, id)) = q.after {
            let later = c.placeholder(Param::Int(recorded_ms));
            let same = c.placeholder(Param::Int(recorded_ms));
            let next = c.placeholder(Param::Int(id));
            c.clauses.push(format!(
                "(recorded_ms {beyond} {later} OR (recorded_ms = {same} AND id {beyond} {next}))"
            ));
        }
        let limit = c.placeholder(Param::Int(i64::from(q.limit.clamp(1, MAX_LIMIT))));
        let sql = format!(
            "SELECT {SELECT_COLUMNS} FROM audit_events{} ORDER BY recorded_ms {direction}, id {direction} \
             LIMIT {limit}",
            c.where_sql()
        );
        let rows = bind_all(sqlx::query(&sql), &c.params)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(query_error("audit_search"))?;
        rows.iter().map(audit_row_of).collect()
    }

    /// How many rows match `q`'s filters (ignores `after` and `limit`).
    pub async fn audit_count(&self, q: &AuditQuery) -> Result<u64, StoreError> {
        let c = filters(q);
        let sql = format!("SELECT COUNT(*) FROM audit_events{}", c.where_sql());
        let row = bind_all(sqlx::query(&sql), &c.params)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(query_error("audit_count"))?;
        let count: i64 = row.try_get(0).map_err(query_error("audit_count"))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The row numbered `id`, if there is one.
    pub async fn audit_get(&self, id: i64) -> Result<Option<AuditRow>, StoreError> {
        let sql = format!("SELECT {SELECT_COLUMNS} FROM audit_events WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(query_error("audit_get"))?;
        row.as_ref().map(audit_row_of).transpose()
    }

    /// Deletes rows recorded before `before_ms` (unix milliseconds: the retention setting);
    /// returns how many.
    pub async fn audit_sweep(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM audit_events WHERE recorded_ms < $1")
            .bind(before_ms)
            .execute(&self.inner.pool)
            .await
            .map_err(query_error("audit_sweep"))?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_one_parameter_on_both_backends() {
        for backend in [crate::Backend::Sqlite, crate::Backend::Postgres] {
            let sql = batch_insert_sql(backend);
            assert!(sql.contains("$1") && !sql.contains("$2"), "{sql}");
        }
    }

    #[test]
    fn filters_bind_values_and_never_reuse_a_placeholder() {
        let q = AuditQuery {
            from_ms: Some(10),
            to_ms: Some(20),
            entity: vec!["Patient/a".into(), "x' OR 1=1 --".into()],
            outcome: vec!["0".into()],
            ..AuditQuery::default()
        };
        let c = filters(&q);
        assert_eq!(
            c.where_sql(),
            " WHERE recorded_ms >= $1 AND recorded_ms < $2 AND (entity IN ($3, $4) OR patient IN ($5, $6)) \
             AND (outcome IN ($7))"
        );
        assert_eq!(c.params.len(), 7);
        assert!(!c.where_sql().contains("OR 1=1"));
        assert_eq!(filters(&AuditQuery::default()).where_sql(), "");
    }
}
