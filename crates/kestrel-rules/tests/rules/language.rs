//! The Falco rule language, item by item: operators, list fields, field arguments,
//! transformers, `val()`, exceptions, `override`/`append`, outputs, diagnostics, `explain`.

use kestrel_event::AuditEvent;
use kestrel_rules::{RuleMatch, RuleSet};

fn src(name: &str, text: &str) -> (String, String) {
    (name.to_string(), text.to_string())
}

/// A pod creation with two containers, a hostPath volume, groups, source IPs and a URI query.
fn event() -> AuditEvent {
    serde_json::from_value(serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": "a-1", "stage": "ResponseComplete", "verb": "create",
        "requestURI": "/api/v1/namespaces/shop/pods?fieldManager=kubectl-client-side-apply&dryRun=All",
        "user": {"username": "Alice@Example.com", "groups": ["devs", "system:authenticated"]},
        "sourceIPs": ["203.0.113.9", "10.0.0.1"],
        "userAgent": "kubectl/v1.31.0 (linux/amd64) kubernetes/9edcffc",
        "objectRef": {"resource": "pods", "namespace": "shop", "name": "web-0", "apiVersion": "v1"},
        "responseStatus": {"code": 201},
        "annotations": {"authorization.k8s.io/decision": "allow", "note": "aGVsbG8gd29ybGQ="},
        "requestObject": {"metadata": {"name": "web-0", "labels": {"app": "web"}},
            "spec": {"hostPID": true,
                "volumes": [{"name": "h", "hostPath": {"path": "/var/run/docker.sock"}}],
                "containers": [
                    {"name": "web", "image": "nginx:1.27", "securityContext": {"privileged": true, "runAsUser": 0}},
                    {"name": "side", "image": "reg.example.com/tools/sh@sha256:ab", "securityContext": {"runAsUser": 1000}}
                ]}},
        "responseObject": {"metadata": {"name": "web-0"}},
        "stageTimestamp": "2026-11-20T09:00:01.5Z"
    }))
    .unwrap()
}

fn rule(cond: &str) -> String {
    format!(
        "- rule: r\n  desc: d\n  condition: {}\n  output: o\n  priority: NOTICE\n  source: k8s_audit\n",
        serde_json::to_string(cond).unwrap()
    )
}

fn fires(cond: &str) -> bool {
    let (rs, report) = RuleSet::from_sources(&[src("t.yaml", &rule(cond))]);
    assert!(report.is_ok(), "{cond}: {report}");
    assert_eq!(rs.active_len(), 1, "{cond}");
    !rs.evaluate_audit(&event()).is_empty()
}

#[test]
fn every_operator() {
    let cases: &[(&str, bool)] = &[
        ("ka.verb = create", true),
        ("ka.verb == create", true),
        ("ka.verb != create", false),
        ("ka.response.code < 300", true),
        ("ka.response.code <= 201", true),
        ("ka.response.code > 201", false),
        ("ka.response.code >= 201", true),
        ("ka.verb in (get, create)", true),
        ("ka.verb in (get, list)", false),
        ("ka.user.groups intersects (devs, ops)", true),
        ("ka.user.groups intersects (ops)", false),
        ("ka.req.pod.volumes.hostpath pmatch (/var/run, /etc)", true),
        ("ka.req.pod.volumes.hostpath pmatch (/var/ru)", false),
        ("ka.uri contains dryRun", true),
        ("ka.user.name icontains alice@EXAMPLE", true),
        ("ka.user.name contains alice", false),
        // "Alice" in hex.
        ("ka.user.name bcontains 416c696365", true),
        ("ka.user.name bcontains 616c696365", false),
        ("ka.user.name bstartswith 416c", true),
        ("ka.user.name bstartswith 6c", false),
        ("ka.uri startswith /api/v1/", true),
        ("ka.useragent endswith 9edcffc", true),
        ("ka.target.name glob 'web-?'", true),
        ("ka.target.name glob 'WEB-*'", false),
        ("ka.target.name iglob 'WEB-*'", true),
        // Falco's regex matches the whole value (RE2, anchored at both ends).
        ("ka.target.name regex 'web-[0-9]+'", true),
        ("ka.target.name regex 'eb-[0-9]'", false),
        ("ka.impuser.name exists", false),
        ("ka.target.namespace exists", true),
        // Missing fields fail every comparison, `!=` included.
        ("ka.impuser.name != bob", false),
        ("not ka.impuser.name = bob", true),
        // Precedence: not > and > or.
        (
            "ka.verb = get or ka.verb = create and not ka.target.name = x",
            true,
        ),
        (
            "(ka.verb = get or ka.verb = create) and ka.target.name = x",
            false,
        ),
        // Quoted strings keep spaces and special characters; lists nest.
        ("ka.useragent startswith \"kubectl/v1.31.0 (linux\"", true),
        ("ka.verb in ('create', \"patch\")", true),
    ];
    for (cond, want) in cases {
        assert_eq!(fires(cond), *want, "{cond}");
    }
}

