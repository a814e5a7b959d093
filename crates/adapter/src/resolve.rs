//! Cross-source references: an adapter that points at another source's resources (a Zoom note's
//! EHR patient) asks the gateway whether the target exists, without depending on that adapter.
//!
//! A missing resource and a failing source are different answers: `Ok(false)` / `Ok(None)` mean
//! the resource is not there (not found, deleted, or no source serves that id), `Err` means its
//! source could not answer right now. A caller must not treat a failure as "missing" (that would
//! silently unlink or drop what it maps); it either keeps what the vendor said or fails itself.

use std::collections::HashSet;

use futures::StreamExt;

use crate::{AdapterError, Resource, ResourceType, SearchRequest};

/// Answers whether a gateway resource exists (`Patient`, `drchrono-123`) and reads it.
#[async_trait::async_trait]
pub trait Resolver: Send + Sync {
    /// `Ok(true)` when the resource can be read; `Ok(false)` when it is missing or deleted, or no
    /// source serves that id (an unknown source, a malformed id); `Err` when its source is failing
    /// (unavailable, timing out, rate limited, answering what cannot be mapped). A failure is not
    /// remembered: the next question asks the source again.
    async fn exists(&self, resource_type: ResourceType, id: &str) -> Result<bool, AdapterError>;

    /// The resource: `Ok(Some)` when it can be read, `Ok(None)` when it is missing or deleted or no
    /// source serves that id, `Err` when its source is failing. Adapters use it to follow another
    /// source's facts (Noa's episode is a DrChrono appointment; its patient is the session's
    /// subject). The default reads nothing.
    async fn read(&self, resource_type: ResourceType, id: &str) -> Result<Option<Resource>, AdapterError> {
        let _ = (resource_type, id);
        Ok(None)
    }

    /// Everything a search of `request` at the source named `source` finds, every page, when that
    /// is at most `max` resources: `Ok(None)` when the source does not search that type, or finds
    /// more (the caller then asks one at a time), `Err` when it fails. An adapter confirms many
    /// facts with it in one vendor call (a patient's appointments: 250 to a DrChrono page) rather
    /// than with a read each. The default searches nothing.
    async fn search(
        &self,
        source: &str,
        request: &SearchRequest,
        max: usize,
    ) -> Result<Option<Vec<Resource>>, AdapterError> {
        let _ = (source, request, max);
        Ok(None)
    }
}

/// How many references [`linkable`] checks at once.
const CONCURRENT_CHECKS: usize = 8;

/// Which of the `Type/id` references (duplicates allowed) may be written as literal links: asks
/// the resolver, concurrently and once per reference. A reference whose source fails to answer is
/// kept literal — the vendor named that id, only the check could not be made (a logical reference
/// would silently take the resource out of the gateway's `patient=` searches); one that is missing
/// or malformed is not.
///
/// Many references of one type at one source ([`BULK_MIN`] or more) are first confirmed together
/// by listing that type there ([`Resolver::search`], every page, as long as that is no more than
/// [`BULK_PER_REFERENCE`] resources a reference): a DrChrono list page holds 250 records where a
/// read confirms one. Practitioners and locations (a practice's doctors and offices, a short list)
/// are always listed. What a list does not hold is still asked one by one.
pub async fn linkable(resolver: &dyn Resolver, mut references: Vec<String>) -> HashSet<String> {
    references.sort();
    references.dedup();
    let mut linked = HashSet::new();
    let mut groups: std::collections::BTreeMap<(ResourceType, String), Vec<String>> = Default::default();
    for reference in &references {
        if let Some((type_name, id)) = reference.split_once('/')
            && let Ok(resource_type) = type_name.parse::<ResourceType>()
            && let Ok(fid) = crate::FhirId::parse(id)
        {
            groups
                .entry((resource_type, fid.source().to_owned()))
                .or_default()
                .push(reference.clone());
        }
    }
    // A practice has a handful of doctors and offices: one list (cached) costs what one read does.
    // Appointments are never listed whole: a practice's grow without end (every visit ever), so
    // the list outgrows any bound and its pages are spent for nothing; they are confirmed per
    // patient ([`linkable_for_patients`]) or one by one (cached reads).
    let listed_here = |resource_type: ResourceType, n: usize| match resource_type {
        ResourceType::Practitioner | ResourceType::Location => Some(SHORT_LIST),
        ResourceType::Appointment => None,
        _ => (n >= BULK_MIN).then_some(n * BULK_PER_REFERENCE),
    };
    // Not `Type/source-id` at all: asked (and refused) one by one like the rest.
    let mut read_now: Vec<String> = references
        .iter()
        .filter(|r| !groups.values().any(|g| g.contains(r)))
        .cloned()
        .collect();
    let mut to_list = Vec::new();
    for ((resource_type, source), group) in groups {
        match listed_here(resource_type, group.len()) {
            Some(most) => to_list.push((resource_type, source, group, most)),
            None => read_now.extend(group),
        }
    }
    let grouped: HashSet<&String> = to_list.iter().flat_map(|(_, _, group, _)| group).collect();
    // The lists and the other reads run at once; what the lists do not hold is read after.
    let lists = to_list.iter().map(|(resource_type, source, group, most)| async move {
        let request = SearchRequest {
            resource_type: Some(*resource_type),
            params: Vec::new(),
        };
        let listed = match resolver.search(source, &request, *most).await {
            Ok(Some(resources)) => resources,
            // Too many to list, or no list: one by one after.
            Ok(None) => return Vec::new(),
            Err(error) => {
                tracing::debug!(%resource_type, transient = error.is_transient(), "a list to confirm references failed; asking one by one");
                return Vec::new();
            }
        };
        let listed: HashSet<String> = listed
            .iter()
            .filter_map(resource_id)
            .map(|id| format!("{resource_type}/{id}"))
            .collect();
        group.iter().filter(|r| listed.contains(*r)).cloned().collect::<Vec<String>>()
    });
    let (confirmed, asked) = futures::join!(futures::future::join_all(lists), ask(resolver, read_now));
    linked.extend(asked);
    linked.extend(confirmed.into_iter().flatten());
    let left: Vec<String> = grouped.into_iter().filter(|r| !linked.contains(*r)).cloned().collect();
    linked.extend(ask(resolver, left).await);
    linked
}

