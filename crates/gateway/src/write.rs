//! Writes: create, update, JSON Patch and instance operations, each routed to the source that owns
//! the resource (or, for create, the source that accepts that type).
//!
//! The gateway checks what FHIR requires (resource type and id match the URL, the body is a valid
//! resource, the caller may see what it changes); the adapter decides what its vendor can store and
//! refuses anything else as a whole (`422` naming the element), so nothing is half-applied.

use std::sync::Arc;

use adapter::{AdapterError, FhirId, Interaction, OperationTarget, Performer, Resource, ResourceType};
use serde_json::Value;

use crate::engine::{Engine, RequestCtx, to_json};
use crate::error::GatewayError;

/// Parses FHIR JSON of the expected type into a fhirbolt resource.
fn to_resource(body: &Value, expected: ResourceType) -> Result<Resource, GatewayError> {
    let ty = body.get("resourceType").and_then(Value::as_str).unwrap_or("");
    if ty != expected.as_str() {
        return Err(GatewayError::BadRequest(format!(
            "the body must be a {expected} resource"
        )));
    }
    // Shapes FHIR JSON forbids are refused naming the element before the parser sees them (an
    // empty array panics it); see `fhir_json`.
    crate::fhir_json::parse(body, expected.as_str())
}

/// The JSON answered for a resource a vendor returned from a write (an operation may answer with
/// another type than its target, e.g. `Parameters`).
fn answer(resource: Resource, ctx: RequestCtx<'_>) -> Result<Value, GatewayError> {
    let mut json = to_json(resource)?;
    ctx.policy.redact(ctx.caller, &mut json);
    Ok(json)
}

/// A write may only produce what the caller could then see (a patient-context token cannot
/// write into another patient's compartment).
fn within_grant(resource: &Value, ctx: RequestCtx<'_>) -> Result<(), GatewayError> {
    if ctx.policy.visible(ctx.caller, resource) {
        Ok(())
    } else {
        Err(GatewayError::Forbidden(
            "the access token does not allow writing this resource (outside its compartment or constraint)".into(),
        ))
    }
}

/// May this caller make this write at `adapter`'s vendor? A patient-facing caller only what the
/// source declares a patient may do (checked before anything is read, like a scope).
fn may_write(
    adapter: &Arc<dyn adapter::Adapter>,
    t: ResourceType,
    interaction: Interaction,
    ctx: RequestCtx<'_>,
) -> Result<(), GatewayError> {
    let performer = adapter
        .capabilities()
        .resource(t)
        .map_or(Performer::Provider, |c| c.performer(interaction));
    let what = match interaction {
        Interaction::Create => format!("creating a {t} at {}", adapter.source()),
        _ => format!("changing a {t} at {}", adapter.source()),
    };
    ctx.policy.may_perform(ctx.caller, performer, &what)
}

fn not_found(t: ResourceType, id: &str) -> GatewayError {
    GatewayError::NotFound(format!("{t}/{id} is not known"))
}

fn not_allowed(method: &str, t: ResourceType, allow: &str) -> GatewayError {
    GatewayError::MethodNotAllowed {
        method: method.into(),
        path: format!("/fhir/{t}"),
        allow: allow.into(),
    }
}

