//! `[limits]`: how much one request may ask for. The file's table deserializes straight into
//! [`crate::query::Limits`], which is both the raw and the validated form.

use crate::query::Limits;

use super::{ConfigError, invalid};

/// Validates `[limits]`: every bound is at least 1 (a bound of 0 would refuse every request).
pub(super) fn validate(l: &Limits) -> Result<Limits, ConfigError> {
    for (setting, value) in [
        ("limits.max_body_bytes", l.max_body_bytes),
        ("limits.max_search_body_bytes", l.max_search_body_bytes),
        ("limits.max_query_bytes", l.max_query_bytes),
        ("limits.max_header_bytes", l.max_header_bytes),
        ("limits.max_params", l.max_params),
        ("limits.max_value_len", l.max_value_len),
        ("limits.max_sort_keys", l.max_sort_keys),
        ("limits.max_includes", l.max_includes),
        ("limits.max_elements", l.max_elements),
    ] {
        if value == 0 {
            return Err(invalid(setting, "must be at least 1"));
        }
    }
    for (setting, value) in [
        ("limits.max_body_bytes", l.max_body_bytes),
        ("limits.max_search_body_bytes", l.max_search_body_bytes),
    ] {
        if value > 1024 * 1024 * 1024 {
            return Err(invalid(setting, "must be at most 1073741824 (1 GiB)"));
        }
    }
    Ok(*l)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use crate::config::Settings;
    use crate::config::tests::{GOOD, env, err};

    #[test]
    fn limits_have_defaults_overrides_and_named_errors() {
        let s = Settings::from_toml(GOOD, &BTreeMap::new()).unwrap();
        assert_eq!(s.limits, crate::query::Limits::default());
        assert_eq!(s.cache.as_ref().map(|c| c.not_found_ttl), Some(Duration::from_secs(30)));
        let s = Settings::from_toml(
            &format!("{GOOD}[limits]\nmax_params = 20\nmax_sort_keys = 3\n[cache]\nnot_found_ttl_secs = 0\n"),
            &env(&[("FHIR_GATEWAY__LIMITS__MAX_BODY_BYTES", "4096")]),
        )
        .unwrap();
        assert_eq!(
            s.limits,
            crate::query::Limits {
                max_params: 20,
                max_sort_keys: 3,
                max_body_bytes: 4096,
                ..crate::query::Limits::default()
            }
        );
        assert_eq!(s.cache.map(|c| c.not_found_ttl), Some(Duration::ZERO));
        assert_eq!(
            err(GOOD, &[("FHIR_GATEWAY__LIMITS__MAX_PARAMS", "0")]),
            "setting `limits.max_params`: must be at least 1"
        );
        for (key, value) in [
            ("LIMITS__MAX_BODY_BYTES", "0"),
            ("LIMITS__MAX_SEARCH_BODY_BYTES", "2000000000"),
            ("LIMITS__MAX_QUERY_BYTES", "0"),
            ("LIMITS__MAX_HEADER_BYTES", "0"),
            ("LIMITS__MAX_VALUE_LEN", "-1"),
            ("LIMITS__MAX_SORT_KEYS", "0"),
            ("LIMITS__MAX_INCLUDES", "0"),
            ("LIMITS__MAX_ELEMENTS", "many"),
            ("CACHE__NOT_FOUND_TTL_SECS", "7200"),
        ] {
            let setting = key.to_lowercase().replace("__", ".");
            let e = err(GOOD, &[(&format!("FHIR_GATEWAY__{key}"), value)]);
            assert!(e.contains(&setting), "{key}={value}: {e}");
        }
        let e = err(&format!("{GOOD}[limits]\nmax_parms = 3\n"), &[]);
        assert!(e.contains("limits"), "{e}");
    }
}
