//! The OpenAPI 3.1 document (`/openapi.json`, Swagger UI at `/docs`), generated from the same
//! tables the REST layer serves from: the types the adapters declare and the gateway's search
//! parameters. The committed copy in `openapi/` is checked by a test.

use adapter::{Interaction, ResourceType};
use serde_json::{Map, Value, json};
use utoipa::openapi::OpenApi;

use crate::params::{self, ParamKind};
use crate::sources::Sources;

fn outcome_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/fhir+json": {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}}})
}

fn errors() -> Map<String, Value> {
    let mut m = Map::new();
    for (code, text) in [
        ("400", "Malformed request or parameter value (OperationOutcome)"),
        (
            "401",
            "SMART mode: the bearer token is missing, invalid, expired or revoked (OperationOutcome; WWW-Authenticate)",
        ),
        (
            "403",
            "SMART mode: the token's scopes do not allow this interaction on this type (OperationOutcome)",
        ),
        (
            "404",
            "Unknown resource type or id, or outside the token's patient compartment (OperationOutcome)",
        ),
        ("406", "Unsupported Accept or _format (OperationOutcome)"),
        ("410", "Deleted resource or expired paging link (OperationOutcome)"),
        ("429", "Vendor rate limit exhausted; see Retry-After (OperationOutcome)"),
        (
            "502",
            "A vendor sent something that cannot be mapped (OperationOutcome)",
        ),
        ("503", "A vendor is unavailable (OperationOutcome)"),
        ("504", "A vendor did not answer in time (OperationOutcome)"),
    ] {
        m.insert(code.into(), outcome_response(text));
    }
    m
}

fn common_query() -> Vec<Value> {
    let q = |name: &str, description: &str, schema: Value| json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema});
    vec![
        q(
            "_count",
            "Entries per page (capped by the server)",
            json!({"type": "integer", "minimum": 0}),
        ),
        q(
            "_sort",
            "Comma-separated parameters to sort by; prefix '-' for descending",
            json!({"type": "string"}),
        ),
        q(
            "_summary",
            "Return a summary",
            json!({"type": "string", "enum": ["true", "false", "text", "data", "count"]}),
        ),
        q(
            "_elements",
            "Comma-separated top-level elements to return",
            json!({"type": "string"}),
        ),
        q(
            "_total",
            "Whether to compute Bundle.total",
            json!({"type": "string", "enum": ["none", "estimate", "accurate"]}),
        ),
        q("_format", "Response format (JSON only)", json!({"type": "string"})),
        q("_pretty", "Indent the JSON", json!({"type": "boolean"})),
        json!({"name": "Prefer", "in": "header", "required": false, "description": "handling=strict refuses unknown parameters and partial federated results",
               "schema": {"type": "string", "enum": ["handling=strict", "handling=lenient"]}}),
    ]
}

fn search_params(ty: ResourceType) -> Vec<Value> {
    params::COMMON
        .iter()
        .chain(params::for_type(ty))
        .map(|d| {
            let hint = match d.kind {
                ParamKind::String => "string; modifiers :exact, :contains, :missing",
                ParamKind::Token => "token [system]|[code]; modifiers :not, :missing",
                ParamKind::Date => "date with optional prefix eq|ne|gt|lt|ge|le|sa|eb|ap",
                ParamKind::Reference => "reference [Type/]id",
            };
            json!({"name": d.name, "in": "query", "required": false, "explode": true,
                   "description": format!("{} ({hint}); comma = OR, repeat = AND", d.description),
                   "schema": {"type": "string"}})
        })
        .collect()
}

/// Builds the OpenAPI document for the configured sources, typed by utoipa (what `/openapi.json`
/// serves).
pub fn document(sources: &Sources) -> OpenApi {
    serde_json::from_value(document_json(sources)).unwrap_or_else(|e| {
        // The document is generated from static tables; a test proves it converts.
        tracing::error!(error = %e, "the OpenAPI document does not convert to utoipa's model");
        OpenApi::default()
    })
}