/// `POST /fhir/{type}`: the first source accepting creates of the type takes it.
pub async fn create(engine: &Engine, t: ResourceType, body: Value, ctx: RequestCtx<'_>) -> Result<Value, GatewayError> {
    ctx.policy.authorize(ctx.caller, Interaction::Create, t)?;
    let resource = to_resource(&body, t)?;
    within_grant(&body, ctx)?;
    let adapters = engine.sources.serving(t, Interaction::Create);
    if adapters.is_empty() {
        return Err(not_allowed("POST", t, "GET"));
    }
    // Only the sources that let this caller create (a patient books a Zoom visit, nothing else).
    let mut refused = None;
    let adapters: Vec<_> = adapters
        .into_iter()
        .filter(|a| match may_write(a, t, Interaction::Create, ctx) {
            Ok(()) => true,
            Err(e) => {
                refused.get_or_insert(e);
                false
            }
        })
        .collect();
    if let (true, Some(e)) = (adapters.is_empty(), refused) {
        return Err(e);
    }
    ctx.policy.names_only_own_patient(ctx.caller, &body, None)?;
    let mut last = None;
    for adapter in adapters {
        match adapter.create(resource.clone()).await {
            Ok(created) => return answer(created, ctx),
            // This source does not take this kind of resource (e.g. not a Zoom visit): try the next.
            Err(e @ AdapterError::Unsupported { .. }) => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.map_or_else(|| not_allowed("POST", t, "GET"), GatewayError::from))
}

/// The adapter owning `id`, when it supports `interaction` on `t` (else 404 for an unknown source,
/// 405 with the methods it does take). Checked before the body is looked at.
pub fn writable<'a>(
    engine: &'a Engine,
    t: ResourceType,
    id: &str,
    interaction: Interaction,
) -> Result<(&'a std::sync::Arc<dyn adapter::Adapter>, FhirId), GatewayError> {
    let parsed = FhirId::parse(id).map_err(|_| not_found(t, id))?;
    let adapter = engine
        .sources
        .by_source(parsed.source())
        .ok_or_else(|| not_found(t, id))?;
    if !adapter.capabilities().supports(t, interaction) {
        let caps = adapter.capabilities();
        let mut allow = vec!["GET"];
        if caps.supports(t, Interaction::Update) {
            allow.push("PUT");
        }
        if caps.supports(t, Interaction::Patch) {
            allow.push("PATCH");
        }
        return Err(GatewayError::MethodNotAllowed {
            method: match interaction {
                Interaction::Update => "PUT",
                Interaction::Patch => "PATCH",
                Interaction::Delete => "DELETE",
                _ => "POST",
            }
            .into(),
            path: format!("/fhir/{t}/{{id}}"),
            allow: allow.join(", "),
        });
    }
    Ok((adapter, parsed))
}

/// [`writable`], and the current resource as the caller sees it (a resource the caller cannot see
/// is as missing for writes too).
async fn owner<'a>(
    engine: &'a Engine,
    t: ResourceType,
    id: &str,
    interaction: Interaction,
    ctx: RequestCtx<'_>,
) -> Result<(&'a std::sync::Arc<dyn adapter::Adapter>, FhirId, Value), GatewayError> {
    let (adapter, parsed) = writable(engine, t, id, interaction)?;
    may_write(adapter, t, interaction, ctx)?;
    let current = engine.read(t, id, ctx).await?.into_json();
    Ok((adapter, parsed, current))
}

/// `PUT /fhir/{type}/{id}`.
pub async fn update(
    engine: &Engine,
    t: ResourceType,
    id: &str,
    body: Value,
    ctx: RequestCtx<'_>,
) -> Result<Value, GatewayError> {
    ctx.policy.authorize(ctx.caller, Interaction::Update, t)?;
    if body.get("id").and_then(Value::as_str) != Some(id) {
        return Err(GatewayError::BadRequest(
            "the resource's id must equal the id in the URL".into(),
        ));
    }
    let resource = to_resource(&body, t)?;
    let (adapter, parsed, current) = owner(engine, t, id, Interaction::Update, ctx).await?;
    within_grant(&body, ctx)?;
    ctx.policy.names_only_own_patient(ctx.caller, &body, Some(&current))?;
    let updated = adapter.update(t, parsed.native(), resource).await?;
    answer(updated, ctx)
}

/// The most operations one JSON Patch may hold.
const MAX_PATCH_OPERATIONS: usize = 100;
/// The largest a resource may grow while a patch is applied to it.
const MAX_PATCHED_BYTES: usize = 2 * 1024 * 1024;

