//! Media types: what the gateway answers with and which `Accept`/`_format` values it honours.

use axum::http::HeaderMap;
use axum::http::header::ACCEPT;

use crate::error::GatewayError;

/// The FHIR JSON media type every FHIR response carries.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

const JSON_TYPES: [&str; 4] = [
    "application/fhir+json",
    "application/json",
    "application/json+fhir",
    "json",
];

/// Checks `_format` and `Accept`: JSON in any of its spellings (or anything with `*/*`) is fine,
/// anything else is 406.
pub fn negotiate(headers: &HeaderMap, format_param: Option<&str>) -> Result<(), GatewayError> {
    if let Some(f) = format_param {
        let f = f.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        return if JSON_TYPES.contains(&f.as_str()) {
            Ok(())
        } else {
            Err(GatewayError::NotAcceptable(format!(
                "_format '{f}' is not supported; this server speaks application/fhir+json"
            )))
        };
    }
    let Some(accept) = headers.get(ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let acceptable = accept.split(',').any(|part| {
        let mut pieces = part.split(';');
        let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = pieces.any(|p| p.trim().replace(' ', "") == "q=0");
        !refused
            && (media.is_empty()
                || media == "*/*"
                || media == "application/*"
                || JSON_TYPES[..3].contains(&media.as_str()))
    });
    if acceptable {
        Ok(())
    } else {
        Err(GatewayError::NotAcceptable(
            "none of the Accept media types is supported; this server speaks application/fhir+json".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn json_in_every_spelling_is_accepted() {
        assert!(negotiate(&HeaderMap::new(), None).is_ok());
        for a in [
            "application/fhir+json",
            "application/json",
            "*/*",
            "text/html, */*;q=0.8",
            "application/json+fhir",
        ] {
            assert!(negotiate(&accept(a), None).is_ok(), "{a}");
        }
        for f in ["json", "application/fhir+json", "application/json"] {
            assert!(negotiate(&accept("application/xml"), Some(f)).is_ok(), "{f}");
        }
    }

    #[test]
    fn other_media_types_are_not_acceptable() {
        for a in ["application/fhir+xml", "text/html", "application/json;q=0"] {
            assert!(
                matches!(negotiate(&accept(a), None), Err(GatewayError::NotAcceptable(_))),
                "{a}"
            );
        }
        assert!(negotiate(&HeaderMap::new(), Some("xml")).is_err());
    }
}
