//! The deployment files checked without a cluster, a container engine or Kubernetes: every
//! manifest in `deploy/` parses and has the fields its kind needs, the pods' probes reach the port
//! slotgate really listens on (worked out with slotgate's own flag and config code), Services,
//! PodDisruptionBudgets and monitors select pods that exist, alert rules and the Grafana dashboard
//! name only metrics slotgate exports, the systemd unit is locked down, and the Dockerfile builds
//! a small non-root image. Each check lists every problem it finds, naming the file and document.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde_json::{json, Value};
use slotgate::cli::{self, Cli};
use slotgate::config::Config;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The port of the client listener in every example of `deploy/` and in the image.
const REDIS_PORT: u64 = 6380;
/// The port of `/metrics`, `/livez`, `/healthz` and `/readyz` in every example and in the image.
/// (9121, the old default, is redis_exporter's, which often runs beside Redis.)
const METRICS_PORT: u64 = 8379;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric family slotgate exports, with its type: the only names rules and dashboards may
/// use, besides [`EXTERNAL_METRICS`].
const SLOTGATE_METRICS: &[(&str, MetricType)] = {
    use MetricType::*;
    &[
        ("slotgate_build_info", Gauge),
        ("slotgate_client_connections", Gauge),
        ("slotgate_client_connections_accepted_total", Counter),
        ("slotgate_client_connections_rejected_total", Counter),
        ("slotgate_requests_total", Counter),
        ("slotgate_request_duration_seconds", Histogram),
        ("slotgate_inflight_requests", Gauge),
        ("slotgate_errors_total", Counter),
        ("slotgate_backend_request_duration_seconds", Histogram),
        ("slotgate_backend_inflight_requests", Gauge),
        ("slotgate_backend_connections", Gauge),
        ("slotgate_backend_errors_total", Counter),
        ("slotgate_backend_received_bytes_total", Counter),
        ("slotgate_backend_sent_bytes_total", Counter),
        ("slotgate_redirections_total", Counter),
        ("slotgate_redirect_giveups_total", Counter),
        ("slotgate_topology_refreshes_total", Counter),
        ("slotgate_slot_map_epoch", Gauge),
        ("slotgate_slot_map_age_seconds", Gauge),
        ("slotgate_slots_covered", Gauge),
        ("slotgate_node_role", Gauge),
        ("process_cpu_seconds_total", Counter),
        ("process_resident_memory_bytes", Gauge),
        ("process_open_fds", Gauge),
    ]
};

/// Series that come from elsewhere: Prometheus' own per-target `up`, and kube-state-metrics'
/// container readiness (the kubelet's view of `/readyz`).
const EXTERNAL_METRICS: &[&str] = &["up", "kube_pod_container_status_ready"];

/// Files in `deploy/` that are Prometheus' own formats, not Kubernetes objects.
const PROMETHEUS_CONFIG: &str = "deploy/prometheus/prometheus.yml";
const PROMETHEUS_RULES: &str = "deploy/prometheus/slotgate-rules.yml";
const PROMETHEUS_RULE_CRD: &str = "deploy/prometheus/prometheusrule.yaml";
const DASHBOARD: &str = "deploy/grafana/slotgate.json";
const SYSTEMD_UNIT: &str = "deploy/slotgate.service";
const IMAGE_CONFIG: &str = "config/slotgate.docker.yaml";

/// The problems one check found; it fails once, at the end, listing them all.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    fn push(&mut self, what: impl Into<String>) {
        self.0.push(what.into());
    }

    fn finish(self, check: &str) {
        assert!(
            self.0.is_empty(),
            "{check}: {} problem(s):\n  - {}",
            self.0.len(),
            self.0.join("\n  - ")
        );
    }
}

fn read(relative: &str) -> String {
    let path = Path::new(ROOT).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// Every file under `deploy/`, as paths relative to the repository root, sorted.
fn deploy_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&Path::new(ROOT).join("deploy"), &mut paths);
    let mut files: Vec<String> = paths
        .iter()
        .map(|p| {
            p.strip_prefix(ROOT)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    files.sort();
    files
}

/// The only place YAML is parsed: each document of `text`, as JSON values (every key in these
/// files is a string), so the checks below need nothing from the YAML crate.
fn yaml_documents(text: &str, file: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("{file}: not valid YAML: {e}"))
}

fn yaml_file(file: &str) -> Vec<Value> {
    yaml_documents(&read(file), file)
}

/// One Kubernetes object and where it came from.
struct Manifest {
    file: String,
    index: usize,
    value: Value,
}

impl Manifest {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }

    fn pod_labels(&self) -> &Value {
        &self.value["spec"]["template"]["metadata"]["labels"]
    }

    fn containers(&self) -> impl Iterator<Item = &Value> {
        self.value["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
    }
}

impl Display for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} document {} ({} {:?})",
            self.file,
            self.index,
            self.kind(),
            self.name()
        )
    }
}

/// The Kubernetes objects of every YAML file in `deploy/` except Prometheus' own files.
fn manifests() -> Vec<Manifest> {
    let mut out = Vec::new();
    for file in deploy_files() {
        if !(file.ends_with(".yaml") || file.ends_with(".yml"))
            || file == PROMETHEUS_CONFIG
            || file == PROMETHEUS_RULES
        {
            continue;
        }
        for (i, value) in yaml_file(&file).into_iter().enumerate() {
            out.push(Manifest {
                file: file.clone(),
                index: i + 1,
                value,
            });
        }
    }
    out
}

/// True if every label of `selector` is on `labels` (an empty selector selects nothing here).
fn selects(selector: &Value, labels: &Value) -> bool {
    match (selector.as_object(), labels.as_object()) {
        (Some(sel), Some(labels)) if !sel.is_empty() => {
            sel.iter().all(|(k, v)| labels.get(k) == Some(v))
        }
        _ => false,
    }
}