/// `PATCH /fhir/{type}/{id}` with a JSON Patch document: applied to the current resource, then
/// stored as an update.
pub async fn patch(
    engine: &Engine,
    t: ResourceType,
    id: &str,
    patch: Value,
    ctx: RequestCtx<'_>,
) -> Result<Value, GatewayError> {
    ctx.policy.authorize(ctx.caller, Interaction::Patch, t)?;
    let patch: json_patch::Patch = serde_json::from_value(patch)
        .map_err(|_| GatewayError::BadRequest("the body is not a JSON Patch document (RFC 6902)".into()))?;
    if patch.0.len() > MAX_PATCH_OPERATIONS {
        return Err(GatewayError::TooCostly {
            name: None,
            message: format!("a JSON Patch may hold at most {MAX_PATCH_OPERATIONS} operations"),
        });
    }
    let (adapter, parsed, mut current) = owner(engine, t, id, Interaction::Patch, ctx).await?;
    let before = current.clone();
    // One operation at a time, each result bounded: `copy` can double a document per operation.
    for op in patch.0 {
        json_patch::patch(&mut current, &[op]).map_err(|e| {
            GatewayError::Adapter(AdapterError::Unprocessable {
                element: e.path.to_string(),
                detail: "the patch does not apply to the current resource".into(),
            })
        })?;
        if crate::fhir_json::deeper_than(&current, crate::fhir_json::MAX_DEPTH)
            || serde_json::to_vec(&current).map_or(true, |b| b.len() > MAX_PATCHED_BYTES)
        {
            return Err(GatewayError::TooCostly {
                name: None,
                message: format!(
                    "the patched resource grows past {} levels or {MAX_PATCHED_BYTES} bytes",
                    crate::fhir_json::MAX_DEPTH
                ),
            });
        }
    }
    if current.get("id").and_then(Value::as_str) != Some(id)
        || current.get("resourceType").and_then(Value::as_str) != Some(t.as_str())
    {
        return Err(GatewayError::Adapter(AdapterError::Unprocessable {
            element: "id".into(),
            detail: "a patch cannot change the resource type or id".into(),
        }));
    }
    within_grant(&current, ctx)?;
    ctx.policy.names_only_own_patient(ctx.caller, &current, Some(&before))?;
    let resource = to_resource(&current, t).map_err(|e| {
        GatewayError::Adapter(AdapterError::Unprocessable {
            // The element `fhir_json` names (an emptied array, say), else the resource.
            element: match e {
                GatewayError::BadParameter { name, .. } => name,
                _ => t.as_str().into(),
            },
            detail: "the patched resource is not valid FHIR".into(),
        })
    })?;
    let updated = adapter.update(t, parsed.native(), resource).await?;
    answer(updated, ctx)
}

/// What an operation answers: the resource, and for an asynchronous operation the resource
/// (`Encounter/noa-…`) that reflects its completion.
#[derive(Debug)]
pub struct OperationAnswer {
    pub body: Value,
    /// `Some` for `202 Accepted`: the relative URL (`Encounter/noa-1`) for `Content-Location`, if the
    /// adapter named one in its `follow` parameter.
    pub accepted: Option<Option<String>>,
}

/// `POST /fhir/{type}/{id}/${name}`: run by the source owning the resource when it declares the
/// operation, else by a source declaring it for any source's resources (Noa's `$start-scribe` on a
/// DrChrono Appointment).
pub async fn operation(
    engine: &Engine,
    t: ResourceType,
    id: &str,
    name: &str,
    input: Option<Value>,
    ctx: RequestCtx<'_>,
) -> Result<OperationAnswer, GatewayError> {
    let parsed = FhirId::parse(id).map_err(|_| not_found(t, id))?;
    let owner = engine
        .sources
        .by_source(parsed.source())
        .ok_or_else(|| not_found(t, id))?;
    let declared = |a: &Arc<dyn adapter::Adapter>, target: OperationTarget| {
        a.capabilities()
            .resource(t)
            .and_then(|c| c.operations.iter().find(|o| o.name == name && o.target == target))
            .copied()
    };
    let (adapter, def) = match declared(owner, OperationTarget::Own) {
        Some(def) => (owner, def),
        None => engine
            .sources
            .all()
            .iter()
            .find_map(|a| declared(a, OperationTarget::AnySource).map(|def| (a, def)))
            .ok_or_else(|| GatewayError::NotFound(format!("the operation ${name} is not available on {t}/{id}")))?,
    };
    let interaction = if def.affects_state {
        Interaction::Update
    } else {
        Interaction::Read
    };
    ctx.policy.authorize(ctx.caller, interaction, t)?;
    ctx.policy.may_perform(ctx.caller, def.performer, &format!("${name}"))?;
    // The caller must be able to see the resource it operates on.
    let target = engine.read(t, id, ctx).await?.into_json();
    let input = match input {
        None => None,
        Some(v) => {
            if v.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
                return Err(GatewayError::BadRequest(
                    "an operation's body must be a Parameters resource".into(),
                ));
            }
            Some(crate::fhir_json::parse(&v, "Parameters resource")?)
        }
    };
    let out = match def.target {
        OperationTarget::Own => adapter.operation(t, parsed.native(), name, input).await?,
        OperationTarget::AnySource => {
            let target = to_resource(&target, t)?;
            adapter.operation_on(&parsed, &target, name, input).await?
        }
    };
    let body = answer(out, ctx)?;
    let accepted = def.asynchronous.then(|| follow_of(&body));
    Ok(OperationAnswer { body, accepted })
}

/// The relative reference in the `follow` parameter of a `Parameters` answer.
fn follow_of(parameters: &Value) -> Option<String> {
    parameters
        .get("parameter")?
        .as_array()?
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some("follow"))?
        .pointer("/valueReference/reference")?
        .as_str()
        .filter(|r| r.split('/').count() == 2 && !r.contains(':'))
        .map(str::to_owned)
}
