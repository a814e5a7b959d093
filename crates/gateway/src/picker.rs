//! The SMART patient picker's view of the gateway: when a provider launches an app without a patient,
//! the authorization server asks here (Patient searches by name, and reads) — as the server itself,
//! through the engine and so through the cache, never through an adapter directly.

use adapter::ResourceType;
use chrono_tz::Tz;

use crate::access::{Caller, OpenAccess};
use crate::engine::{Engine, RequestCtx};
use crate::query::CountLimits;

/// The patient picker's view of the gateway: Patient searches by name and reads, as the server.
pub(crate) struct EnginePatients {
    pub(crate) engine: Engine,
    pub(crate) tz: Tz,
}

#[smart_auth::async_trait]
impl smart_auth::PatientDirectory for EnginePatients {
    async fn search(&self, text: &str, limit: usize) -> Vec<smart_auth::PatientChoice> {
        let limit = limit.clamp(1, 100) as u32;
        let mut pairs = vec![("_count".to_owned(), limit.to_string())];
        if !text.trim().is_empty() {
            pairs.push(("name".to_owned(), text.trim().to_owned()));
        }
        let limits = CountLimits {
            default: limit,
            max: limit,
        };
        let Ok(search) = crate::query::parse(ResourceType::Patient, &pairs, false, limits, self.tz, "") else {
            return Vec::new();
        };
        let start = self.engine.start(ResourceType::Patient, false);
        let Ok(page) = self.engine.search(&search, start, server()).await else {
            return Vec::new();
        };
        page.matches
            .iter()
            .map(crate::doc::Served::json)
            .filter_map(patient_choice)
            .collect()
    }

    async fn exists(&self, patient_id: &str) -> bool {
        self.engine
            .read(ResourceType::Patient, patient_id, server())
            .await
            .is_ok()
    }
}

/// "Family, Given (1970-01-31)" for the picker.
fn patient_choice(p: &serde_json::Value) -> Option<smart_auth::PatientChoice> {
    let id = p.get("id")?.as_str()?.to_owned();
    let name = p.pointer("/name/0");
    let family = name
        .and_then(|n| n.get("family"))
        .and_then(|f| f.as_str())
        .unwrap_or("");
    let given: Vec<&str> = name
        .and_then(|n| n.get("given"))
        .and_then(|g| g.as_array())
        .map(|g| g.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    let mut display = match (family.is_empty(), given.is_empty()) {
        (true, true) => id.clone(),
        (false, true) => family.to_owned(),
        (true, false) => given.join(" "),
        (false, false) => format!("{family}, {}", given.join(" ")),
    };
    if let Some(birth) = p.get("birthDate").and_then(|b| b.as_str()) {
        display.push_str(&format!(" ({birth})"));
    }
    Some(smart_auth::PatientChoice { id, display })
}

/// The picker asks as the server: no caller, no policy (the authorization server shows the choices
/// only to a signed-in provider), lenient about unknown parameters.
fn server() -> RequestCtx<'static> {
    RequestCtx {
        caller: &Caller::Unauthenticated,
        policy: &OpenAccess,
        strict: false,
    }
}