#[test]
fn list_fields_indexes_and_arguments() {
    let cases: &[(&str, bool)] = &[
        // `in`: every value is in the set.
        (
            "ka.req.pod.containers.image.repository in (nginx, reg.example.com/tools/sh)",
            true,
        ),
        ("ka.req.pod.containers.image.repository in (nginx)", false),
        // `intersects`: some value is.
        (
            "ka.req.pod.containers.image.repository intersects (nginx)",
            true,
        ),
        ("ka.req.pod.containers.privileged intersects (true)", true),
        // `field[i]` picks the i-th value.
        (
            "ka.req.pod.containers.image[1] startswith reg.example.com",
            true,
        ),
        (
            "ka.req.pod.containers.image[0] startswith reg.example.com",
            false,
        ),
        ("ka.req.pod.containers.run_as_user[1] = 1000", true),
        ("ka.req.pod.containers.image[5] exists", false),
        ("ka.sourceips[0] = 203.0.113.9", true),
        ("ka.sourceips[1] = 203.0.113.9", false),
        ("ka.req.pod.containers.eff_run_as_user intersects (0)", true),
        ("ka.req.pod.host_pid = true", true),
        // Field arguments.
        ("ka.uri.param[dryRun] = All", true),
        ("ka.uri.param[missing] exists", false),
        ("jevt.value[/requestObject/metadata/labels/app] = web", true),
        (
            "jevt.value[/annotations/authorization.k8s.io~1decision] = allow",
            true,
        ),
        ("json.value[/user/groups/0] = devs", true),
        ("ka.req.volume.hostpath[/var/run/*] = true", true),
        ("jevt.rawtime = 1795165201500000000", true),
        ("jevt.obj contains '\"auditID\":\"a-1\"'", true),
    ];
    for (cond, want) in cases {
        assert_eq!(fires(cond), *want, "{cond}");
    }
}

#[test]
fn transformers_and_field_comparisons() {
    let cases: &[(&str, bool)] = &[
        ("tolower(ka.user.name) = alice@example.com", true),
        ("toupper(ka.verb) = CREATE", true),
        ("b64(jevt.value[/annotations/note]) = 'hello world'", true),
        ("b64(ka.verb) exists", false),
        (
            "basename(ka.req.pod.volumes.hostpath) intersects (docker.sock)",
            true,
        ),
        ("len(ka.req.pod.containers.image) = 2", true),
        ("len(ka.verb) = 6", true),
        ("tolower(basename(ka.uri)) startswith pods", true),
        // val(): the right-hand side is another field of the same event.
        ("ka.target.name = val(ka.resp.name)", true),
        ("ka.target.name != val(ka.resp.name)", false),
        ("ka.target.namespace = val(ka.user.name)", false),
        (
            "ka.req.pod.containers.image[0] startswith val(ka.req.container.image.repository)",
            true,
        ),
        ("tolower(ka.user.name) = tolower(val(ka.user.name))", true),
        ("ka.impuser.name = val(ka.impuser.name)", false),
    ];
    for (cond, want) in cases {
        assert_eq!(fires(cond), *want, "{cond}");
    }
}

fn matches(rs: &RuleSet) -> Vec<RuleMatch> {
    rs.evaluate_audit(&event())
}