fn port_number(value: &Value) -> Option<u64> {
    value.as_u64()
}

fn socket_port(addr: &str) -> Option<u64> {
    addr.rsplit_once(':')?.1.parse().ok()
}

fn is_loopback(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Kubernetes manifests

#[test]
fn every_manifest_parses_and_names_its_kind() {
    let expected_api = BTreeMap::from([
        ("ConfigMap", "v1"),
        ("Service", "v1"),
        ("Deployment", "apps/v1"),
        ("PodDisruptionBudget", "policy/v1"),
        ("ServiceMonitor", "monitoring.coreos.com/v1"),
        ("PodMonitor", "monitoring.coreos.com/v1"),
        ("PrometheusRule", "monitoring.coreos.com/v1"),
    ]);
    let mut p = Problems::default();
    let all = manifests();
    for m in &all {
        p.check(m.value.is_object(), || {
            format!("{m}: an empty or non-mapping document")
        });
        p.check(!m.name().is_empty(), || format!("{m}: no metadata.name"));
        match expected_api.get(m.kind()) {
            Some(api) => p.check(m.value["apiVersion"] == **api, || {
                format!(
                    "{m}: apiVersion {} but {} is served as {api}",
                    m.value["apiVersion"],
                    m.kind()
                )
            }),
            None => p.push(format!(
                "{m}: kind {:?} is not one this test knows how to check",
                m.kind()
            )),
        }
    }
    // Each of these is promised by deploy/README.md.
    for kind in expected_api.keys() {
        p.check(all.iter().any(|m| m.kind() == *kind), || {
            format!("deploy/: no {kind}")
        });
    }
    let deployments = all.iter().filter(|m| m.kind() == "Deployment").count();
    p.check(deployments >= 2, || {
        format!("deploy/: {deployments} Deployment(s), expected the sidecar and the proxy tier")
    });
    p.finish("Kubernetes manifests");
}

/// What the image runs: its ENTRYPOINT and the config file it names, from the Dockerfile.
struct Image {
    entrypoint: Vec<String>,
    config_path: String,
    config_text: String,
    uid: u64,
}

fn image() -> Image {
    let dockerfile = Dockerfile::parse(&read("Dockerfile"));
    let last = dockerfile.stages.last().expect("Dockerfile: no FROM");
    let entrypoint = last
        .exec_form("ENTRYPOINT")
        .expect("Dockerfile: the final stage has no exec-form ENTRYPOINT");
    let config_path = entrypoint
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| entrypoint.get(i + 1))
        .expect("Dockerfile: the ENTRYPOINT passes no --config")
        .clone();
    let source = last
        .copies()
        .into_iter()
        .find(|c| c.from.is_none() && c.dest == config_path)
        .and_then(|c| c.sources.into_iter().next())
        .unwrap_or_else(|| panic!("Dockerfile: nothing is copied to {config_path}"));
    let uid = last
        .arg("USER")
        .and_then(|u| u.split(':').next()?.parse().ok())
        .expect("Dockerfile: the final stage has no numeric USER");
    Image {
        entrypoint,
        config_text: read(&source),
        config_path,
        uid,
    }
}

/// The config a slotgate container of a pod runs with, worked out the way the binary does it:
/// the image's ENTRYPOINT plus the container's args through slotgate's own flag parser, and
/// the config file at the path the ENTRYPOINT names, which is the image's own unless a
/// ConfigMap is mounted over its directory.
fn container_config(
    m: &Manifest,
    container: &Value,
    image: &Image,
    config_maps: &BTreeMap<String, Value>,
) -> Result<Config, String> {
    if container.get("command").is_some() {
        return Err("sets `command`, replacing the image's ENTRYPOINT; use `args`".to_owned());
    }
    let (dir, file_name) = image
        .config_path
        .rsplit_once('/')
        .expect("the image's config path has a directory");
    let mut text = image.config_text.clone();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let mount_path = mount["mountPath"].as_str().unwrap_or("");
        if mount_path.trim_end_matches('/') != dir {
            continue;
        }
        let volume = m.value["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == mount["name"])
            .ok_or_else(|| format!("mounts volume {} which the pod lacks", mount["name"]))?;
        let map_name = volume["configMap"]["name"]
            .as_str()
            .ok_or_else(|| format!("mounts {mount_path} from a volume that is no ConfigMap"))?;
        let map = config_maps
            .get(map_name)
            .ok_or_else(|| format!("mounts ConfigMap {map_name:?}, which deploy/ lacks"))?;
        text = map["data"][file_name]
            .as_str()
            .ok_or_else(|| format!("ConfigMap {map_name:?} has no key {file_name:?}"))?
            .to_owned();
    }
    let args: Vec<String> = container["args"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a.as_str().unwrap_or_default().to_owned())
        .collect();
    let mut cli = Cli::try_parse_from(image.entrypoint.iter().chain(&args))
        .map_err(|e| format!("slotgate rejects its arguments {args:?}: {e}"))?;
    let temp = std::env::temp_dir().join(format!(
        "slotgate-deploy-test-{}-{}-{}.yaml",
        std::process::id(),
        m.index,
        m.file.replace(['/', '.'], "_")
    ));
    std::fs::write(&temp, text).unwrap();
    cli.config = Some(temp.clone());
    let config = cli::load_config(&cli);
    let _ = std::fs::remove_file(&temp);
    config.map_err(|e| format!("slotgate would not start: {e}"))
}

fn config_maps(all: &[Manifest]) -> BTreeMap<String, Value> {
    all.iter()
        .filter(|m| m.kind() == "ConfigMap")
        .map(|m| (m.name().to_owned(), m.value.clone()))
        .collect()
}

/// The containerPort a probe's `port` (number or name) points at.
fn probe_port(container: &Value, port: &Value) -> Option<u64> {
    match port {
        Value::String(name) => container["ports"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == *name.as_str())
            .and_then(|p| port_number(&p["containerPort"])),
        other => port_number(other),
    }
}

