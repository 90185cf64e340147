//! The Kestrel node agent: collects a node's security data and ships it to the server.
//!
//! - [`tail`]: the file-tailing engine (rotation-safe, acknowledged checkpoints).

pub mod tail;
