//! Processing on the node, between decoding and batching: multiline joining ([`multiline`]),
//! drop/keep filters ([`filter`]) and secret redaction ([`redact`]).
//!
//! Order for a container log line: CRI/docker decode → partial lines merged → multiline join
//! → filters (on the message as the application wrote it) → redaction → ingress/DNS parsing →
//! batch. A [`Processing`] holds one input's compiled settings; the redactor is shared by
//! every input.

pub mod filter;
pub mod multiline;
pub mod redact;

use std::sync::Arc;

pub use filter::{ActiveFilters, FilterAction, FilterConfig, Filters};
pub use multiline::{MultilineConfig, MultilinePreset, MultilineRules, MULTILINE_START_ANNOTATION};
pub use redact::{RedactionConfig, RedactionRule, Redactor, BUILTIN_NAMES};

/// One input's processing settings, compiled.
#[derive(Debug, Clone)]
pub struct Processing {
    pub multiline: Arc<MultilineRules>,
    pub filters: Arc<Filters>,
    pub redactor: Arc<Redactor>,
}

impl Processing {
    /// No joining, no filters, no redaction.
    pub fn none() -> Processing {
        Processing {
            multiline: Arc::new(MultilineRules::default()),
            filters: Arc::new(Filters::default()),
            redactor: Arc::new(Redactor::disabled()),
        }
    }
}
