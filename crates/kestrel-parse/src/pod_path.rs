//! The Kubernetes identity in a container log file's path, so the agent knows whose lines it
//! reads without asking the API server:
//!
//! - `/var/log/pods/<namespace>_<pod>_<pod-uid>/<container>/<restart>.log`, and its rotated
//!   copies `<restart>.log.<YYYYMMDD-hhmmss>` (gzip-compressed ones end in `.gz`);
//! - `/var/log/containers/<pod>_<namespace>_<container>-<container-id>.log` (symlinks into the
//!   former).
//!
//! The rule relied on: namespace, pod and container names are DNS-1123 names (lower-case
//! letters, digits, `-`, and `.` in pod names), so they never contain `_`, and splitting on `_`
//! is unambiguous. Pod UIDs are UUIDs, or a hex hash for static pods. Only the last components
//! are read, so the log root may be mounted anywhere (`/host/var/log/pods/...`).

use kestrel_event::PodIdentity;

/// What a log path says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLogPath {
    pub namespace: String,
    pub pod: String,
    /// Only in `/var/log/pods` paths.
    pub pod_uid: Option<String>,
    pub container: String,
    /// The container's restart count (`<n>.log`), only in `/var/log/pods` paths.
    pub restart_count: Option<u32>,
    /// The 64-hex container id, only in `/var/log/containers` paths.
    pub container_id: Option<String>,
    /// `YYYYMMDD-hhmmss` of a file kubelet rotated.
    pub rotated_at: Option<String>,
    /// The rotated file was gzip-compressed (`.gz`).
    pub compressed: bool,
}

impl PodLogPath {
    /// The identity carried in a batch's origin (labels, owner and image come from the pod
    /// watch, not from the path).
    pub fn identity(&self) -> PodIdentity {
        PodIdentity {
            namespace: Some(self.namespace.clone()),
            pod: Some(self.pod.clone()),
            pod_uid: self.pod_uid.clone(),
            container: Some(self.container.clone()),
            ..PodIdentity::default()
        }
    }
}

/// Why a path is not a kubelet container log path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PodPathError {
    /// The path does not have the components of either layout.
    #[error("not a kubelet log path: {reason}")]
    Shape { reason: &'static str },
    /// A component has characters a Kubernetes name cannot have.
    #[error("{component} `{value}` is not a valid Kubernetes name")]
    Name {
        component: &'static str,
        value: String,
    },
}

/// Lower-case letters, digits, `-` (and `.` when `dots`); non-empty.
fn valid_name(s: &str, dots: bool) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || (dots && c == b'.')
        })
}

fn check(component: &'static str, value: &str, dots: bool) -> Result<String, PodPathError> {
    if valid_name(value, dots) {
        Ok(value.to_owned())
    } else {
        Err(PodPathError::Name {
            component,
            value: value.chars().take(64).collect(),
        })
    }
}

/// Parses a log file path of either layout (see the module documentation).
pub fn parse_pod_log_path(path: &str) -> Result<PodLogPath, PodPathError> {
    let mut parts = path.rsplit('/').filter(|p| !p.is_empty());
    let file = parts.next().ok_or(PodPathError::Shape {
        reason: "empty path",
    })?;
    let restart_end = file.bytes().take_while(u8::is_ascii_digit).count();
    if restart_end > 0 && file[restart_end..].starts_with(".log") {
        let container = parts.next().ok_or(PodPathError::Shape {
            reason: "no container directory",
        })?;
        let pod_dir = parts.next().ok_or(PodPathError::Shape {
            reason: "no <namespace>_<pod>_<uid> directory",
        })?;
        pods_layout(file, restart_end, container, pod_dir)
    } else {
        containers_layout(file)
    }
}

