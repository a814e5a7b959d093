//! A resource as the gateway serves it: its FHIR JSON parsed once, and the compact bytes, `ETag`
//! and `Last-Modified` of it computed once.
//!
//! The cache keeps [`Doc`]s, so a hit hands the engine a shared pointer: the search is evaluated and
//! the access policy consulted on [`Doc::json`], and when the caller receives the resource as the
//! vendor gave it (no `_summary`, `_elements` or redaction), its [`Doc::bytes`] are written
//! unchanged — into a read's body, or between the entries of a Bundle.

use std::sync::Arc;

use adapter::{AdapterError, Continuation, Page, Resource, ResourceType, SourceName};
use axum::http::HeaderValue;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::conditional::{LastModified, etag_header, weak_etag};

/// One resource's FHIR JSON, its compact serialisation and what is derived from it.
#[derive(Debug)]
pub struct Doc {
    json: Value,
    bytes: Bytes,
    etag: HeaderValue,
    resource_type: Option<ResourceType>,
    last_modified: Option<LastModified>,
    /// It carries a provider-only extension (which patient-facing callers never receive).
    provider_only: bool,
    /// What it holds in memory, estimated: the bytes, the JSON tree and the tag.
    weight: u64,
}

impl Doc {
    /// Serialises a fhirbolt resource (an adapter's answer) once.
    pub fn from_resource(resource: Resource, source: SourceName) -> Result<Arc<Self>, AdapterError> {
        let json = fhirbolt::json::to_json_value(resource, None).map_err(|_| AdapterError::Unmappable {
            vendor: source,
            detail: "a resource could not be serialised".into(),
        })?;
        Ok(Arc::new(Self::from_json(json)))
    }

    /// Wraps FHIR JSON the gateway built itself.
    pub fn from_json(json: Value) -> Self {
        let bytes = Bytes::from(serde_json::to_vec(&json).unwrap_or_default());
        let etag = etag_header(&weak_etag(&bytes));
        let resource_type = json
            .get("resourceType")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<ResourceType>().ok());
        let last_modified = last_updated(&json).map(LastModified::new);
        let provider_only = has_provider_only(&json);
        let weight = bytes.len() as u64 + tree_weight(&json) + 2 * 64 + std::mem::size_of::<Self>() as u64;
        Self {
            json,
            bytes,
            etag,
            resource_type,
            last_modified,
            provider_only,
            weight,
        }
    }

    /// The FHIR JSON.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// The compact FHIR JSON, exactly as a client receives it when nothing is removed.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The weak `ETag` of [`Self::bytes`].
    pub fn etag(&self) -> &HeaderValue {
        &self.etag
    }

    pub fn resource_type(&self) -> Option<ResourceType> {
        self.resource_type
    }

    pub fn id(&self) -> Option<&str> {
        self.json.get("id").and_then(Value::as_str)
    }

    /// `meta.lastUpdated`, when the resource has one.
    pub fn last_modified(&self) -> Option<&LastModified> {
        self.last_modified.as_ref()
    }

    /// True when it carries a provider-only extension anywhere.
    pub fn provider_only(&self) -> bool {
        self.provider_only
    }

    /// Its estimated size in memory, in bytes (what a cache entry weighs).
    pub fn weight(&self) -> u64 {
        self.weight
    }

    /// The fhirbolt resource again (for callers of the adapter contract, which speaks fhirbolt).
    pub fn to_resource(&self, source: SourceName) -> Result<Resource, AdapterError> {
        fhirbolt::json::from_slice(&self.bytes, None).map_err(|_| AdapterError::Unmappable {
            vendor: source,
            detail: "a cached resource could not be read back".into(),
        })
    }
}

/// One vendor page of a search, as documents.
#[derive(Debug, Clone, Default)]
pub struct DocPage {
    pub docs: Vec<Arc<Doc>>,
    /// Where the next vendor page starts, `None` at the end.
    pub next: Option<Continuation>,
}

impl DocPage {
    /// Serialises an adapter's page once.
    pub fn from_page(page: Page, source: SourceName) -> Result<Self, AdapterError> {
        let docs = page
            .resources
            .into_iter()
            .map(|r| Doc::from_resource(r, source))
            .collect::<Result<_, _>>()?;
        Ok(Self { docs, next: page.next })
    }

