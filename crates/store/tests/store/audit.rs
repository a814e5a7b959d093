//! The audit trail on both backends: appended in batches, searched by every filter and by date,
//! paged by key in both orders, counted, read by number, swept by age, never changed.

use store::{AuditQuery, AuditRow, Store};

use super::on_both;

/// 2023-11-14, in unix milliseconds.
const T: i64 = 1_700_000_000_000;

fn event(recorded_ms: i64, type_code: &str, subtype: &str, action: &str, outcome: &str) -> AuditRow {
    AuditRow {
        id: 0,
        recorded_ms,
        type_code: type_code.to_owned(),
        subtype: subtype.to_owned(),
        action: action.to_owned(),
        outcome: outcome.to_owned(),
        client_id: None,
        user_ref: None,
        patient: None,
        entity: None,
        ip: None,
        resource: format!(r#"{{"resourceType":"AuditEvent","recorded":{recorded_ms},"subtype":"{subtype}"}}"#),
    }
}

fn some(text: &str) -> Option<String> {
    Some(text.to_owned())
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// A search of everything, 100 rows at most.
fn all() -> AuditQuery {
    AuditQuery {
        limit: 100,
        ..AuditQuery::default()
    }
}

/// A search of everything with one filter set to `values`.
fn by(filter: fn(&mut AuditQuery, Vec<String>), values: &[&str]) -> AuditQuery {
    let mut q = all();
    filter(&mut q, strings(values));
    q
}

/// The numbers of the rows `q` finds.
async fn found(store: &Store, q: AuditQuery) -> Vec<i64> {
    store
        .audit_search(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// Every page of `q` (of `q.limit` rows), each after the last row of the one before; the numbers
/// of the rows in the order they came.
async fn paged(store: &Store, mut q: AuditQuery) -> Vec<i64> {
    let mut ids = Vec::new();
    for _ in 0..1000 {
        let page = store.audit_search(&q).await.unwrap();
        assert!(page.len() <= q.limit as usize);
        let Some(last) = page.last() else { return ids };
        q.after = Some((last.recorded_ms, last.id));
        ids.extend(page.iter().map(|r| r.id));
    }
    panic!("paging did not end");
}

#[tokio::test]
async fn audit_events_are_appended_searched_paged_and_swept_never_changed() {
    on_both("audit", None, |store| async move {
        let written = vec![
            AuditRow {
                client_id: some("app-1"),
                patient: some("Patient/a"),
                entity: some("Patient/a"),
                ip: some("10.0.0.1"),
                ..event(T, "rest", "read", "R", "0")
            },
            AuditRow {
                client_id: some("app-1"),
                user_ref: some("Practitioner/p1"),
                patient: some("Patient/b"),
                ..event(T + 1000, "rest", "search-type", "E", "0")
            },
            AuditRow {
                client_id: some("app-2"),
                entity: some("Observation/o1"),
                ..event(T + 2000, "rest", "update", "U", "4")
            },
            // The same millisecond as the one before: ordered by number.
            AuditRow {
                user_ref: some("Practitioner/p1"),
                ..event(T + 2000, "login", "login", "E", "0")
            },
            AuditRow {
                id: 12345, // ignored: the store numbers the rows
                client_id: some("app-2"),
                patient: some("Patient/a"),
                entity: some("Observation/o2"),
                ..event(T + 3000, "rest", "read", "R", "8")
            },
        ];
        assert_eq!(store.audit_append(&[]).await.unwrap(), 0);
        assert_eq!(store.audit_append(&written).await.unwrap(), 5);

        // Everything, oldest first: as written (absent values read back absent), numbered upwards.
        let rows = store.audit_search(&all()).await.unwrap();
        assert_eq!(rows.len(), 5, "{:?}", store.backend());
        for (row, original) in rows.iter().zip(&written) {
            assert_eq!(
                *row,
                AuditRow {
                    id: row.id,
                    ..original.clone()
                }
            );
        }
        let id: Vec<i64> = rows.iter().map(|r| r.id).collect();
        assert!(id.windows(2).all(|w| w[0] < w[1]), "{id:?}");
        let pick = |which: &[usize]| which.iter().map(|&i| id[i]).collect::<Vec<i64>>();
        assert_eq!(rows[3].client_id, None);
        assert_eq!(rows[3].ip, None);

        // Newest first.
        let newest = AuditQuery {
            newest_first: true,
            ..all()
        };
        assert_eq!(found(&store, newest.clone()).await, pick(&[4, 3, 2, 1, 0]));

        // Each filter; the values inside one are alternatives.
        assert_eq!(
            found(&store, by(|q, v| q.patient = v, &["Patient/a"])).await,
            pick(&[0, 4])
        );
        assert_eq!(
            found(&store, by(|q, v| q.patient = v, &["Patient/a", "Patient/b"])).await,
            pick(&[0, 1, 4])
        );
        assert_eq!(
            found(&store, by(|q, v| q.patient = v, &["Patient/z"])).await,
            Vec::<i64>::new()
        );
        // entity: the entity or the patient.
        assert_eq!(
            found(&store, by(|q, v| q.entity = v, &["Observation/o1"])).await,
            pick(&[2])
        );
        assert_eq!(found(&store, by(|q, v| q.entity = v, &["Patient/b"])).await, pick(&[1]));
        assert_eq!(
            found(&store, by(|q, v| q.entity = v, &["Patient/a"])).await,
            pick(&[0, 4])
        );
        // agent: the user or the client.
        assert_eq!(
            found(&store, by(|q, v| q.agent = v, &["Practitioner/p1"])).await,
            pick(&[1, 3])
        );
        assert_eq!(found(&store, by(|q, v| q.agent = v, &["app-2"])).await, pick(&[2, 4]));
        assert_eq!(
            found(&store, by(|q, v| q.agent = v, &["app-1", "Practitioner/p1"])).await,
            pick(&[0, 1, 3])
        );
        // type: the type or the subtype.
        assert_eq!(found(&store, by(|q, v| q.type_code = v, &["login"])).await, pick(&[3]));
        assert_eq!(
            found(&store, by(|q, v| q.type_code = v, &["read"])).await,
            pick(&[0, 4])
        );
        assert_eq!(
            found(&store, by(|q, v| q.type_code = v, &["rest"])).await,
            pick(&[0, 1, 2, 4])
        );
        assert_eq!(
            found(&store, by(|q, v| q.subtype = v, &["update", "search-type"])).await,
            pick(&[1, 2])
        );
        assert_eq!(
            found(&store, by(|q, v| q.subtype = v, &["rest"])).await,
            Vec::<i64>::new()
        );
        assert_eq!(found(&store, by(|q, v| q.action = v, &["E"])).await, pick(&[1, 3]));
        assert_eq!(
            found(&store, by(|q, v| q.outcome = v, &["4", "8"])).await,
            pick(&[2, 4])
        );
        // A value is bound, never read as SQL.
        assert_eq!(
            found(&store, by(|q, v| q.outcome = v, &["0') OR ('1' = '1"])).await,
            Vec::<i64>::new()
        );
        // Filters together must all match.
        let rest_ok = AuditQuery {
            type_code: strings(&["rest"]),
            outcome: strings(&["0"]),
            ..all()
        };
        assert_eq!(found(&store, rest_ok).await, pick(&[0, 1]));
        let narrow = AuditQuery {
            patient: strings(&["Patient/a"]),
            action: strings(&["R"]),
            outcome: strings(&["8"]),
            ..all()
        };
        assert_eq!(found(&store, narrow).await, pick(&[4]));

        // Dates: from inclusive, to exclusive.
        let range = |from_ms: Option<i64>, to_ms: Option<i64>| AuditQuery {
            from_ms,
            to_ms,
            ..all()
        };
        assert_eq!(
            found(&store, range(Some(T + 1000), Some(T + 3000))).await,
            pick(&[1, 2, 3])
        );
        assert_eq!(found(&store, range(Some(T + 2000), None)).await, pick(&[2, 3, 4]));
        assert_eq!(found(&store, range(None, Some(T + 2000))).await, pick(&[0, 1]));
        assert_eq!(
            found(&store, range(Some(T + 2000), Some(T + 2000))).await,
            Vec::<i64>::new()
        );
        let newest_in_range = AuditQuery {
            newest_first: true,
            ..range(Some(T + 1000), Some(T + 3000))
        };
        assert_eq!(found(&store, newest_in_range).await, pick(&[3, 2, 1]));

        // Keyset paging: every row once, in order, in both orders and with filters.
        let by_two = AuditQuery { limit: 2, ..all() };
        let first = found(&store, by_two.clone()).await;
        assert_eq!(first, pick(&[0, 1]));
        let second = AuditQuery {
            after: Some((T + 1000, id[1])),
            ..by_two.clone()
        };
        assert_eq!(found(&store, second).await, pick(&[2, 3]));
        // Past a row sharing its millisecond with the next: the next still comes.
        let between = AuditQuery {
            after: Some((T + 2000, id[2])),
            ..by_two.clone()
        };
        assert_eq!(found(&store, between).await, pick(&[3, 4]));
        assert_eq!(paged(&store, by_two.clone()).await, pick(&[0, 1, 2, 3, 4]));
        for limit in [1, 3, 5] {
            let q = AuditQuery { limit, ..all() };
            assert_eq!(paged(&store, q).await, pick(&[0, 1, 2, 3, 4]), "limit {limit}");
            let q = AuditQuery {
                limit,
                ..newest.clone()
            };
            assert_eq!(paged(&store, q).await, pick(&[4, 3, 2, 1, 0]), "limit {limit}");
        }
        let back_from_3 = AuditQuery {
            after: Some((T + 2000, id[3])),
            limit: 2,
            ..newest.clone()
        };
        assert_eq!(found(&store, back_from_3).await, pick(&[2, 1]));
        let agents = AuditQuery {
            agent: strings(&["app-2", "Practitioner/p1"]),
            limit: 1,
            ..all()
        };
        assert_eq!(paged(&store, agents.clone()).await, pick(&[1, 2, 3, 4]));
        let agents_newest = AuditQuery {
            newest_first: true,
            ..agents.clone()
        };
        assert_eq!(paged(&store, agents_newest).await, pick(&[4, 3, 2, 1]));
        // A limit of 0 is 1.
        let zero = AuditQuery { limit: 0, ..all() };
        assert_eq!(found(&store, zero).await, pick(&[0]));

        // Counts ignore paging.
        assert_eq!(store.audit_count(&AuditQuery::default()).await.unwrap(), 5);
        let paging = AuditQuery {
            after: Some((T + 2000, id[2])),
            limit: 1,
            ..all()
        };
        assert_eq!(store.audit_count(&paging).await.unwrap(), 5);
        assert_eq!(store.audit_count(&agents).await.unwrap(), 4);
        assert_eq!(store.audit_count(&range(Some(T + 2000), None)).await.unwrap(), 3);
        assert_eq!(
            store
                .audit_count(&by(|q, v| q.patient = v, &["Patient/z"]))
                .await
                .unwrap(),
            0
        );

        // By number.
        assert_eq!(store.audit_get(id[3]).await.unwrap().as_ref(), Some(&rows[3]));
        assert_eq!(store.audit_get(id[4]).await.unwrap().as_ref(), Some(&rows[4]));
        assert_eq!(store.audit_get(-1).await.unwrap(), None);

        // A batch larger than one statement: all written, in order.
        let batch: Vec<AuditRow> = (0..250)
            .map(|i| AuditRow {
                client_id: some("bulk"),
                ..event(T + 10_000 + i, "rest", "vread", "R", "0")
            })
            .collect();
        assert_eq!(store.audit_append(&batch).await.unwrap(), 250);
        let bulk = AuditQuery {
            agent: strings(&["bulk"]),
            limit: 1000,
            ..AuditQuery::default()
        };
        let stored = store.audit_search(&bulk).await.unwrap();
        assert_eq!(stored.len(), 250);
        assert!(
            stored
                .iter()
                .zip(&batch)
                .all(|(s, b)| s.recorded_ms == b.recorded_ms && s.resource == b.resource)
        );
        assert_eq!(store.audit_count(&bulk).await.unwrap(), 250);
        let by_ninety = AuditQuery {
            limit: 90,
            ..bulk.clone()
        };
        let ids: Vec<i64> = stored.iter().map(|r| r.id).collect();
        assert_eq!(paged(&store, by_ninety).await, ids);

        // Never changed, whoever tries.
        for sql in [
            "UPDATE audit_chunks SET body = '[]'".to_owned(),
            format!("UPDATE audit_chunks SET first_ms = 0 WHERE id = {}", id[0] >> 16),
            "UPDATE audit_terms SET term = 'p:Patient/z'".to_owned(),
        ] {
            let refused = store.execute_raw(&sql).await.unwrap_err();
            assert!(refused.to_string().contains("append-only"), "{sql}: {refused}");
        }
        assert_eq!(store.audit_get(id[0]).await.unwrap().as_ref(), Some(&rows[0]));
        assert_eq!(store.audit_get(id[0] + 5).await.unwrap(), None, "past the chunk's end");
        assert_eq!(store.audit_count(&rest_ok_count()).await.unwrap(), 252);

        // Swept by age, a chunk (one append) at a time: only once all its events are older than
        // the retention.
        assert_eq!(
            store.audit_sweep(T + 2000).await.unwrap(),
            0,
            "T + 3000 is in the chunk"
        );
        assert_eq!(store.audit_get(id[1]).await.unwrap().as_ref(), Some(&rows[1]));
        assert_eq!(store.audit_sweep(T + 3001).await.unwrap(), 5);
        assert_eq!(store.audit_sweep(T + 3001).await.unwrap(), 0);
        assert_eq!(store.audit_get(id[1]).await.unwrap(), None);
        let left = AuditQuery {
            to_ms: Some(T + 10_000),
            ..all()
        };
        assert_eq!(found(&store, left).await, Vec::<i64>::new());
        assert_eq!(
            found(&store, by(|q, v| q.patient = v, &["Patient/a"])).await,
            Vec::<i64>::new()
        );
        assert_eq!(store.audit_count(&AuditQuery::default()).await.unwrap(), 250);
        assert_eq!(store.audit_sweep(T + 10_000 + 250).await.unwrap(), 250);
        assert_eq!(store.audit_count(&AuditQuery::default()).await.unwrap(), 0);
    })
    .await;
}

/// Rows of the type `rest` with the outcome `0` (two of the five, and the 250 of the batch).
fn rest_ok_count() -> AuditQuery {
    AuditQuery {
        type_code: strings(&["rest"]),
        outcome: strings(&["0"]),
        ..AuditQuery::default()
    }
}

/// Appends from several writers (replicas) overlap in time: events still come in order of time,
/// every one once, on every page size and in both orders; counts read across the range's ends.
#[tokio::test]
async fn overlapping_appends_are_merged_in_order_of_time() {
    on_both("audit_overlap", None, |store| async move {
        let at = |ms: &[i64], patient: &str| -> Vec<AuditRow> {
            ms.iter()
                .map(|m| AuditRow {
                    patient: some(patient),
                    ..event(T + m, "rest", "read", "R", "0")
                })
                .collect()
        };
        for chunk in [
            at(&[0, 10, 20, 30], "Patient/a"),
            at(&[5, 15, 25], "Patient/b"),
            at(&[12, 13, 13], "Patient/a"),
            at(&[40], "Patient/b"),
        ] {
            assert_eq!(store.audit_append(&chunk).await.unwrap(), chunk.len() as u64);
        }
        let everything = store.audit_search(&all()).await.unwrap();
        let times: Vec<i64> = everything.iter().map(|r| r.recorded_ms - T).collect();
        assert_eq!(times, [0, 5, 10, 12, 13, 13, 15, 20, 25, 30, 40]);
        let keys: Vec<(i64, i64)> = everything.iter().map(|r| (r.recorded_ms, r.id)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        let ids: Vec<i64> = everything.iter().map(|r| r.id).collect();
        let reversed: Vec<i64> = ids.iter().rev().copied().collect();
        for limit in 1..=4 {
            assert_eq!(paged(&store, AuditQuery { limit, ..all() }).await, ids, "limit {limit}");
            let newest = AuditQuery {
                limit,
                newest_first: true,
                ..all()
            };
            assert_eq!(paged(&store, newest).await, reversed, "limit {limit}");
        }
        let a: Vec<i64> = everything
            .iter()
            .filter(|r| r.patient.as_deref() == Some("Patient/a"))
            .map(|r| r.id)
            .collect();
        let only_a = by(|q, v| q.patient = v, &["Patient/a"]);
        assert_eq!(
            paged(
                &store,
                AuditQuery {
                    limit: 2,
                    ..only_a.clone()
                }
            )
            .await,
            a
        );
        assert_eq!(store.audit_count(&only_a).await.unwrap(), 7);
        let range = AuditQuery {
            from_ms: Some(T + 10),
            to_ms: Some(T + 26),
            ..all()
        };
        assert_eq!(store.audit_count(&range).await.unwrap(), 7);
        assert_eq!(
            store
                .audit_count(&AuditQuery {
                    to_ms: Some(T + 40),
                    ..all()
                })
                .await
                .unwrap(),
            10
        );
        assert_eq!(store.audit_count(&AuditQuery::default()).await.unwrap(), 11);
        assert_eq!(found(&store, range).await.len(), 7);
    })
    .await;
}
