//! Contact details shared by several resources: telecom, addresses, photos.

use adapter::fhir::types::{Address, Attachment, ContactPoint};

use super::codes::{FileType, Telecom};
use super::{fhir_text, present};

/// Contact points for the non-blank values, in the order given.
pub(crate) fn telecom(values: &[(Telecom, &String)]) -> Vec<ContactPoint> {
    values
        .iter()
        .filter_map(|(kind, value)| {
            let value = fhir_text(value)?;
            let (system, use_) = kind.codes();
            Some(ContactPoint {
                system: Some(system.into()),
                value: Some(value),
                r#use: use_.map(Into::into),
                ..Default::default()
            })
        })
        .collect()
}

/// An address from DrChrono's address fields; `None` when all are blank. The `address` text may
/// hold several lines separated by newlines.
pub(crate) fn address(
    lines: &str,
    city: &str,
    state: &str,
    zip: &str,
    country: &str,
    address_use: Option<&str>,
) -> Option<Address> {
    let line: Vec<_> = lines.lines().filter_map(fhir_text).collect();
    let city = fhir_text(city);
    let state = fhir_text(state);
    let postal_code = fhir_text(zip);
    if line.is_empty() && city.is_none() && state.is_none() && postal_code.is_none() {
        return None;
    }
    Some(Address {
        r#use: address_use.map(Into::into),
        line,
        city,
        state,
        postal_code,
        country: fhir_text(country),
        ..Default::default()
    })
}

/// A photo by URL, with its MIME type when the URL's extension tells it.
pub(crate) fn photo(url: &str) -> Option<Attachment> {
    let url = present(url)?;
    Some(Attachment {
        content_type: FileType::from_url(url).map(|t| t.mime().into()),
        url: Some(url.into()),
        ..Default::default()
    })
}