/// The authorization server's endpoints (served in SMART mode).
fn smart_paths(paths: &mut Map<String, Value>) {
    let json_answer =
        |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"type": "object"}}}});
    let form = |fields: &[&str]| {
        let props: Map<String, Value> = fields
            .iter()
            .map(|f| ((*f).to_owned(), json!({"type": "string"})))
            .collect();
        json!({"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": props}}}})
    };
    let tag = ["SMART on FHIR"];
    let authorize_params: Vec<Value> = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "aud",
        "code_challenge",
        "code_challenge_method",
        "launch",
    ]
    .iter()
    .map(|n| json!({"name": n, "in": "query", "required": *n != "launch", "schema": {"type": "string"}}))
    .collect();
    paths.insert(
        "/.well-known/smart-configuration".into(),
        json!({"get": {"tags": tag, "operationId": "smartConfiguration", "summary": "SMART discovery: endpoints, grant types, PKCE methods, capabilities",
            "responses": {"200": json_answer("The discovery document")}}}),
    );
    paths.insert(
        "/auth/authorize".into(),
        json!({"get": {"tags": tag, "operationId": "authorize",
            "summary": "Authorization code + PKCE (S256): the login, patient picker and consent pages; redirects with `code` and `state`",
            "parameters": authorize_params,
            "responses": {"200": {"description": "An HTML page of the flow"}, "302": {"description": "Back to the app's redirect URI"}}}}),
    );
    paths.insert(
        "/auth/token".into(),
        json!({"post": {"tags": tag, "operationId": "token",
            "summary": "Tokens: authorization_code (PKCE verifier), refresh_token (rotated), client_credentials (client_secret_basic or private_key_jwt)",
            "requestBody": form(&["grant_type", "code", "redirect_uri", "code_verifier", "client_id", "refresh_token", "scope", "client_assertion_type", "client_assertion"]),
            "responses": {"200": json_answer("access_token, token_type, expires_in, scope, patient/encounter/fhirUser, id_token, refresh_token"),
                          "400": json_answer("OAuth error (invalid_grant, invalid_scope, …)"), "401": json_answer("invalid_client")}}}),
    );
    paths.insert(
        "/auth/introspect".into(),
        json!({"post": {"tags": tag, "operationId": "introspect", "summary": "RFC 7662 introspection (a confidential client, or a system-scoped bearer)",
            "requestBody": form(&["token"]), "responses": {"200": json_answer("active, scope, client_id, exp, patient, fhirUser, …")}}}),
    );
    paths.insert(
        "/auth/revoke".into(),
        json!({"post": {"tags": tag, "operationId": "revoke", "summary": "RFC 7009 revocation (a refresh token revokes its family)",
            "requestBody": form(&["token"]), "responses": {"200": {"description": "Revoked (or unknown)"}}}}),
    );
    paths.insert(
        "/auth/jwks".into(),
        json!({"get": {"tags": tag, "operationId": "jwks", "summary": "The gateway's token-signing public keys (old keys stay until their tokens expire)",
            "responses": {"200": json_answer("A JWKS")}}}),
    );
    paths.insert(
        "/auth/launch".into(),
        json!({"post": {"tags": tag, "operationId": "launch", "summary": "EHR launch: an EHR (a confidential client) mints a launch context for a patient",
            "requestBody": form(&["patient", "encounter"]), "responses": {"200": json_answer("{\"launch\": \"…\"}")}}}),
    );
}

/// An operation's description: what it does, whose resources it runs on, its parameters.
fn operation_description(t: ResourceType, op: &adapter::OperationDef) -> String {
    let mut out = format!("{}. {}", op.description.trim_end_matches('.'), op.performer.describe());
    if op.target == adapter::OperationTarget::AnySource {
        out.push_str(&format!(" Runs on a {t} of any source."));
    }
    if op.asynchronous {
        out.push_str(" Asynchronous: 202 Accepted, Content-Location names the resource that reflects completion.");
    }
    fn list(out: &mut String, params: &[adapter::OperationParam], depth: usize) {
        for p in params {
            let max = p.max.map_or_else(|| "*".to_owned(), |m| m.to_string());
            let ty = p.fhir_type.unwrap_or("parts");
            out.push_str(&format!(
                "\n{}- `{}` ({}, {}..{max}, {ty}): {}",
                "  ".repeat(depth),
                p.name,
                p.direction.code(),
                p.min,
                p.documentation
            ));
            list(out, p.parts, depth + 1);
        }
    }
    if !op.parameters.is_empty() {
        out.push_str(&format!(
            "\n\nParameters (see `/fhir/OperationDefinition/{}`):\n",
            crate::operations::definition_id(t, op.name)
        ));
        list(&mut out, op.parameters, 0);
    }
    out
}