/// Asks the resolver about each reference, concurrently.
async fn ask(resolver: &dyn Resolver, references: Vec<String>) -> HashSet<String> {
    futures::stream::iter(references)
        .map(|reference| async move {
            let (type_name, id) = reference.split_once('/')?;
            let resource_type: ResourceType = type_name.parse().ok()?;
            match resolver.exists(resource_type, id).await {
                Ok(found) => found.then_some(reference),
                Err(error) => {
                    tracing::debug!(
                        %resource_type,
                        transient = error.is_transient(),
                        "an EHR reference could not be checked; kept literal"
                    );
                    Some(reference)
                }
            }
        })
        .buffer_unordered(CONCURRENT_CHECKS)
        .filter_map(|found| async move { found })
        .collect()
        .await
}

/// [`linkable`] for the records of a search by patient: the appointments of `patients` (gateway
/// references, `Patient/drchrono-1`) are first listed at their source — one search each, shared
/// through the gateway's cache with every adapter asking the same — which confirms the
/// appointments among `references` and each patient that has one; the rest goes to [`linkable`].
/// Without appointment references, or for more than [`PATIENTS_LISTED`] patients, it is
/// [`linkable`] alone.
pub async fn linkable_for_patients(
    resolver: &dyn Resolver,
    patients: &[String],
    mut references: Vec<String>,
) -> HashSet<String> {
    let appointments = references.iter().filter(|r| r.starts_with("Appointment/")).count();
    let mut linked = HashSet::new();
    if appointments > 0 && patients.len() <= PATIENTS_LISTED {
        let searches = patients.iter().map(|patient| async move {
            let id = patient.strip_prefix("Patient/")?;
            let fid = crate::FhirId::parse(id).ok()?;
            let request = SearchRequest {
                resource_type: Some(ResourceType::Appointment),
                params: vec![crate::search::SearchParam {
                    name: "patient".into(),
                    modifier: None,
                    values: vec![crate::search::SearchValue::Reference(crate::search::ReferenceValue {
                        resource_type: Some(ResourceType::Patient),
                        id: id.to_owned(),
                    })],
                }],
            };
            let found = resolver
                .search(fid.source(), &request, PATIENT_APPOINTMENTS)
                .await
                .ok()
                .flatten()?;
            let mut confirmed: Vec<String> = found
                .iter()
                .filter_map(resource_id)
                .map(|id| format!("Appointment/{id}"))
                .collect();
            if !found.is_empty() {
                confirmed.push(patient.clone());
            }
            Some(confirmed)
        });
        linked.extend(
            futures::future::join_all(searches)
                .await
                .into_iter()
                .flatten()
                .flatten(),
        );
    }
    linked.retain(|r| references.contains(r));
    references.retain(|r| !linked.contains(r));
    linked.extend(linkable(resolver, references).await);
    linked
}

/// The most patients [`linkable_for_patients`] lists the appointments of.
pub const PATIENTS_LISTED: usize = 3;

/// The most appointments of one patient [`linkable_for_patients`] takes in bulk.
pub const PATIENT_APPOINTMENTS: usize = 1000;

/// How many references of one type at one source [`linkable`] confirms with a list.
pub const BULK_MIN: usize = 4;