#[test]
fn deployments_run_slotgate_reachable_probed_and_locked_down() {
    let all = manifests();
    let maps = config_maps(&all);
    let image = image();
    let mut p = Problems::default();
    for m in all.iter().filter(|m| m.kind() == "Deployment") {
        p.check(
            selects(&m.value["spec"]["selector"]["matchLabels"], m.pod_labels()),
            || format!("{m}: spec.selector.matchLabels do not match the template's labels"),
        );
        let pod_security = &m.value["spec"]["template"]["spec"]["securityContext"];
        let mut slotgates = 0;
        for c in m.containers() {
            let name = c["name"].as_str().unwrap_or("");
            p.check(!name.is_empty(), || format!("{m}: a container has no name"));
            p.check(c["image"].as_str().is_some_and(|i| !i.is_empty()), || {
                format!("{m}: container {name:?} has no image")
            });
            if name != "slotgate" {
                continue;
            }
            slotgates += 1;
            let c_name = format!("{m}, container slotgate");
            let config = match container_config(m, c, &image, &maps) {
                Ok(config) => config,
                Err(e) => {
                    p.push(format!("{c_name}: {e}"));
                    continue;
                }
            };
            let ports: BTreeSet<u64> = c["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| port_number(&p["containerPort"]))
                .collect();

            // Clients: loopback only for a sidecar; otherwise a declared port that is REDIS_PORT.
            if !is_loopback(&config.listen) {
                p.check(socket_port(&config.listen) == Some(REDIS_PORT), || {
                    format!(
                        "{c_name}: listens on {}, not port {REDIS_PORT}",
                        config.listen
                    )
                });
                p.check(ports.contains(&REDIS_PORT), || {
                    format!("{c_name}: containerPort {REDIS_PORT} is not declared")
                });
            }
            // Metrics and probes: the kubelet reaches the pod's IP, not its loopback.
            let metrics = config.metrics_listen.clone().unwrap_or_default();
            p.check(
                !metrics.is_empty()
                    && !is_loopback(&metrics)
                    && socket_port(&metrics) == Some(METRICS_PORT),
                || {
                    format!(
                        "{c_name}: metrics_listen is {metrics:?}, not a pod-reachable \
                         address on port {METRICS_PORT}"
                    )
                },
            );
            p.check(ports.contains(&METRICS_PORT), || {
                format!("{c_name}: containerPort {METRICS_PORT} is not declared")
            });
            for (probe, paths) in [
                ("readinessProbe", &["/readyz"][..]),
                ("livenessProbe", &["/livez", "/healthz"][..]),
            ] {
                let get = &c[probe]["httpGet"];
                let path = get["path"].as_str().unwrap_or("");
                p.check(paths.contains(&path), || {
                    format!("{c_name}: {probe} asks {path:?}, expected one of {paths:?}")
                });
                p.check(probe_port(c, &get["port"]) == Some(METRICS_PORT), || {
                    format!(
                        "{c_name}: {probe} port {} is not the metrics port {METRICS_PORT}",
                        get["port"]
                    )
                });
            }

            // Security: container settings win over the pod's.
            let security = &c["securityContext"];
            let setting = |key: &str| match &security[key] {
                Value::Null => &pod_security[key],
                v => v,
            };
            p.check(setting("runAsNonRoot") == &json!(true), || {
                format!("{c_name}: runAsNonRoot is not true")
            });
            p.check(
                setting("runAsUser").is_null() || setting("runAsUser") == &json!(image.uid),
                || {
                    format!(
                        "{c_name}: runAsUser {} differs from the image's USER {}",
                        setting("runAsUser"),
                        image.uid
                    )
                },
            );
            p.check(security["readOnlyRootFilesystem"] == json!(true), || {
                format!("{c_name}: readOnlyRootFilesystem is not true")
            });
            p.check(security["allowPrivilegeEscalation"] == json!(false), || {
                format!("{c_name}: allowPrivilegeEscalation is not false")
            });
            p.check(
                security["capabilities"]["drop"]
                    .as_array()
                    .is_some_and(|d| d.contains(&json!("ALL"))),
                || format!("{c_name}: capabilities.drop does not contain ALL"),
            );
            p.check(
                c["resources"]["requests"].is_object()
                    && !c["resources"]["limits"]["memory"].is_null(),
                || format!("{c_name}: no resource requests or no memory limit"),
            );
        }
        p.check(slotgates == 1, || {
            format!("{m}: {slotgates} containers named slotgate, expected one")
        });
    }
    p.finish("Deployments");
}

#[test]
fn config_maps_hold_a_valid_slotgate_config() {
    let mut p = Problems::default();
    let all = manifests();
    let maps: Vec<_> = all.iter().filter(|m| m.kind() == "ConfigMap").collect();
    p.check(!maps.is_empty(), || "deploy/: no ConfigMap".to_owned());
    for m in maps {
        match m.value["data"]["slotgate.yaml"].as_str() {
            Some(text) => {
                if let Err(e) = parse_config_with_seed(text, &m.to_string()) {
                    p.push(e);
                }
            }
            None => p.push(format!("{m}: no data key slotgate.yaml")),
        }
    }
    p.finish("ConfigMaps");
}

/// `text` through slotgate's own parser and validation, with a seed added if it names none
/// (the image's config leaves seeds to --seed).
fn parse_config_with_seed(text: &str, origin: &str) -> Result<Config, String> {
    let mut doc = yaml_documents(text, origin).pop().unwrap_or(Value::Null);
    if doc.is_null() {
        doc = json!({});
    }
    let map = doc
        .as_object_mut()
        .ok_or_else(|| format!("{origin}: slotgate.yaml is not a mapping"))?;
    map.entry("seeds").or_insert(json!(["127.0.0.1:7000"]));
    // JSON is YAML: slotgate reads it back with its own YAML parser.
    Config::from_yaml_str(&doc.to_string())
        .map_err(|e| format!("{origin}: slotgate rejects its slotgate.yaml: {e}"))
}

#[test]
fn services_pdbs_and_monitors_select_pods_that_exist() {
    let all = manifests();
    let mut p = Problems::default();
    let deployments: Vec<_> = all.iter().filter(|m| m.kind() == "Deployment").collect();
    let services: Vec<_> = all.iter().filter(|m| m.kind() == "Service").collect();
    let selected = |selector: &Value| -> Vec<&Manifest> {
        deployments
            .iter()
            .copied()
            .filter(|d| selects(selector, d.pod_labels()))
            .collect()
    };
    let container_port_names = |d: &Manifest| -> BTreeSet<String> {
        d.containers()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect()
    };
    for s in &services {
        let pods = selected(&s.value["spec"]["selector"]);
        p.check(!pods.is_empty(), || {
            format!("{s}: its selector matches no Deployment's pods")
        });
        for port in s.value["spec"]["ports"].as_array().into_iter().flatten() {
            let ok = match &port["targetPort"] {
                Value::String(name) => pods
                    .iter()
                    .all(|d| container_port_names(d).contains(name.as_str())),
                Value::Number(_) | Value::Null => true,
                _ => false,
            };
            p.check(ok, || {
                format!(
                    "{s}: targetPort {} is no named port of the selected pods",
                    port["targetPort"]
                )
            });
        }
    }
    for pdb in all.iter().filter(|m| m.kind() == "PodDisruptionBudget") {
        let pods = selected(&pdb.value["spec"]["selector"]["matchLabels"]);
        p.check(!pods.is_empty(), || {
            format!("{pdb}: its selector matches no Deployment's pods")
        });
        for d in pods {
            let replicas = d.value["spec"]["replicas"].as_u64().unwrap_or(1);
            p.check(replicas >= 2, || {
                format!("{pdb}: guards {d} with {replicas} replica(s): a drain must wait forever")
            });
        }
    }
    for sm in all.iter().filter(|m| m.kind() == "ServiceMonitor") {
        let matched: Vec<_> = services
            .iter()
            .filter(|s| {
                selects(
                    &sm.value["spec"]["selector"]["matchLabels"],
                    &s.value["metadata"]["labels"],
                )
            })
            .collect();
        p.check(!matched.is_empty(), || {
            format!("{sm}: its selector matches no Service's labels")
        });
        for endpoint in sm.value["spec"]["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let named = matched.iter().all(|s| {
                s.value["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|port| {
                        port["name"] == endpoint["port"] && port["port"] == json!(METRICS_PORT)
                    })
            });
            p.check(named, || {
                format!(
                    "{sm}: endpoint port {} is not a Service port named so on {METRICS_PORT}",
                    endpoint["port"]
                )
            });
        }
    }
    for pm in all.iter().filter(|m| m.kind() == "PodMonitor") {
        let pods = selected(&pm.value["spec"]["selector"]["matchLabels"]);
        p.check(!pods.is_empty(), || {
            format!("{pm}: its selector matches no Deployment's pods")
        });
        for endpoint in pm.value["spec"]["podMetricsEndpoints"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = endpoint["port"].as_str().unwrap_or("");
            p.check(
                pods.iter().all(|d| container_port_names(d).contains(name)),
                || format!("{pm}: endpoint port {name:?} is no named port of the selected pods"),
            );
        }
    }
    p.finish("selectors");
}