fn pods_layout(
    file: &str,
    restart_end: usize,
    container: &str,
    pod_dir: &str,
) -> Result<PodLogPath, PodPathError> {
    let restart_count = file[..restart_end]
        .parse()
        .map_err(|_| PodPathError::Shape {
            reason: "restart count out of range",
        })?;
    let suffix = &file[restart_end + ".log".len()..];
    let (rotated_at, compressed) = match suffix {
        "" => (None, false),
        s => {
            let s = s.strip_prefix('.').ok_or(PodPathError::Shape {
                reason: "file name is not <n>.log or <n>.log.<YYYYMMDD-hhmmss>",
            })?;
            let (stamp, compressed) = match s.strip_suffix(".gz") {
                Some(stamp) => (stamp, true),
                None => (s, false),
            };
            let b = stamp.as_bytes();
            let is_stamp = b.len() == 15
                && b[8] == b'-'
                && b.iter()
                    .enumerate()
                    .all(|(i, c)| i == 8 || c.is_ascii_digit());
            if !is_stamp {
                return Err(PodPathError::Shape {
                    reason: "file name is not <n>.log or <n>.log.<YYYYMMDD-hhmmss>",
                });
            }
            (Some(stamp.to_owned()), compressed)
        }
    };
    let mut ids = pod_dir.split('_');
    let (Some(ns), Some(pod), Some(uid), None) = (ids.next(), ids.next(), ids.next(), ids.next())
    else {
        return Err(PodPathError::Shape {
            reason: "pod directory is not <namespace>_<pod>_<uid>",
        });
    };
    let uid_ok = !uid.is_empty() && uid.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-');
    if !uid_ok {
        return Err(PodPathError::Name {
            component: "pod uid",
            value: uid.chars().take(64).collect(),
        });
    }
    Ok(PodLogPath {
        namespace: check("namespace", ns, false)?,
        pod: check("pod", pod, true)?,
        pod_uid: Some(uid.to_owned()),
        container: check("container", container, false)?,
        restart_count: Some(restart_count),
        container_id: None,
        rotated_at,
        compressed,
    })
}

