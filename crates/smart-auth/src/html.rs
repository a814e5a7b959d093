//! The login, patient-picker, consent and error pages: plain, accessible HTML without scripts.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::PatientChoice;
use crate::scopes::{Scope, ScopeSet};

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;\
line-height:1.5;color:#1a1a1a}label{display:block;margin-top:1rem;font-weight:600}\
input{display:block;width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}\
button{margin-top:1rem;padding:.5rem 1.25rem;font-size:1rem;cursor:pointer}\
ul.patients{list-style:none;padding:0}ul.patients button{width:100%;text-align:left}\
.error{color:#a4000f;border:1px solid #a4000f;padding:.5rem}.app{font-weight:600}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><style>{STYLE}</style></head>\n<body><main>\n{body}\n</main></body></html>\n",
        title = escape(title),
    )
}

fn error_block(error: Option<&str>) -> String {
    error
        .map(|e| format!("<p class=\"error\" role=\"alert\" id=\"error\">{}</p>\n", escape(e)))
        .unwrap_or_default()
}

fn hidden_tx(tx: &str) -> String {
    format!("<input type=\"hidden\" name=\"tx\" value=\"{}\">", escape(tx))
}

/// The sign-in form.
pub(crate) fn login_page(action: &str, tx: &str, client_name: &str, username: &str, error: Option<&str>) -> String {
    page(
        "Sign in",
        &format!(
            "<h1>Sign in</h1>\n<p><span class=\"app\">{client}</span> asks to access health records on this \
server. Sign in to continue.</p>\n{error}<form method=\"post\" action=\"{action}\">\n{tx}\n\
<label for=\"username\">Username</label>\n\
<input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" required value=\"{username}\">\n\
<label for=\"password\">Password</label>\n\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n\
<button id=\"login\" type=\"submit\">Sign in</button>\n</form>",
            client = escape(client_name),
            error = error_block(error),
            action = escape(action),
            tx = hidden_tx(tx),
            username = escape(username),
        ),
    )
}

/// The patient picker: a search form and a button per patient.
pub(crate) fn picker_page(
    action: &str,
    tx: &str,
    client_name: &str,
    query: &str,
    results: &[PatientChoice],
    error: Option<&str>,
) -> String {
    let list = if results.is_empty() {
        "<p id=\"no-patients\">No patients match.</p>".to_owned()
    } else {
        let items: Vec<String> = results
            .iter()
            .map(|p| {
                format!(
                    "<li><button type=\"submit\" name=\"patient\" value=\"{id}\" id=\"patient-{id}\">{display}</button></li>",
                    id = escape(&p.id),
                    display = escape(&p.display),
                )
            })
            .collect();
        format!(
            "<form method=\"post\" action=\"{action}\">\n{tx}\n<ul class=\"patients\" aria-label=\"Patients\">\n{items}\n</ul>\n</form>",
            action = escape(action),
            tx = hidden_tx(tx),
            items = items.join("\n"),
        )
    };
    page(
        "Select a patient",
        &format!(
            "<h1>Select a patient</h1>\n<p><span class=\"app\">{client}</span> needs a patient to work with.</p>\n\
{error}<form method=\"post\" action=\"{action}\" role=\"search\">\n{tx}\n\
<label for=\"patient-search\">Find a patient by name</label>\n\
<input id=\"patient-search\" name=\"q\" type=\"search\" value=\"{query}\" autocomplete=\"off\">\n\
<button id=\"search\" type=\"submit\">Search</button>\n</form>\n{list}",
            client = escape(client_name),
            error = error_block(error),
            action = escape(action),
            tx = hidden_tx(tx),
            query = escape(query),
        ),
    )
}

/// A plain scope in words.
fn describe_other(name: &str) -> String {
    match name {
        "openid" => "Confirm your identity (OpenID Connect)".to_owned(),
        "fhirUser" => "Know which user record you are".to_owned(),
        "profile" => "See your name".to_owned(),
        "launch" => "Use the context the EHR launched it with".to_owned(),
        "launch/patient" => "Know which patient is selected".to_owned(),
        "launch/encounter" => "Know which encounter is selected".to_owned(),
        "offline_access" => "Keep access after you sign out (until you revoke it)".to_owned(),
        "online_access" => "Keep access while you are signed in".to_owned(),
        other => format!("Use the permission \u{201c}{other}\u{201d}"),
    }
}

/// The consent page: every scope in words, with Allow and Deny.
pub(crate) fn consent_page(
    action: &str,
    tx: &str,
    client_name: &str,
    user_display: &str,
    patient: Option<&str>,
    scopes: &ScopeSet,
) -> String {
    let items: Vec<String> = scopes
        .iter()
        .zip(scopes.tokens())
        .map(|(scope, raw)| {
            let words = match scope {
                Scope::Resource(r) => {
                    let mut w = r.describe();
                    if let Some(first) = w.get(..1) {
                        w = format!("{}{}", first.to_uppercase(), &w[1..]);
                    }
                    w
                }
                Scope::Other(o) => describe_other(o),
            };
            format!("<li>{} <code>{}</code></li>", escape(&words), escape(raw))
        })
        .collect();
    let patient = patient
        .map(|p| {
            format!(
                "<p id=\"selected-patient\">Patient: <strong>{}</strong></p>\n",
                escape(p)
            )
        })
        .unwrap_or_default();
    page(
        "Allow access?",
        &format!(
            "<h1>Allow access?</h1>\n<p>Signed in as <strong>{user}</strong>.</p>\n{patient}\
<p><span class=\"app\">{client}</span> asks to:</p>\n<ul id=\"scopes\">\n{items}\n</ul>\n\
<form method=\"post\" action=\"{action}\">\n{tx}\n\
<button id=\"allow\" type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\n\
<button id=\"deny\" type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n</form>",
            user = escape(user_display),
            client = escape(client_name),
            items = items.join("\n"),
            action = escape(action),
            tx = hidden_tx(tx),
        ),
    )
}

/// An error shown instead of redirecting (the redirect URI is not trusted yet, or the flow is gone).
pub(crate) fn error_page(message: &str) -> String {
    page(
        "Authorization error",
        &format!(
            "<h1>Authorization error</h1>\n<p class=\"error\" role=\"alert\" id=\"error\">{}</p>\n\
<p>Return to the application and start again.</p>",
            escape(message)
        ),
    )
}

/// An HTML response that is never cached, framed or leaks a referrer.
pub(crate) fn html_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_echoed_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let html = login_page("/auth/authorize/login", "t\"x", "<script>", "\"><b>", Some("<i>"));
        assert!(!html.contains("<script>") && !html.contains("\"><b>") && !html.contains("<i>"));
        assert!(html.contains("id=\"username\"") && html.contains("id=\"password\"") && html.contains("id=\"login\""));
        let picker = picker_page(
            "/p",
            "tx",
            "App",
            "<q>",
            &[PatientChoice {
                id: "drchrono-9".into(),
                display: "Ann <Lee>".into(),
            }],
            None,
        );
        assert!(picker.contains("id=\"patient-drchrono-9\"") && picker.contains("Ann &lt;Lee&gt;"));
        assert!(picker.contains("id=\"patient-search\"") && !picker.contains("<q>"));
        let scopes = ScopeSet::parse("patient/Appointment.rs openid").unwrap();
        let consent = consent_page("/c", "tx", "App", "Dr <X>", Some("drchrono-9"), &scopes);
        assert!(consent.contains("Read and search Appointment records of the selected patient"));
        assert!(consent.contains("id=\"allow\"") && consent.contains("id=\"deny\"") && !consent.contains("Dr <X>"));
    }
}