// ---------------------------------------------------------------------------------------------
// Prometheus and Grafana

/// The metric names a PromQL expression reads: identifiers that are not functions, aggregation
/// operators, keywords, label names in `by (...)`-style lists, label matchers, strings, numbers,
/// durations or Grafana variables.
fn metric_names(expr: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "atan2",
        "inf",
        "nan",
    ];
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let next_non_space = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    // The index just past the bracket closing the one at `i`, skipping quoted strings.
    let skip_group = |i: usize, open: char, close: char| {
        let mut depth = 0;
        let mut j = i;
        while j < chars.len() {
            match chars[j] {
                '"' | '\'' | '`' => {
                    let quote = chars[j];
                    j += 1;
                    while j < chars.len() && chars[j] != quote {
                        j += if chars[j] == '\\' { 2 } else { 1 };
                    }
                }
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return j + 1;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        chars.len()
    };
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                let mut j = i + 1;
                while j < chars.len() && chars[j] != c {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
                i = j + 1;
            }
            '{' => i = skip_group(i, '{', '}'),
            '[' => i = skip_group(i, '[', ']'),
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '$' => {
                i += 1;
                if i < chars.len() && chars[i] == '{' {
                    i = skip_group(i, '{', '}');
                } else {
                    while i < chars.len() && is_ident(chars[i]) {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                while i < chars.len() && (is_ident(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = next_non_space(i);
                let lower = word.to_ascii_lowercase();
                if LABEL_LISTS.contains(&lower.as_str()) {
                    if chars.get(next) == Some(&'(') {
                        i = skip_group(next, '(', ')');
                    }
                } else if KEYWORDS.contains(&lower.as_str()) || chars.get(next) == Some(&'(') {
                    // An operator or a function.
                } else {
                    names.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Why `name` may not appear in a rule or a dashboard, if it may not.
fn unknown_metric(name: &str) -> Option<String> {
    if EXTERNAL_METRICS.contains(&name) || SLOTGATE_METRICS.iter().any(|(m, _)| *m == name) {
        return None;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if SLOTGATE_METRICS.contains(&(base, MetricType::Histogram)) {
                return None;
            }
        }
    }
    Some(format!("{name} is not a metric slotgate exports"))
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (job, le) (rate(slotgate_request_duration_seconds_bucket{job=~"$job", instance=~"${instance}"}[$__rate_interval]))) > 0.05"#
        ),
        ["slotgate_request_duration_seconds_bucket"]
    );
    assert_eq!(
        metric_names(
            "sum(rate(a_total[5m] offset 1h)) by (node) / on (node) group_left(role) b == bool 1e3 # c"
        ),
        ["a_total", "b"]
    );
    assert_eq!(
        metric_names(
            r#"max by (namespace, pod) (kube_pod_container_status_ready{container="slotgate"}) == 0"#
        ),
        ["kube_pod_container_status_ready"]
    );
    assert_eq!(
        unknown_metric("slotgate_request_duration_seconds_count"),
        None
    );
    assert!(unknown_metric("slotgate_slot_covered").is_some());
    assert!(unknown_metric("slotgate_requests_total_bucket").is_some());
}

fn check_expr(p: &mut Problems, expr: &str, origin: &str) -> Vec<String> {
    let names = metric_names(expr);
    p.check(!names.is_empty(), || {
        format!("{origin}: {expr:?} reads no metric")
    });
    for name in &names {
        if let Some(why) = unknown_metric(name) {
            p.push(format!("{origin}: {why} (in {expr:?})"));
        }
    }
    names
}

/// The alerts every rule set must have, each with a metric its expression must read.
const REQUIRED_ALERTS: &[(&str, &str)] = &[
    ("SlotgateSlotsNotCovered", "slotgate_slots_covered"),
    ("SlotgateBackendErrors", "slotgate_backend_errors_total"),
    (
        "SlotgateHighLatency",
        "slotgate_request_duration_seconds_bucket",
    ),
    (
        "SlotgateTopologyRefreshFailing",
        "slotgate_topology_refreshes_total",
    ),
];

fn check_rule_groups(
    p: &mut Problems,
    groups: &Value,
    origin: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut alerts = BTreeMap::new();
    let Some(groups) = groups.as_array().filter(|g| !g.is_empty()) else {
        p.push(format!("{origin}: no rule groups"));
        return alerts;
    };
    for group in groups {
        let group_name = group["name"].as_str().unwrap_or("");
        p.check(!group_name.is_empty(), || {
            format!("{origin}: a group has no name")
        });
        for rule in group["rules"].as_array().into_iter().flatten() {
            let alert = rule["alert"].as_str().unwrap_or("");
            let at = format!("{origin}, group {group_name:?}, alert {alert:?}");
            p.check(!alert.is_empty(), || {
                format!("{at}: no alert name (recording rules?)")
            });
            p.check(rule["labels"]["severity"].is_string(), || {
                format!("{at}: no severity label")
            });
            p.check(rule["annotations"]["summary"].is_string(), || {
                format!("{at}: no summary annotation")
            });
            match rule["expr"].as_str() {
                Some(expr) => {
                    let names = check_expr(p, expr, &at);
                    alerts.insert(alert.to_owned(), names);
                }
                None => p.push(format!("{at}: no expr")),
            }
        }
    }
    for (alert, metric) in REQUIRED_ALERTS {
        p.check(
            alerts
                .get(*alert)
                .is_some_and(|names| names.iter().any(|n| n == metric)),
            || format!("{origin}: no alert {alert} reading {metric}"),
        );
    }
    alerts
}

#[test]
fn alert_rules_read_only_slotgate_metrics_and_agree() {
    let mut p = Problems::default();
    let plain = yaml_file(PROMETHEUS_RULES).pop().unwrap_or(Value::Null);
    check_rule_groups(&mut p, &plain["groups"], PROMETHEUS_RULES);

    let crd = yaml_file(PROMETHEUS_RULE_CRD).pop().unwrap_or(Value::Null);
    let alerts = check_rule_groups(&mut p, &crd["spec"]["groups"], PROMETHEUS_RULE_CRD);
    p.check(
        alerts
            .values()
            .flatten()
            .any(|n| n == "kube_pod_container_status_ready"),
        || format!("{PROMETHEUS_RULE_CRD}: no alert on a slotgate container not ready"),
    );
    // The operator's copy holds the plain file's groups unchanged (plus its Kubernetes ones).
    for group in plain["groups"].as_array().into_iter().flatten() {
        let same = crd["spec"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|g| g == group);
        p.check(same, || {
            format!(
                "{PROMETHEUS_RULE_CRD}: group {} differs from {PROMETHEUS_RULES}'s",
                group["name"]
            )
        });
    }
    p.finish("alert rules");
}

#[test]
fn prometheus_scrape_config_targets_the_metrics_port() {
    let mut p = Problems::default();
    let config = yaml_file(PROMETHEUS_CONFIG).pop().unwrap_or(Value::Null);
    let dir = Path::new(PROMETHEUS_CONFIG).parent().unwrap();
    for rule_file in config["rule_files"].as_array().into_iter().flatten() {
        let path = dir.join(rule_file.as_str().unwrap_or(""));
        p.check(Path::new(ROOT).join(&path).is_file(), || {
            format!(
                "{PROMETHEUS_CONFIG}: rule file {} does not exist",
                path.display()
            )
        });
    }
    let jobs = config["scrape_configs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    p.check(jobs.iter().any(|j| j["static_configs"].is_array()), || {
        format!("{PROMETHEUS_CONFIG}: no static_configs example")
    });
    p.check(
        jobs.iter().any(|j| j["kubernetes_sd_configs"].is_array()),
        || format!("{PROMETHEUS_CONFIG}: no kubernetes_sd_configs example"),
    );
    for job in &jobs {
        let name = &job["job_name"];
        p.check(name.is_string(), || {
            format!("{PROMETHEUS_CONFIG}: a job has no job_name")
        });
        for target in job["static_configs"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["targets"].as_array().cloned().unwrap_or_default())
        {
            let target = target.as_str().unwrap_or("");
            p.check(socket_port(target) == Some(METRICS_PORT), || {
                format!(
                    "{PROMETHEUS_CONFIG}, job {name}: target {target:?} is not on port \
                     {METRICS_PORT}"
                )
            });
        }
    }
    p.finish("Prometheus config");
}

/// PromQL inside a Grafana variable query: `label_values(expr, label)` or `query_result(expr)`.
fn variable_expr(query: &str) -> Option<&str> {
    let query = query.trim();
    if let Some(inner) = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
    {
        // One argument is a label name alone; two are a series selector and a label.
        return inner.rsplit_once(',').map(|(expr, _label)| expr.trim());
    }
    query
        .strip_prefix("query_result(")
        .and_then(|q| q.strip_suffix(')'))
}

#[test]
fn grafana_dashboard_reads_only_slotgate_metrics() {
    let mut p = Problems::default();
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD))
        .unwrap_or_else(|e| panic!("{DASHBOARD}: not valid JSON: {e}"));
    p.check(
        dashboard["uid"].is_string() && dashboard["title"].is_string(),
        || format!("{DASHBOARD}: no uid or title"),
    );
    let mut used = BTreeSet::new();
    let mut ids = BTreeSet::new();
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        let title = panel["title"].as_str().unwrap_or("");
        let at = format!("{DASHBOARD}, panel {title:?}");
        p.check(ids.insert(panel["id"].to_string()), || {
            format!("{at}: id {} is used twice", panel["id"])
        });
        p.check(panel["gridPos"].is_object(), || format!("{at}: no gridPos"));
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        p.check(!targets.is_empty(), || format!("{at}: no query"));
        for target in &targets {
            p.check(target["datasource"]["uid"] == "${datasource}", || {
                format!("{at}: a query does not use the ${{datasource}} variable")
            });
            match target["expr"].as_str() {
                Some(expr) => used.extend(check_expr(&mut p, expr, &at)),
                None => p.push(format!("{at}: a query has no expr")),
            }
        }
    }
    let variables = dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    p.check(variables.iter().any(|v| v["type"] == "datasource"), || {
        format!("{DASHBOARD}: no data source variable")
    });
    for v in &variables {
        let at = format!("{DASHBOARD}, variable {}", v["name"]);
        for query in [&v["definition"], &v["query"], &v["query"]["query"]] {
            if let Some(expr) = query.as_str().and_then(variable_expr) {
                used.extend(check_expr(&mut p, expr, &at));
            }
        }
    }
    // Built on all of them: a metric nobody can see is a metric nobody watches.
    for (metric, kind) in SLOTGATE_METRICS {
        let shown = used.iter().any(|u| {
            u == metric
                || (*kind == MetricType::Histogram
                    && u.strip_prefix(metric)
                        .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s)))
        });
        p.check(shown, || format!("{DASHBOARD}: no panel shows {metric}"));
    }
    p.finish("Grafana dashboard");
}