    /// The adapter contract's page again (fhirbolt resources).
    pub fn to_page(&self, source: SourceName) -> Result<Page, AdapterError> {
        Ok(Page {
            resources: self
                .docs
                .iter()
                .map(|d| d.to_resource(source))
                .collect::<Result<_, _>>()?,
            next: self.next.clone(),
        })
    }
}

/// What one resource the engine hands to a handler is: shared with the cache as the vendor gave it,
/// or a copy of its own (redacted for a patient-facing caller).
#[derive(Debug, Clone)]
pub enum Served {
    Shared(Arc<Doc>),
    Owned(Value),
}

impl Served {
    pub fn json(&self) -> &Value {
        match self {
            Self::Shared(doc) => doc.json(),
            Self::Owned(json) => json,
        }
    }

    /// The FHIR JSON, copied out of the cache when shared.
    pub fn into_json(self) -> Value {
        match self {
            Self::Shared(doc) => doc.json().clone(),
            Self::Owned(json) => json,
        }
    }

    /// The document when the caller receives it unchanged.
    pub fn doc(&self) -> Option<&Arc<Doc>> {
        match self {
            Self::Shared(doc) => Some(doc),
            Self::Owned(_) => None,
        }
    }
}

/// A resource's `meta.lastUpdated`, when it has one that parses.
pub fn last_updated(json: &Value) -> Option<DateTime<Utc>> {
    json.pointer("/meta/lastUpdated")
        .and_then(Value::as_str)
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map(|v| v.with_timezone(&Utc))
}

/// True when `value` holds one of [`adapter::systems::PROVIDER_ONLY_EXTENSIONS`] at any depth.
fn has_provider_only(value: &Value) -> bool {
    match value {
        Value::Object(map) => {
            let here = ["extension", "modifierExtension"].iter().any(|key| {
                map.get(*key).and_then(Value::as_array).is_some_and(|items| {
                    items.iter().any(|e| {
                        e.get("url")
                            .and_then(Value::as_str)
                            .is_some_and(|u| adapter::systems::PROVIDER_ONLY_EXTENSIONS.contains(&u))
                    })
                })
            });
            here || map.values().any(has_provider_only)
        }
        Value::Array(items) => items.iter().any(has_provider_only),
        _ => false,
    }
}

/// The heap a JSON tree holds, estimated: a node each, plus strings and keys, plus map and array
/// overhead.
fn tree_weight(value: &Value) -> u64 {
    const NODE: u64 = std::mem::size_of::<Value>() as u64;
    match value {
        Value::String(s) => NODE + s.len() as u64,
        Value::Array(items) => NODE + items.iter().map(tree_weight).sum::<u64>(),
        // A map entry: the key's String and its allocation, the value, and the tree's node share.
        Value::Object(map) => {
            NODE + map
                .iter()
                .map(|(k, v)| 24 + k.len() as u64 + 16 + tree_weight(v))
                .sum::<u64>()
        }
        _ => NODE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn derives_tag_time_and_marks_once() {
        let doc = Doc::from_json(json!({
            "resourceType": "Appointment",
            "id": "zoom-v1",
            "meta": {"lastUpdated": "2026-12-01T10:00:00Z"},
            "participant": [{"extension": [{"url": adapter::systems::PROVIDER_ONLY_EXTENSIONS[0], "valueUrl": "https://x"}]}]
        }));
        assert_eq!(doc.resource_type(), Some(ResourceType::Appointment));
        assert_eq!(doc.id(), Some("zoom-v1"));
        assert_eq!(doc.etag().to_str().unwrap(), weak_etag(doc.bytes()));
        assert_eq!(doc.bytes().as_ref(), serde_json::to_vec(doc.json()).unwrap().as_slice());
        assert_eq!(doc.last_modified().map(|t| t.at.timestamp()), Some(1_796_119_200));
        assert!(doc.provider_only());
        assert!(doc.weight() > doc.bytes().len() as u64 * 2);
        let plain = Doc::from_json(json!({"resourceType": "Patient", "id": "p"}));
        assert!(!plain.provider_only());
        assert!(plain.last_modified().is_none());
    }
}