/// The most practitioners or locations a confirming list may hold.
pub const SHORT_LIST: usize = 500;

/// The most resources a confirming list may hold per reference it confirms.
pub const BULK_PER_REFERENCE: usize = 100;

/// The id of a resource of the kinds other sources link to.
fn resource_id(resource: &Resource) -> Option<&str> {
    let id = match resource {
        Resource::Patient(r) => r.id.as_ref(),
        Resource::Practitioner(r) => r.id.as_ref(),
        Resource::Appointment(r) => r.id.as_ref(),
        Resource::Location(r) => r.id.as_ref(),
        Resource::Encounter(r) => r.id.as_ref(),
        _ => None,
    };
    id.and_then(|id| id.value.as_deref())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::fhir::resources::Patient;
    use crate::fhir::types::Id;

    /// Knows the patients `drchrono-1` … `drchrono-5` and `drchrono-9` (which its list leaves out,
    /// as a list may leave out inactive records); lists when `lists`; records what it was asked.
    struct Practice {
        lists: Result<bool, ()>,
        asked: Mutex<Vec<String>>,
        searched: Mutex<usize>,
    }

    impl Practice {
        fn new(lists: Result<bool, ()>) -> Self {
            Self {
                lists,
                asked: Mutex::new(Vec::new()),
                searched: Mutex::new(0),
            }
        }
    }

    fn patient(id: &str) -> Resource {
        Resource::Patient(Box::new(Patient {
            id: Some(Id {
                value: Some(id.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    #[async_trait::async_trait]
    impl Resolver for Practice {
        async fn exists(&self, resource_type: ResourceType, id: &str) -> Result<bool, AdapterError> {
            self.asked.lock().unwrap().push(format!("{resource_type}/{id}"));
            Ok([
                "drchrono-1",
                "drchrono-2",
                "drchrono-3",
                "drchrono-4",
                "drchrono-5",
                "drchrono-9",
            ]
            .contains(&id))
        }

        async fn search(
            &self,
            source: &str,
            request: &SearchRequest,
            max: usize,
        ) -> Result<Option<Vec<Resource>>, AdapterError> {
            assert_eq!(
                (source, request.resource_type),
                ("drchrono", Some(ResourceType::Patient))
            );
            assert!(max >= BULK_MIN * BULK_PER_REFERENCE);
            *self.searched.lock().unwrap() += 1;
            match self.lists {
                Ok(true) => Ok(Some((1..=5).map(|n| patient(&format!("drchrono-{n}"))).collect())),
                Ok(false) => Ok(None),
                Err(()) => Err(AdapterError::Unavailable {
                    vendor: "drchrono",
                    detail: "down".into(),
                }),
            }
        }
    }

    fn references(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| format!("Patient/{id}")).collect()
    }

    #[tokio::test]
    async fn many_references_of_one_type_are_confirmed_by_one_list() {
        let wanted = references(&[
            "drchrono-1",
            "drchrono-2",
            "drchrono-3",
            "drchrono-4",
            "drchrono-9",
            "drchrono-404",
        ]);
        let expected: HashSet<String> =
            references(&["drchrono-1", "drchrono-2", "drchrono-3", "drchrono-4", "drchrono-9"])
                .into_iter()
                .collect();
        let practice = Practice::new(Ok(true));
        assert_eq!(linkable(&practice, wanted.clone()).await, expected);
        assert_eq!(*practice.searched.lock().unwrap(), 1);
        // Only what the list did not hold is asked one by one.
        let mut asked = practice.asked.lock().unwrap().clone();
        asked.sort();
        assert_eq!(asked, references(&["drchrono-404", "drchrono-9"]));

        // No list (too many, or none), or a failing one: every reference asked, the same answer.
        for lists in [Ok(false), Err(())] {
            let practice = Practice::new(lists);
            assert_eq!(linkable(&practice, wanted.clone()).await, expected);
            assert_eq!(practice.asked.lock().unwrap().len(), 6);
        }

        // A few references are read one by one, without a list.
        let practice = Practice::new(Ok(true));
        let few = references(&["drchrono-1", "drchrono-2", "drchrono-2"]);
        assert_eq!(linkable(&practice, few).await.len(), 2);
        assert_eq!(*practice.searched.lock().unwrap(), 0);
        assert_eq!(practice.asked.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn appointments_are_never_listed_whole() {
        // A practice's appointments outgrow any list bound: each is asked (a cached read).
        let practice = Practice::new(Ok(true));
        let wanted: Vec<String> = (1..=6).map(|n| format!("Appointment/drchrono-{n}")).collect();
        let linked = linkable(&practice, wanted).await;
        assert_eq!(*practice.searched.lock().unwrap(), 0);
        assert_eq!(practice.asked.lock().unwrap().len(), 6);
        assert_eq!(linked.len(), 5);
    }
}