// ---------------------------------------------------------------------------------------------
// systemd

#[test]
fn systemd_unit_reloads_and_is_locked_down() {
    let mut p = Problems::default();
    let mut keys: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for (n, line) in read(SYSTEMD_UNIT).lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        match line.split_once('=') {
            Some((key, value)) if !section.is_empty() => keys
                .entry((section.clone(), key.trim().to_owned()))
                .or_default()
                .push(value.trim().to_owned()),
            _ => p.push(format!(
                "{SYSTEMD_UNIT}:{}: not a key=value line in a section",
                n + 1
            )),
        }
    }
    let get = |section: &str, key: &str| keys.get(&(section.to_owned(), key.to_owned()));
    let required: &[(&str, &str, &str)] = &[
        ("Unit", "After", "network-online.target"),
        ("Unit", "Wants", "network-online.target"),
        ("Service", "ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Service", "DynamicUser", "yes"),
        ("Service", "CapabilityBoundingSet", ""),
        ("Service", "AmbientCapabilities", ""),
        ("Service", "NoNewPrivileges", "yes"),
        (
            "Service",
            "RestrictAddressFamilies",
            "AF_INET AF_INET6 AF_UNIX",
        ),
        ("Service", "ProtectSystem", "strict"),
        ("Service", "ProtectHome", "yes"),
        ("Service", "PrivateTmp", "yes"),
        ("Service", "PrivateDevices", "yes"),
        ("Service", "ProtectKernelTunables", "yes"),
        ("Service", "ProtectKernelModules", "yes"),
        ("Service", "ProtectControlGroups", "yes"),
        ("Service", "RestrictNamespaces", "yes"),
        ("Service", "LockPersonality", "yes"),
        ("Service", "MemoryDenyWriteExecute", "yes"),
        ("Service", "SystemCallArchitectures", "native"),
        ("Service", "SystemCallFilter", "@system-service"),
        ("Install", "WantedBy", "multi-user.target"),
    ];
    for (section, key, value) in required {
        p.check(
            get(section, key).is_some_and(|v| v.iter().any(|v| v == value)),
            || {
                format!(
                    "{SYSTEMD_UNIT}: [{section}] has no {key}={value} (has {:?})",
                    get(section, key)
                )
            },
        );
    }
    p.check(
        get("Service", "ExecStart").is_some_and(|v| v.iter().any(|s| s.contains("--config "))),
        || format!("{SYSTEMD_UNIT}: ExecStart passes no --config"),
    );
    // Only ports above 1024 are used: nothing may grant a capability back.
    for key in ["User", "Group"] {
        p.check(get("Service", key).is_none(), || {
            format!("{SYSTEMD_UNIT}: {key}= set beside DynamicUser=yes")
        });
    }
    p.finish("systemd unit");
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