#[test]
fn exceptions_follow_falcos_defaults_and_rewrite() {
    // One field: default comparison `in`, values a flat list (list names expand).
    // Several fields: default `=` each, values tuples; a tuple item may be a list for `in`.
    let text = "\
- list: trusted_ns
  items: [kube-system, shop]
- rule: by ns
  desc: d
  condition: ka.verb = create
  output: o
  priority: INFO
  source: k8s_audit
  exceptions:
    - name: namespaces
      fields: ka.target.namespace
      values: [trusted_ns]
- rule: by tuple
  desc: d
  condition: ka.verb = create
  output: o
  priority: INFO
  source: k8s_audit
  exceptions:
    - name: ns_and_image
      fields: [ka.target.namespace, ka.req.container.image.repository]
      values:
        - [shop, nginx]
- rule: by tuple that does not match
  desc: d
  condition: ka.verb = create
  output: o
  priority: INFO
  source: k8s_audit
  exceptions:
    - name: ns_and_image
      fields: [ka.target.namespace, ka.req.container.image.repository]
      values:
        - [shop, apache]
- rule: with comps
  desc: d
  condition: ka.verb = create
  output: o
  priority: INFO
  source: k8s_audit
  exceptions:
    - name: users
      fields: [ka.user.name, ka.target.name]
      comps: [icontains, in]
      values:
        - [alice, [db-0, web-0]]
- rule: empty exception
  desc: d
  condition: ka.verb = create
  output: o
  priority: INFO
  source: k8s_audit
  exceptions:
    - name: nothing
      fields: [ka.user.name]
";
    let (rs, report) = RuleSet::from_sources(&[src("e.yaml", text)]);
    assert!(report.is_ok(), "{report}");
    let fired: Vec<String> = matches(&rs).into_iter().map(|m| m.rule).collect();
    assert_eq!(fired, ["by tuple that does not match", "empty exception"]);
    // The compiled form shows the rewrite: `cond and not (exception or ...)`.
    let x = rs.explain("by tuple").unwrap();
    assert_eq!(
        x.condition.as_deref(),
        Some("ka.verb = create and not (ka.target.namespace = shop and ka.req.container.image.repository = nginx)")
    );
    let x = rs.explain("by ns").unwrap();
    assert_eq!(
        x.condition.as_deref(),
        Some("ka.verb = create and not ka.target.namespace in (kube-system, shop)")
    );
}

#[test]
fn override_append_replace_and_enabled() {
    let base = "\
- list: ns
  items: [prod]
- macro: writes
  condition: ka.verb in (update)
- rule: r
  desc: base
  condition: writes
  output: first
  priority: INFO
  tags: [a]
  source: k8s_audit
- rule: off later
  desc: d
  condition: ka.verb exists
  output: o
  priority: INFO
  source: k8s_audit
";
    let extra = "\
- macro: writes
  condition: or ka.verb = create
  override:
    condition: append
- list: ns
  items: [shop]
  override:
    items: append
- rule: r
  condition: and ka.target.namespace in (ns)
  output: (user=%ka.user.name)
  desc: and more
  tags: [b]
  priority: CRITICAL
  override:
    condition: append
    output: append
    desc: append
    tags: replace
    priority: replace
- rule: off later
  enabled: false
  override:
    enabled: replace
";
    let (rs, report) = RuleSet::from_sources(&[src("base.yaml", base), src("extra.yaml", extra)]);
    assert!(report.is_ok(), "{report}");
    let m = matches(&rs);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].rule, "r");
    assert_eq!(m[0].output, "first (user=Alice@Example.com)");
    assert_eq!(m[0].tags, ["b"]);
    assert_eq!(m[0].priority.as_str(), "Critical");
    let info = rs.rules().into_iter().find(|r| r.name == "r").unwrap();
    assert_eq!(info.desc, "base and more");

    // The older `append: true`, and `enabled: true` re-enabling a rule.
    let older = "\
- rule: r
  condition: and ka.user.name startswith Alice
  append: true
- rule: off later
  enabled: true
";
    let (rs, report) = RuleSet::from_sources(&[
        src("base.yaml", base),
        src("extra.yaml", extra),
        src("older.yaml", older),
    ]);
    assert!(report.is_ok(), "{report}");
    let fired: Vec<String> = matches(&rs).into_iter().map(|m| m.rule).collect();
    assert_eq!(fired, ["r", "off later"]);

    // A key given without saying how to override it is an error at that rule.
    let bad = "- rule: r\n  condition: and ka.verb = get\n  override:\n    output: replace\n";
    let (_, report) = RuleSet::from_sources(&[src("base.yaml", base), src("bad.yaml", bad)]);
    assert_eq!(report.errors.len(), 1, "{report}");
    assert!(
        report.errors[0]
            .to_string()
            .starts_with("bad.yaml:1:1: rule \"r\""),
        "{report}"
    );
}