/// The document as JSON (what `/openapi.json` serves and `openapi/` holds).
pub fn document_json(sources: &Sources) -> Value {
    let mut paths = Map::new();
    let fhir_json =
        |schema: &str| json!({"application/fhir+json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}});
    paths.insert(
        "/fhir/metadata".into(),
        json!({"get": {"tags": ["FHIR"], "operationId": "capabilities", "summary": "The CapabilityStatement",
                        "responses": {"200": {"description": "CapabilityStatement", "content": fhir_json("Resource")}}}}),
    );
    for ty in ResourceType::ALL {
        let read = !sources.serving(ty, Interaction::Read).is_empty();
        let search = !sources.serving(ty, Interaction::SearchType).is_empty();
        let t = ty.as_str();
        if search {
            let mut parameters = search_params(ty);
            parameters.extend(common_query());
            let mut responses = errors();
            responses.insert(
                "200".into(),
                json!({"description": format!("A searchset Bundle of {t}"), "content": fhir_json("Bundle")}),
            );
            let op = |id: &str| json!({"tags": [t], "operationId": id, "summary": format!("Search {t}"), "parameters": parameters, "responses": responses});
            paths.insert(format!("/fhir/{t}"), json!({"get": op(&format!("search{t}"))}));
            let mut post = op(&format!("search{t}Post"));
            post["parameters"] = json!(common_query());
            post["requestBody"] = json!({"required": false, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": {"type": "string"}}}}});
            paths.insert(format!("/fhir/{t}/_search"), json!({"post": post}));
        }
        let supports = |i: Interaction| !sources.serving(ty, i).is_empty();
        if supports(Interaction::Create) {
            let mut responses = errors();
            responses.insert("201".into(), json!({"description": format!("The created {t} (Location header names it)"), "content": fhir_json("Resource")}));
            responses.insert(
                "415".into(),
                outcome_response("The body is not FHIR JSON (OperationOutcome)"),
            );
            responses.insert(
                "422".into(),
                outcome_response("The vendor cannot store this resource (OperationOutcome naming the element)"),
            );
            let item = paths.entry(format!("/fhir/{t}")).or_insert_with(|| json!({}));
            item["post"] = json!({"tags": [t], "operationId": format!("create{t}"), "summary": format!("Create a {t} at the vendor that takes it"),
                "requestBody": {"required": true, "content": fhir_json("Resource")}, "responses": responses});
        }
        let id_param = json!({"name": "id", "in": "path", "required": true, "description": "Logical id ({source}-{native})",
                              "schema": {"type": "string", "pattern": "^[A-Za-z0-9\\-\\.]{1,64}$"}});
        let mut instance_writes = Map::new();
        for (method, interaction, media, summary) in [
            ("put", Interaction::Update, "application/fhir+json", "Update"),
            (
                "patch",
                Interaction::Patch,
                "application/json-patch+json",
                "Patch (JSON Patch)",
            ),
        ] {
            if supports(interaction) {
                let mut responses = errors();
                responses.insert(
                    "200".into(),
                    json!({"description": format!("The updated {t}"), "content": fhir_json("Resource")}),
                );
                responses.insert(
                    "405".into(),
                    outcome_response("The resource's source does not take this write (OperationOutcome; see Allow)"),
                );
                responses.insert(
                    "422".into(),
                    outcome_response(
                        "A change the vendor cannot store (OperationOutcome naming the element); nothing was applied",
                    ),
                );
                let body = if method == "patch" {
                    json!({"required": true, "content": {media: {"schema": {"type": "array", "items": {"type": "object"}}}}})
                } else {
                    json!({"required": true, "content": fhir_json("Resource")})
                };
                instance_writes.insert(
                    method.into(),
                    json!({"tags": [t], "operationId": format!("{method}{t}"), "summary": format!("{summary} one {t}"),
                    "parameters": [id_param.clone()], "requestBody": body, "responses": responses}),
                );
            }
        }
        let operations: Vec<adapter::OperationDef> = sources
            .all()
            .iter()
            .filter_map(|a| a.capabilities().resource(ty))
            .flat_map(|c| c.operations.iter().copied())
            .collect();
        for op in operations {
            let mut responses = errors();
            if op.asynchronous {
                responses.insert(
                    "202".into(),
                    json!({"description": "Accepted: the vendor completes the work later; Content-Location names the resource that reflects completion",
                           "content": fhir_json("Resource")}),
                );
            } else {
                responses.insert(
                    "200".into(),
                    json!({"description": "The operation's result", "content": fhir_json("Resource")}),
                );
            }
            paths.insert(
                format!("/fhir/{t}/{{id}}/${}", op.name),
                json!({"post": {"tags": [t], "operationId": format!("{}{t}", op.name), "summary": op.description,
                    "description": operation_description(ty, &op),
                    "parameters": [id_param.clone()],
                    "requestBody": {"required": false, "content": {"application/fhir+json": {"schema": {"$ref": "#/components/schemas/Resource"}}}},
                    "responses": responses}}),
            );
        }
        if read {
            let mut responses = errors();
            responses.insert(
                "200".into(),
                json!({"description": format!("The {t}"), "content": fhir_json("Resource")}),
            );
            paths.insert(
                format!("/fhir/{t}/{{id}}"),
                {
                    let mut item = json!({"get": {"tags": [t], "operationId": format!("read{t}"), "summary": format!("Read one {t}"),
                        "parameters": [id_param.clone()], "responses": responses}});
                    for (k, v) in instance_writes {
                        item[k] = v;
                    }
                    item
                },
            );
        }
    }
    for (path, summary) in [
        ("/healthz", "Liveness: the process is up"),
        (
            "/readyz",
            "Readiness: every vendor is reachable with the gateway's credentials",
        ),
        ("/metrics", "Prometheus metrics"),
    ] {
        paths.insert(
            path.into(),
            json!({"get": {"tags": ["Operations"], "operationId": path.trim_start_matches('/'), "summary": summary,
                            "responses": {"200": {"description": "OK"}, "503": {"description": "Not ready"}}}}),
        );
    }
    if !crate::operations::declared(sources).is_empty() {
        paths.insert(
            "/fhir/OperationDefinition".into(),
            json!({"get": {"tags": ["Operations"], "operationId": "searchOperationDefinition",
                "summary": "The definitions of every operation the sources perform (a searchset Bundle)",
                "responses": {"200": {"description": "A searchset Bundle", "content": fhir_json("Bundle")}}}}),
        );
        paths.insert(
            "/fhir/OperationDefinition/{id}".into(),
            json!({"get": {"tags": ["Operations"], "operationId": "readOperationDefinition",
                "summary": "One operation's definition ({Type}-{name}, e.g. Appointment-start-scribe)",
                "parameters": [{"name": "id", "in": "path", "required": true, "description": "{Type}-{name}",
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The OperationDefinition", "content": fhir_json("Resource")},
                              "404": {"description": "No such operation (OperationOutcome)"}}}}),
        );
    }
    for a in sources.all().iter() {
        let Some(receiver) = a.webhooks() else { continue };
        let source = a.source();
        let path = match receiver.path_template() {
            Some(tail) => format!("/webhooks/{source}/{tail}"),
            None => format!("/webhooks/{source}"),
        };
        // The template's `{name}` segments are path parameters (Noa's `{secret}`).
        let parameters: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"},
                       "description": "Set by the vendor's callback URL"})
            })
            .collect();
        paths.insert(
            path,
            json!({"post": {"tags": ["Vendor webhooks"], "operationId": format!("webhook{source}"),
                "parameters": parameters,
                "summary": format!("Callbacks from {source}, verified by the adapter before anything is believed"),
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"200": {"description": "Accepted (or the vendor's handshake answer)"},
                              "401": {"description": "Signature, timestamp or replay check failed"},
                              "400": {"description": "Verified but not understood"}}}}),
        );
    }
    smart_paths(&mut paths);
    // FHIR routes need a token in SMART mode; the CapabilityStatement, the OperationDefinitions, the
    // auth endpoints, webhooks and operations routes do not.
    for (path, item) in paths.iter_mut() {
        let public =
            !path.starts_with("/fhir/") || path == "/fhir/metadata" || path.starts_with("/fhir/OperationDefinition");
        if public && let Some(methods) = item.as_object_mut() {
            for op in methods.values_mut() {
                op["security"] = json!([]);
            }
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "FHIR facade gateway", "version": env!("CARGO_PKG_VERSION"),
                 "description": "One FHIR R4 API in front of a clinic's vendor systems. Resources are built on the fly from vendor calls; ids are {source}-{native}.",
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "paths": paths,
        "security": [{"smart": []}],
        "components": {
        "securitySchemes": {"smart": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": "SMART on FHIR access tokens (when `auth.mode = \"smart\"`; the demo runs with it and prints a ready token). Get one at /auth/token: authorization_code + PKCE from /auth/authorize, refresh_token, or client_credentials (client_secret_basic or private_key_jwt). Scopes: SMART v2 (`patient/Appointment.rs`, `user/*.cruds`, `system/*.rs`, `?`-constrained) and v1 (`.read`, `.write`, `.*`)."}},
        "schemas": {
            "Resource": {"type": "object", "description": "A FHIR R4 resource (see http://hl7.org/fhir/R4/)", "required": ["resourceType"],
                         "properties": {"resourceType": {"type": "string"}, "id": {"type": "string"}}, "additionalProperties": true},
            "Bundle": {"type": "object", "description": "A FHIR R4 searchset Bundle", "required": ["resourceType", "type"],
                       "properties": {"resourceType": {"type": "string", "enum": ["Bundle"]}, "type": {"type": "string", "enum": ["searchset"]}, "total": {"type": "integer"},
                                      "link": {"type": "array", "items": {"type": "object", "properties": {"relation": {"type": "string"}, "url": {"type": "string"}}}},
                                      "entry": {"type": "array", "items": {"type": "object"}}}, "additionalProperties": true},
            "OperationOutcome": {"type": "object", "description": "A FHIR R4 OperationOutcome", "required": ["resourceType", "issue"],
                                 "properties": {"resourceType": {"type": "string", "enum": ["OperationOutcome"]}, "issue": {"type": "array", "items": {"type": "object",
                                 "properties": {"severity": {"type": "string"}, "code": {"type": "string"}, "diagnostics": {"type": "string"}}}}}},
        }},
    })
}