/// One build stage: its FROM line and its instructions, continuation lines joined.
struct Stage {
    image: String,
    name: Option<String>,
    instructions: Vec<(String, String)>,
}

struct Copy {
    from: Option<String>,
    sources: Vec<String>,
    dest: String,
}

impl Stage {
    fn args<'a>(&'a self, keyword: &str) -> impl Iterator<Item = &'a str> + 'a {
        let keyword = keyword.to_owned();
        self.instructions
            .iter()
            .filter(move |(k, _)| *k == keyword)
            .map(|(_, a)| a.as_str())
    }

    fn arg(&self, keyword: &str) -> Option<&str> {
        self.args(keyword).last()
    }

    /// The JSON array of an exec-form instruction, or None for the shell form.
    fn exec_form(&self, keyword: &str) -> Option<Vec<String>> {
        serde_json::from_str(self.arg(keyword)?).ok()
    }

    fn copies(&self) -> Vec<Copy> {
        self.args("COPY")
            .map(|args| {
                let mut from = None;
                let mut words: Vec<String> = Vec::new();
                for word in args.split_whitespace() {
                    match word.strip_prefix("--from=") {
                        Some(stage) => from = Some(stage.to_owned()),
                        None if word.starts_with("--") => {}
                        None => words.push(word.to_owned()),
                    }
                }
                let dest = words.pop().unwrap_or_default();
                Copy {
                    from,
                    sources: words,
                    dest,
                }
            })
            .collect()
    }

    fn env(&self) -> BTreeMap<String, String> {
        self.args("ENV")
            .flat_map(str::split_whitespace)
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

struct Dockerfile {
    stages: Vec<Stage>,
}

impl Dockerfile {
    fn parse(text: &str) -> Self {
        let mut logical = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            // Comment lines end nothing: Docker drops them, even inside a continued instruction.
            if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
                continue;
            }
            match trimmed.strip_suffix('\\') {
                Some(part) => {
                    current.push_str(part);
                    current.push(' ');
                }
                None => {
                    current.push_str(trimmed);
                    logical.push(std::mem::take(&mut current));
                }
            }
        }
        let mut stages: Vec<Stage> = Vec::new();
        for line in logical {
            let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
            let keyword = keyword.to_ascii_uppercase();
            let args = args.trim().to_owned();
            if keyword == "FROM" {
                let words: Vec<&str> = args
                    .split_whitespace()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                stages.push(Stage {
                    image: words.first().copied().unwrap_or_default().to_owned(),
                    name: match words.as_slice() {
                        [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
                            Some((*name).to_owned())
                        }
                        _ => None,
                    },
                    instructions: Vec::new(),
                });
            } else {
                stages
                    .last_mut()
                    .unwrap_or_else(|| panic!("Dockerfile: {keyword} before any FROM"))
                    .instructions
                    .push((keyword, args));
            }
        }
        Dockerfile { stages }
    }
}