#[test]
fn outputs_render_fields_arguments_and_na() {
    let text = "\
- rule: r
  desc: d
  condition: ka.verb = create
  output: >
    %ka.user.name %ka.uri.param[dryRun] %jevt.value[/requestObject/metadata/labels/app]
    %ka.req.pod.containers.image %ka.impuser.name 100% done %ka.target.name.
  priority: WARNING
  source: k8s_audit
";
    let (rs, report) = RuleSet::from_sources(&[src("o.yaml", text)]);
    assert!(report.is_ok(), "{report}");
    let m = &matches(&rs)[0];
    assert_eq!(
        m.output,
        "Alice@Example.com All web (nginx:1.27,reg.example.com/tools/sh@sha256:ab) <NA> 100% done web-0."
    );
    assert_eq!(m.output_fields["ka.uri.param[dryRun]"], "All");
    assert_eq!(m.output_fields["ka.impuser.name"], "<NA>");
    assert_eq!(m.output_fields.len(), 6);
}

#[test]
fn diagnostics_name_file_line_and_column() {
    let text = "\
- required_engine_version: 0.31.0
- required_plugin_versions:
    - name: cloudtrail
      version: 0.1.0
    - name: k8saudit-eks
      version: 0.4.0
- rule: bad transformer
  desc: d
  condition: tolower(ka.verb = get
  output: o
  priority: INFO
  source: k8s_audit
- rule: bad val
  desc: d
  condition: ka.verb glob val(ka.uri)
  output: o
  priority: INFO
  source: k8s_audit
- rule: bad hex
  desc: d
  condition: ka.verb bcontains xyz
  output: o
  priority: INFO
  source: k8s_audit
- rule: good
  desc: d
  condition: ka.verb = create
  output: o
  priority: INFO
  source: k8s_audit
";
    let (rs, report) = RuleSet::from_sources(&[src("d.yaml", text)]);
    let msgs: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(msgs.len(), 3, "{report}");
    assert!(
        msgs[0].starts_with("d.yaml:9:30: rule \"bad transformer\": syntax error"),
        "{}",
        msgs[0]
    );
    assert!(
        msgs[1].starts_with("d.yaml:15:27: rule \"bad val\""),
        "{}",
        msgs[1]
    );
    assert!(
        msgs[2].starts_with("d.yaml:21:32: rule \"bad hex\""),
        "{}",
        msgs[2]
    );
    // An unknown plugin is a warning naming it; known names (and alternatives) pass.
    assert_eq!(report.warnings.len(), 1, "{report}");
    assert!(
        report.warnings[0].message.contains("cloudtrail"),
        "{report}"
    );
    assert_eq!(report.warnings[0].location.line, Some(2));
    assert_eq!(rs.active_len(), 1);
}

#[test]
fn indented_rule_files_report_real_lines() {
    let text = "\n    # a comment\n    - rule: r\n      desc: d\n      condition: ka.verb = get and ka.nope = 1\n      output: o\n      priority: INFO\n      source: k8s_audit\n";
    let (_, report) = RuleSet::from_sources(&[src("i.yaml", text)]);
    assert_eq!(
        report.errors[0].to_string(),
        "i.yaml:5:36: rule \"r\": unknown field `ka.nope`"
    );
}

#[test]
fn explain_shows_compiled_condition_fields_and_index() {
    let text = "\
- list: verbs
  items: [create, update]
- macro: writes
  condition: ka.verb in (verbs)
- rule: r
  desc: d
  condition: writes and ka.target.resource = pods and not tolower(ka.user.name) startswith system
  output: '%ka.user.name %ka.target.name'
  priority: INFO
  source: k8s_audit
";
    let (rs, _) = RuleSet::from_sources(&[src("x.yaml", text)]);
    let x = rs.explain("r").unwrap();
    assert_eq!(
        x.condition.as_deref(),
        Some("ka.verb in (create, update) and ka.target.resource = pods and not tolower(ka.user.name) startswith system")
    );
    assert_eq!(
        x.fields,
        [
            "ka.verb",
            "ka.target.resource",
            "tolower(ka.user.name)",
            "ka.user.name",
            "ka.target.name"
        ]
    );
    assert_eq!(
        x.verbs.as_deref(),
        Some(&["create".to_string(), "update".to_string()][..])
    );
    assert_eq!(x.resources.as_deref(), Some(&["pods".to_string()][..]));
    assert_eq!(x.stages, None);
    assert!(rs.explain("nope").is_none());
}
