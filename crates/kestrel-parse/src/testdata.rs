//! Test helper: the sample files under `testdata/` at the workspace root.

use std::path::PathBuf;

/// Path of a file under the workspace's `testdata/`.
pub(crate) fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(name)
}

/// The file's bytes.
pub(crate) fn read(name: &str) -> Vec<u8> {
    let p = path(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The file's lines, without their `\n`.
pub(crate) fn lines(name: &str) -> Vec<Vec<u8>> {
    let data = read(name);
    let data = data.strip_suffix(b"\n").unwrap_or(&data);
    data.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect()
}