/// `major.minor` of a version such as "1.85" or "1.85.1".
fn minor_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[test]
fn dockerfile_builds_a_small_non_root_image_with_a_healthcheck() {
    let mut p = Problems::default();
    let file = Dockerfile::parse(&read("Dockerfile"));
    let manifest = read("Cargo.toml");
    p.check(file.stages.len() >= 2, || {
        "Dockerfile: not a multi-stage build".to_owned()
    });
    let (Some(build), Some(runtime)) = (file.stages.first(), file.stages.last()) else {
        panic!("Dockerfile: no FROM");
    };
    let build_name = build.name.clone().unwrap_or_default();

    // Build stage: a Rust at least as new as rust-version, every file cargo reads, a stripped
    // binary.
    let rust_version = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version"))
        .and_then(|l| l.split('"').nth(1))
        .and_then(minor_version)
        .expect("Cargo.toml: no rust-version");
    let builder = build
        .image
        .strip_prefix("rust:")
        .and_then(|tag| minor_version(tag.split('-').next().unwrap_or("")));
    p.check(builder.is_some_and(|v| v >= rust_version), || {
        format!(
            "Dockerfile: the build stage's image {} is no Rust >= {rust_version:?}",
            build.image
        )
    });
    let copied: Vec<String> = build
        .copies()
        .into_iter()
        .filter(|c| c.from.is_none())
        .flat_map(|c| c.sources)
        .collect();
    let covered = |path: &str| {
        copied.iter().any(|s| {
            s == "." || path == s || path.starts_with(&format!("{}/", s.trim_end_matches('/')))
        })
    };
    let mut needed = vec![
        "Cargo.toml".to_owned(),
        "Cargo.lock".to_owned(),
        "src/main.rs".to_owned(),
    ];
    // Cargo reads every declared target before building any: a missing bench file fails the build.
    let mut in_bench = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bench = line == "[[bench]]";
        } else if let (true, Some(name)) = (in_bench, line.strip_prefix("name = \"")) {
            needed.push(format!("benches/{}.rs", name.trim_end_matches('"')));
        }
    }
    for path in &needed {
        p.check(covered(path), || {
            format!("Dockerfile: the build stage does not copy {path}, which cargo needs")
        });
    }
    let stripped = build
        .env()
        .get("CARGO_PROFILE_RELEASE_STRIP")
        .is_some_and(|v| v == "symbols" || v == "true")
        || build.args("RUN").any(|r| r.contains("strip "));
    p.check(stripped, || {
        "Dockerfile: the binary is not stripped".to_owned()
    });
    p.check(
        build.args("RUN").any(|r| {
            r.contains("cargo build") && r.contains("--release") && r.contains("--locked")
        }),
        || "Dockerfile: no `cargo build --release --locked`".to_owned(),
    );

    // Runtime stage: small, the binary only, a numeric non-root user, the ports, a health check.
    p.check(!runtime.image.starts_with("rust"), || {
        format!(
            "Dockerfile: the runtime stage runs on the build image {}",
            runtime.image
        )
    });
    for copy in runtime.copies() {
        match &copy.from {
            Some(from) => p.check(
                *from == build_name && copy.sources.iter().all(|s| s.contains("/target/release/")),
                || {
                    format!(
                        "Dockerfile: the runtime stage copies {:?} from {from}",
                        copy.sources
                    )
                },
            ),
            None => p.check(
                copy.sources.iter().all(|s| !s.starts_with("target")),
                || {
                    format!(
                        "Dockerfile: copies build output {:?} from the context",
                        copy.sources
                    )
                },
            ),
        }
    }
    let user = runtime.arg("USER").unwrap_or("");
    let ids: Vec<Option<u32>> = user.split(':').map(|id| id.parse().ok()).collect();
    p.check(
        !ids.is_empty() && ids.iter().all(|id| id.is_some_and(|id| id >= 1000)),
        || format!("Dockerfile: USER {user:?} is not a numeric non-root uid:gid"),
    );
    let exposed: BTreeSet<u64> = runtime
        .args("EXPOSE")
        .flat_map(str::split_whitespace)
        .filter_map(|p| p.trim_end_matches("/tcp").parse().ok())
        .collect();
    p.check(
        exposed == BTreeSet::from([REDIS_PORT, METRICS_PORT]),
        || format!("Dockerfile: EXPOSE {exposed:?}, expected {REDIS_PORT} and {METRICS_PORT}"),
    );
    let health = runtime.arg("HEALTHCHECK").unwrap_or("");
    p.check(
        health.contains(" CMD ") || health.starts_with("CMD "),
        || "Dockerfile: no HEALTHCHECK CMD in the runtime stage".to_owned(),
    );
    p.check(
        health.contains(&METRICS_PORT.to_string())
            && (health.contains("/livez") || health.contains("/healthz")),
        || format!("Dockerfile: the HEALTHCHECK does not ask /livez or /healthz on {METRICS_PORT}"),
    );
    // debian:*-slim has bash, but no curl or wget unless the runtime stage installs them.
    for tool in ["curl", "wget"] {
        p.check(
            !health.contains(tool) || runtime.args("RUN").any(|r| r.contains(tool)),
            || format!("Dockerfile: the HEALTHCHECK runs {tool}, which the runtime image lacks"),
        );
    }
    // The image's own config listens where the image says, on every interface.
    let image = image();
    p.check(
        image
            .entrypoint
            .first()
            .is_some_and(|b| b.ends_with("/slotgate")),
        || {
            format!(
                "Dockerfile: ENTRYPOINT {:?} does not run slotgate",
                image.entrypoint
            )
        },
    );
    match parse_config_with_seed(&image.config_text, IMAGE_CONFIG) {
        Ok(config) => {
            p.check(
                !is_loopback(&config.listen) && socket_port(&config.listen) == Some(REDIS_PORT),
                || {
                    format!(
                        "{IMAGE_CONFIG}: listen {:?} is unreachable from outside the container \
                         or not on {REDIS_PORT}",
                        config.listen
                    )
                },
            );
            let metrics = config.metrics_listen.unwrap_or_default();
            p.check(
                !is_loopback(&metrics) && socket_port(&metrics) == Some(METRICS_PORT),
                || {
                    format!(
                        "{IMAGE_CONFIG}: metrics_listen {metrics:?} is unreachable from outside \
                         the container or not on {METRICS_PORT}"
                    )
                },
            );
        }
        Err(e) => p.push(e),
    }
    p.check(config_names_no_seed(&image.config_text), || {
        format!("{IMAGE_CONFIG}: names a seed, which no user's cluster has")
    });
    p.finish("Dockerfile");
}