fn containers_layout(file: &str) -> Result<PodLogPath, PodPathError> {
    let stem = file.strip_suffix(".log").ok_or(PodPathError::Shape {
        reason: "file name does not end in .log",
    })?;
    let mut ids = stem.split('_');
    let (Some(pod), Some(ns), Some(rest), None) = (ids.next(), ids.next(), ids.next(), ids.next())
    else {
        return Err(PodPathError::Shape {
            reason: "file name is not <pod>_<namespace>_<container>-<id>.log",
        });
    };
    let (container, id) = rest.rsplit_once('-').ok_or(PodPathError::Shape {
        reason: "file name is not <pod>_<namespace>_<container>-<id>.log",
    })?;
    if id.len() != 64 || !id.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(PodPathError::Shape {
            reason: "container id is not 64 hex digits",
        });
    }
    Ok(PodLogPath {
        namespace: check("namespace", ns, false)?,
        pod: check("pod", pod, true)?,
        pod_uid: None,
        container: check("container", container, false)?,
        restart_count: None,
        container_id: Some(id.to_owned()),
        rotated_at: None,
        compressed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "3f9a8b7c6d5e4f30a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718";

    #[test]
    fn pods_layout() {
        let p = parse_pod_log_path(
            "/var/log/pods/shop_web-7d9c8b-x2x4k_9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a/web/3.log",
        )
        .unwrap();
        assert_eq!(
            p,
            PodLogPath {
                namespace: "shop".into(),
                pod: "web-7d9c8b-x2x4k".into(),
                pod_uid: Some("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a".into()),
                container: "web".into(),
                restart_count: Some(3),
                container_id: None,
                rotated_at: None,
                compressed: false,
            }
        );
        assert_eq!(
            p.identity(),
            PodIdentity {
                namespace: Some("shop".into()),
                pod: Some("web-7d9c8b-x2x4k".into()),
                pod_uid: Some("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a".into()),
                container: Some("web".into()),
                ..Default::default()
            }
        );
        // Rotated, compressed, a static pod's hash uid, another mount point, a dotted pod name.
        let p = parse_pod_log_path(
            "/host/var/log/pods/kube-system_kube-apiserver-cp-1.example.com_0f1e2d3c4b5a69788796a5b4c3d2e1f0/kube-apiserver/0.log.20261120-090001.gz",
        )
        .unwrap();
        assert_eq!(p.pod, "kube-apiserver-cp-1.example.com");
        assert_eq!(
            p.pod_uid.as_deref(),
            Some("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
        );
        assert_eq!(
            (p.restart_count, p.rotated_at.as_deref(), p.compressed),
            (Some(0), Some("20261120-090001"), true)
        );
        let p = parse_pod_log_path("pods/a_b_c/d/12.log.20261120-090001").unwrap();
        assert_eq!((p.restart_count, p.compressed), (Some(12), false));
    }

    #[test]
    fn containers_layout() {
        let p = parse_pod_log_path(&format!(
            "/var/log/containers/web-7d9c8b-x2x4k_shop_web-sidecar-{ID}.log"
        ))
        .unwrap();
        assert_eq!(
            p,
            PodLogPath {
                namespace: "shop".into(),
                pod: "web-7d9c8b-x2x4k".into(),
                pod_uid: None,
                container: "web-sidecar".into(),
                restart_count: None,
                container_id: Some(ID.into()),
                rotated_at: None,
                compressed: false,
            }
        );
    }

    #[test]
    fn other_paths_are_errors() {
        let shape = |p: &str| match parse_pod_log_path(p) {
            Err(PodPathError::Shape { reason }) => reason,
            other => panic!("{p}: {other:?}"),
        };
        assert_eq!(shape(""), "empty path");
        assert_eq!(shape("/"), "empty path");
        assert_eq!(shape("0.log"), "no container directory");
        assert_eq!(shape("web/0.log"), "no <namespace>_<pod>_<uid> directory");
        assert_eq!(
            shape("/var/log/pods/shop_web/web/0.log"),
            "pod directory is not <namespace>_<pod>_<uid>"
        );
        assert_eq!(
            shape("/var/log/pods/a_b_c_d/web/0.log"),
            "pod directory is not <namespace>_<pod>_<uid>"
        );
        assert_eq!(
            shape("/var/log/pods/a_b_c/web/0.log.tmp"),
            "file name is not <n>.log or <n>.log.<YYYYMMDD-hhmmss>"
        );
        assert_eq!(
            shape("/var/log/pods/a_b_c/web/0.log.20261120-090001.gz.tmp"),
            "file name is not <n>.log or <n>.log.<YYYYMMDD-hhmmss>"
        );
        assert_eq!(
            shape("/var/log/pods/a_b_c/web/99999999999.log"),
            "restart count out of range"
        );
        assert_eq!(shape("/var/log/syslog"), "file name does not end in .log");
        assert_eq!(
            shape("/var/log/containers/web_shop_web.log"),
            "file name is not <pod>_<namespace>_<container>-<id>.log"
        );
        assert_eq!(
            shape("/var/log/containers/web_shop_web-abc.log"),
            "container id is not 64 hex digits"
        );
        assert_eq!(
            parse_pod_log_path("/var/log/pods/Shop_web_c/web/0.log"),
            Err(PodPathError::Name {
                component: "namespace",
                value: "Shop".into()
            })
        );
        assert_eq!(
            parse_pod_log_path("/var/log/pods/shop_web_xyz/web/0.log"),
            Err(PodPathError::Name {
                component: "pod uid",
                value: "xyz".into()
            })
        );
        assert_eq!(
            parse_pod_log_path(&format!("/var/log/containers/web_shop_we.b-{ID}.log")),
            Err(PodPathError::Name {
                component: "container",
                value: "we.b".into()
            })
        );
    }

    proptest! {
        #[test]
        fn never_panics(path in "[a-z0-9_./\\-é]{0,80}") {
            let _ = parse_pod_log_path(&path);
        }

        #[test]
        fn formatted_paths_round_trip(
            ns in "[a-z0-9][a-z0-9-]{0,20}",
            pod in "[a-z0-9][a-z0-9.-]{0,30}",
            uid in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            container in "[a-z0-9][a-z0-9-]{0,20}",
            restart in any::<u32>(),
        ) {
            let p = parse_pod_log_path(&format!("/var/log/pods/{ns}_{pod}_{uid}/{container}/{restart}.log")).unwrap();
            prop_assert_eq!((&p.namespace, &p.pod, p.pod_uid.as_deref(), &p.container, p.restart_count), (&ns, &pod, Some(uid.as_str()), &container, Some(restart)));
            let p = parse_pod_log_path(&format!("/var/log/containers/{pod}_{ns}_{container}-{ID}.log")).unwrap();
            prop_assert_eq!((&p.namespace, &p.pod, &p.container, p.container_id.as_deref()), (&ns, &pod, &container, Some(ID)));
        }
    }
}
