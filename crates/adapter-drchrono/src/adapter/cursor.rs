//! The continuation this adapter hands the gateway: which DrChrono list it is walking, which date
//! window of that list, and DrChrono's own `next` URL inside it.
//!
//! Encoded as compact JSON, e.g. `{"s":"appointments","w":"2024-01-01/2024-07-08","n":"https://drchrono.com/api/appointments?...&page=2"}`.
//! `w` is absent for lists without date windows, `n` is absent when the window (or list) starts
//! from its first page.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use adapter::{AdapterError, Continuation};

use crate::client::VENDOR;

/// One DrChrono list endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Stream {
    Patients,
    Doctors,
    Offices,
    Appointments,
    ClinicalNotes,
    Documents,
}

impl Stream {
    /// The list path, relative to the base URL.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Self::Patients => "api/patients",
            Self::Doctors => "api/doctors",
            Self::Offices => "api/offices",
            Self::Appointments => "api/appointments",
            Self::ClinicalNotes => "api/clinical_notes",
            Self::Documents => "api/documents",
        }
    }

    /// The largest page DrChrono serves for this list as the adapter queries it.
    pub(crate) fn max_page_size(self) -> u32 {
        match self {
            // "This endpoint returns 5 objects per page, and the maximum page size is 20."
            Self::ClinicalNotes => 20,
            _ => crate::config::MAX_PAGE_SIZE,
        }
    }
}

/// An inclusive range of practice-local dates, DrChrono's `date_range` (`2024-01-01/2024-01-31`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) first: NaiveDate,
    pub(crate) last: NaiveDate,
}

impl Window {
    pub(crate) fn encode(self) -> String {
        format!("{}/{}", self.first, self.last)
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        let (a, b) = s.split_once('/')?;
        let first = NaiveDate::parse_from_str(a, "%Y-%m-%d").ok()?;
        let last = NaiveDate::parse_from_str(b, "%Y-%m-%d").ok()?;
        (first <= last).then_some(Self { first, last })
    }
}

/// Where a search stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) stream: Stream,
    pub(crate) window: Option<Window>,
    pub(crate) next: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    s: Stream,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    w: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
}

impl Cursor {
    pub(crate) fn encode(&self) -> Continuation {
        let wire = Wire {
            s: self.stream,
            w: self.window.map(Window::encode),
            n: self.next.clone(),
        };
        // Serializing a struct of strings cannot fail; an empty continuation would end the search
        // early rather than panic.
        Continuation(serde_json::to_string(&wire).unwrap_or_default())
    }

    /// Reads a continuation made by [`Cursor::encode`]; anything else has expired.
    pub(crate) fn decode(continuation: &Continuation) -> Result<Self, AdapterError> {
        let expired = || AdapterError::ContinuationExpired { vendor: VENDOR };
        let wire: Wire = serde_json::from_str(&continuation.0).map_err(|_| expired())?;
        let window = match wire.w {
            Some(w) => Some(Window::parse(&w).ok_or_else(expired)?),
            None => None,
        };
        Ok(Self {
            stream: wire.s,
            window,
            next: wire.n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            stream: Stream::Appointments,
            window: Window::parse("2024-01-01/2024-07-08"),
            next: Some("https://drchrono.com/api/appointments?page=2".into()),
        };
        let encoded = c.encode();
        assert_eq!(
            encoded.0,
            r#"{"s":"appointments","w":"2024-01-01/2024-07-08","n":"https://drchrono.com/api/appointments?page=2"}"#
        );
        assert_eq!(Cursor::decode(&encoded).unwrap(), c);
        let bare = Cursor {
            stream: Stream::Documents,
            window: None,
            next: None,
        };
        assert_eq!(bare.encode().0, r#"{"s":"documents"}"#);
        assert_eq!(Cursor::decode(&bare.encode()).unwrap(), bare);
    }

    #[test]
    fn foreign_continuations_have_expired() {
        for bad in [
            "",
            "{}",
            r#"{"s":"lab_results"}"#,
            r#"{"s":"appointments","w":"2024-02-01/2024-01-01"}"#,
            r#"{"s":"appointments","w":"yesterday"}"#,
        ] {
            assert_eq!(
                Cursor::decode(&Continuation(bad.into())),
                Err(AdapterError::ContinuationExpired { vendor: VENDOR }),
                "{bad}"
            );
        }
    }
}