fn config_names_no_seed(text: &str) -> bool {
    yaml_documents(text, IMAGE_CONFIG)
        .first()
        .is_none_or(|doc| doc.get("seeds").is_none())
}

#[test]
fn dockerignore_keeps_build_output_out_and_what_the_build_copies_in() {
    let mut p = Problems::default();
    let patterns: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/').to_owned())
        .collect();
    p.check(patterns.iter().all(|l| !l.starts_with('!')), || {
        ".dockerignore: exceptions (!) are beyond this check".to_owned()
    });
    // Root-relative patterns with `*` matching within one path component, as Docker's.
    let ignored = |path: &str| {
        patterns.iter().any(|pattern| {
            let pat: Vec<&str> = pattern.split('/').collect();
            let parts: Vec<&str> = path.split('/').collect();
            parts.len() >= pat.len() && pat.iter().zip(&parts).all(|(p, s)| glob(p, s))
        })
    };
    for path in ["target", ".git"] {
        p.check(ignored(path), || {
            format!(".dockerignore: does not ignore {path}/")
        });
    }
    let file = Dockerfile::parse(&read("Dockerfile"));
    for stage in &file.stages {
        for copy in stage.copies().into_iter().filter(|c| c.from.is_none()) {
            for source in copy.sources {
                p.check(!ignored(&source), || {
                    format!(".dockerignore: ignores {source}, which the Dockerfile copies")
                });
            }
        }
    }
    p.finish(".dockerignore");
}

/// `pattern` with `*` (any run of characters) matches all of `text`.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len()).any(|i| {
                    text.is_char_boundary(head.len() + i) && glob(tail, &text[head.len() + i..])
                })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Across files

#[test]
fn deploy_readme_describes_every_file_and_no_file_uses_the_old_port() {
    let mut p = Problems::default();
    let readme = read("deploy/README.md");
    for file in deploy_files() {
        let relative = file.strip_prefix("deploy/").unwrap();
        p.check(relative == "README.md" || readme.contains(relative), || {
            format!("deploy/README.md: does not describe {relative}")
        });
    }
    p.check(readme.contains("scripts/local-cluster.sh"), || {
        "deploy/README.md: does not point at scripts/local-cluster.sh".to_owned()
    });
    let mut checked = deploy_files();
    checked.extend(["Dockerfile".to_owned(), IMAGE_CONFIG.to_owned()]);
    for file in checked {
        let text = read(&file);
        p.check(!text.contains("9121"), || {
            format!(
                "{file}: mentions 9121, redis_exporter's port; slotgate's metrics port is \
                 {METRICS_PORT}"
            )
        });
    }
    p.finish("deploy/ as a whole");
}
