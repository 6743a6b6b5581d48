use super::interpolate::interpolate_str;
use super::values::{memory_quantity, seconds};
use super::*;
use base64::Engine as _;
use proptest::prelude::*;

fn env(k: &str) -> Option<String> {
    match k {
        "TAG" => Some("1.2".into()),
        "EMPTY" => Some(String::new()),
        "HOME" => Some("/home/u".into()),
        "FROM_SHELL" => Some("shell-value".into()),
        _ => None,
    }
}

fn conv(yaml: &str) -> Result<Stack> {
    let doc: Value = serde_yaml::from_str(yaml).unwrap();
    convert(&doc, "demo", Path::new("/srv/app"), &env)
}

fn obj<'a>(s: &'a Stack, kind: &str, name: &str) -> &'a Value {
    s.objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:#?}", s.objects))
}

const FULL: &str = r#"
version: "3.8"
services:
  web:
    image: berth/busybox:${TAG}
    command: httpd -f -p 80 -h "/var/www html"
    environment:
      - GREETING=hello
      - FROM_SHELL
      - NOT_SET
    ports:
      - "30080:80"
      - target: 53
        published: 30053
        protocol: udp
    volumes:
      - data:/var/www
      - ./conf:/etc/conf:ro
      - /scratch
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://localhost/"]
      interval: 5s
      timeout: 2s
      retries: 3
      start_period: 1m
    deploy:
      replicas: 3
      labels: {tier: front}
      resources:
        limits: {cpus: "0.5", memory: 64M}
        reservations: {memory: 16m}
      update_config: {parallelism: 2, order: start-first}
      placement:
        constraints: [node.labels.disk == ssd]
    stop_grace_period: 1m30s
    build: .
    depends_on: [db]
  db:
    image: berth/busybox:latest
    entrypoint: ["sleep"]
    command: ["3600"]
volumes:
  data: {}
"#;

#[test]
fn full_service_maps_to_deployment_service_and_claim() {
    let s = conv(FULL).unwrap();
    let kinds: Vec<_> = s
        .objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "PersistentVolumeClaim",
            "Service",
            "Service",
            "Deployment",
            "Deployment"
        ]
    );
    assert_eq!(
        s.warnings,
        ["Ignoring unsupported options: build, depends_on"]
    );
    assert_eq!(
        obj(&s, "Namespace", "demo")["metadata"]["labels"][STACK_LABEL],
        "demo"
    );
    assert_eq!(
        obj(&s, "PersistentVolumeClaim", "data")["metadata"]["namespace"],
        "demo"
    );

    let d = obj(&s, "Deployment", "web");
    assert_eq!(d["metadata"]["namespace"], "demo");
    assert_eq!(d["metadata"]["labels"]["tier"], "front");
    assert_eq!(d["spec"]["replicas"], 3);
    let sel = &d["spec"]["selector"]["matchLabels"];
    assert_eq!(sel, &d["spec"]["template"]["metadata"]["labels"]);
    assert_eq!(sel[SERVICE_LABEL], "web");
    assert_eq!(
        d["spec"]["strategy"]["rollingUpdate"],
        json!({"maxSurge": 2, "maxUnavailable": 0})
    );
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["terminationGracePeriodSeconds"], 90);
    assert_eq!(pod["nodeSelector"], json!({"disk": "ssd"}));
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "berth/busybox:1.2");
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        c["args"],
        json!(["httpd", "-f", "-p", "80", "-h", "/var/www html"])
    );
    assert!(c.get("command").is_none());
    assert_eq!(
        c["env"],
        json!([{"name": "FROM_SHELL", "value": "shell-value"}, {"name": "GREETING", "value": "hello"}])
    );
    assert_eq!(
        c["resources"],
        json!({"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"memory": "16Mi"}})
    );
    let probe = json!({"exec": {"command": ["wget", "-qO-", "http://localhost/"]},
        "periodSeconds": 5, "timeoutSeconds": 2, "initialDelaySeconds": 60, "failureThreshold": 3});
    assert_eq!(c["readinessProbe"], probe);
    assert_eq!(c["livenessProbe"], probe);
    assert_eq!(
        pod["volumes"],
        json!([
            {"name": "vol-0", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "vol-1", "hostPath": {"path": "/srv/app/conf"}},
            {"name": "vol-2", "emptyDir": {}},
        ])
    );
    assert_eq!(
        obj(&s, "Namespace", "demo")["metadata"]["labels"][POD_SECURITY_LABEL],
        "privileged",
        "a bind mount needs a namespace that allows hostPath"
    );
    assert_eq!(
        c["volumeMounts"][1],
        json!({"name": "vol-1", "mountPath": "/etc/conf", "readOnly": true})
    );

    let svc = obj(&s, "Service", "web");
    assert_eq!(svc["spec"]["type"], "NodePort");
    assert_eq!(svc["spec"]["selector"], *sel);
    assert_eq!(
        svc["spec"]["ports"],
        json!([
            {"name": "tcp-80", "protocol": "TCP", "port": 80, "targetPort": 80, "nodePort": 30080},
            {"name": "udp-53", "protocol": "UDP", "port": 53, "targetPort": 53, "nodePort": 30053},
        ])
    );
    let db = obj(&s, "Deployment", "db");
    assert_eq!(db["spec"]["replicas"], 1);
    let dbc = &db["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(dbc["command"], json!(["sleep"]));
    assert_eq!(dbc["args"], json!(["3600"]));
    // No ports: a headless Service still gives the name, resolving to the tasks.
    let dbs = obj(&s, "Service", "db");
    assert_eq!(dbs["spec"]["clusterIP"], "None");
    assert_eq!(dbs["spec"]["ports"], json!([]));
}

#[test]
fn global_mode_makes_a_daemon_set_with_the_deployments_template_and_service() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = |mode: &str| {
        format!(
            r#"
services:
  agent:
    image: berth/busybox:${{TAG}}
    command: ["sleep", "3600"]
    labels: {{role: agent}}
    configs: [agent_conf]
    ports: [{{target: 9100, published: 9100, mode: host}}, "30090:90"]
    deploy:
      mode: {mode}
      labels: {{tier: infra}}
      placement:
        constraints: [node.labels.disk == ssd]
configs:
  agent_conf: {{content: "level=debug"}}
"#
        )
    };
    let parse = |mode: &str| {
        let doc: Value = serde_yaml::from_str(&yaml(mode)).unwrap();
        convert(&doc, "demo", dir.path(), &env).unwrap()
    };
    let (global, replicated) = (parse("global"), parse("replicated"));
    let ds = obj(&global, "DaemonSet", "agent");
    let d = obj(&replicated, "Deployment", "agent");
    assert!(!global.objects.iter().any(|o| o["kind"] == "Deployment"));
    assert_eq!(ds["apiVersion"], "apps/v1");
    assert_eq!(ds["metadata"], d["metadata"]);
    assert_eq!(ds["spec"]["selector"], d["spec"]["selector"]);
    assert_eq!(ds["spec"]["template"], d["spec"]["template"]);
    assert!(ds["spec"]["template"]["metadata"]["annotations"][FILES_HASH].is_string());
    assert_eq!(
        ds["spec"]["template"]["metadata"]["annotations"]["role"],
        "agent"
    );
    assert_eq!(ds["metadata"]["labels"]["tier"], "infra");
    assert!(ds["spec"].get("replicas").is_none(), "{ds}");
    assert!(ds["spec"].get("updateStrategy").is_none(), "{ds}");
    assert_eq!(
        obj(&global, "Service", "agent"),
        obj(&replicated, "Service", "agent")
    );
    assert_eq!(global.services(), BTreeSet::from(["agent".to_string()]));
    let kinds: Vec<_> = global.objects.iter().map(|o| o["kind"].clone()).collect();
    assert_eq!(kinds, ["Namespace", "ConfigMap", "Service", "DaemonSet"]);
    assert_eq!(global.warnings, replicated.warnings);
}

#[test]
fn update_config_maps_to_the_daemon_set_update_strategy() {
    for (update, want) in [
        ("{}", json!({"maxSurge": 0, "maxUnavailable": 1})),
        (
            "{parallelism: 2}",
            json!({"maxSurge": 0, "maxUnavailable": 2}),
        ),
        (
            "{parallelism: 0, order: stop-first}",
            json!({"maxSurge": 0, "maxUnavailable": "100%"}),
        ),
        // Kubernetes rejects a surge unless maxUnavailable is 0.
        (
            "{parallelism: 3, order: start-first}",
            json!({"maxSurge": 1, "maxUnavailable": 0}),
        ),
    ] {
        let s = conv(&format!(
            "services:\n  a:\n    image: x\n    deploy: {{mode: global, update_config: {update}}}\n"
        ))
        .unwrap();
        assert_eq!(
            obj(&s, "DaemonSet", "a")["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": want}),
            "{update}"
        );
    }
    let e = conv(
        "services:\n  a:\n    image: x\n    deploy: {mode: global, update_config: {order: sideways}}\n",
    )
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("update_config.order sideways"),
        "{e:#}"
    );
    // `replicas: ~` is no count at all, as in Docker.
    let s =
        conv("services:\n  a:\n    image: x\n    deploy: {mode: global, replicas: ~}\n").unwrap();
    assert!(obj(&s, "DaemonSet", "a")["spec"].get("replicas").is_none());
}

#[test]
fn ports_outside_the_node_port_range_are_allocated_by_the_server_with_a_warning() {
    let s = conv("services:\n  web:\n    image: x\n    ports: [\"8080:80\", \"9000\"]\n").unwrap();
    let svc = obj(&s, "Service", "web");
    assert_eq!(svc["spec"]["type"], "NodePort");
    assert!(svc["spec"]["ports"][0].get("nodePort").is_none());
    assert_eq!(svc["spec"]["ports"][1]["port"], 9000);
    assert_eq!(s.warnings.len(), 1);
    assert!(
        s.warnings[0].contains("published port 8080 is outside the node port range"),
        "{:?}",
        s.warnings
    );
}

#[test]
fn host_mode_ports_are_host_ports_of_the_pods() {
    let s = conv(
        "services:\n  web:\n    image: x\n    ports: [{target: 80, published: 8080, mode: host}]\n",
    )
    .unwrap();
    let d = obj(&s, "Deployment", "web");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP", "hostPort": 8080}])
    );
    let svc = obj(&s, "Service", "web");
    assert!(
        svc["spec"].get("type").is_none(),
        "not on every node: {svc}"
    );
    assert!(svc["spec"]["ports"][0].get("nodePort").is_none());
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn expose_gives_a_cluster_ip_service_and_dnsrr_a_headless_one() {
    let s = conv("services:\n  db:\n    image: x\n    expose: [5432]\n").unwrap();
    let svc = obj(&s, "Service", "db");
    assert!(svc["spec"].get("type").is_none());
    assert!(svc["spec"].get("clusterIP").is_none());
    assert_eq!(svc["spec"]["ports"][0]["port"], 5432);
    let s = conv(
        "services:\n  db:\n    image: x\n    expose: [5432]\n    deploy: {endpoint_mode: dnsrr}\n",
    )
    .unwrap();
    assert_eq!(obj(&s, "Service", "db")["spec"]["clusterIP"], "None");
    let e = conv("services:\n  db:\n    image: x\n    ports: [\"30001:1\"]\n    deploy: {endpoint_mode: dnsrr}\n")
        .unwrap_err();
    assert!(format!("{e:#}").contains("dnsrr"), "{e:#}");
}

#[test]
fn network_modes_map_to_host_network_and_the_none_annotation() {
    let s = conv("services:\n  a:\n    image: x\n    network_mode: host\n  b:\n    image: x\n    network_mode: none\n")
        .unwrap();
    assert_eq!(
        obj(&s, "Deployment", "a")["spec"]["template"]["spec"]["hostNetwork"],
        true
    );
    assert_eq!(
        obj(&s, "Deployment", "b")["spec"]["template"]["metadata"]["annotations"]
            ["berth.dev/network"],
        "none"
    );
    let ns = &obj(&s, "Namespace", "demo")["metadata"]["labels"];
    assert_eq!(
        ns[POD_SECURITY_LABEL], "privileged",
        "host network needs a namespace that allows it"
    );
    let s = conv("services:\n  a:\n    image: x\n    network_mode: bridge\n").unwrap();
    let ns = &obj(&s, "Namespace", "demo")["metadata"]["labels"];
    assert!(
        ns.get(POD_SECURITY_LABEL).is_none(),
        "a stack without host access keeps the default level"
    );
    let pod = &obj(&s, "Deployment", "a")["spec"]["template"];
    assert!(
        pod["spec"].get("hostNetwork").is_none() && pod["metadata"].get("annotations").is_none()
    );
    let e = conv("services:\n  a:\n    image: x\n    network_mode: \"service:db\"\n").unwrap_err();
    assert!(
        format!("{e:#}").contains("network_mode service:db is not supported"),
        "{e:#}"
    );
}

#[test]
fn what_cannot_run_is_an_error_naming_the_service() {
    for (yaml, want) in [
        (
            "services:\n  web:\n    image: x\n    imgae: y\n",
            "service web: Additional property imgae is not allowed",
        ),
        ("services:\n  web:\n    build: .\n", "service web: no image"),
        (
            "services:\n  Web_1:\n    image: x\n",
            "service name \"Web_1\" is not valid",
        ),
        (
            "services:\n  web:\n    image: x\n    deploy: {mode: global, replicas: 2}\n",
            "service web: replicas can only be used with replicated mode",
        ),
        (
            "services:\n  web:\n    image: x\n    deploy: {mode: replicated-job}\n",
            "deploy.mode replicated-job is not supported (replicated or global)",
        ),
        (
            "services:\n  web:\n    image: x\n    ports: [\"8000-8001:80\"]\n",
            "port ranges",
        ),
        (
            "services:\n  web:\n    image: x\n    ports: [{target: 80, mode: host}]\n",
            "mode host needs a published port",
        ),
        (
            "services:\n  web:\n    image: x\n    volumes: [\"undeclared:/data\"]\n",
            "not declared",
        ),
        (
            "services:\n  web:\n    image: x\n    user: nobody\n",
            "numeric ids",
        ),
        ("services: {}\n", "defines no services"),
        (
            "servics:\n  web: {image: x}\n",
            "(root) Additional property servics",
        ),
        (
            "services:\n  web:\n    image: ${NOPE:?set NOPE to the image}\n",
            "required variable NOPE is missing a value: set NOPE to the image",
        ),
    ] {
        let e = format!("{:#}", conv(yaml).unwrap_err());
        assert!(e.contains(want), "{yaml}: {e}");
    }
    let doc: Value = serde_yaml::from_str("services:\n  web: {image: x}\n").unwrap();
    let e = convert(&doc, "My_Stack", Path::new("."), &env).unwrap_err();
    assert!(
        format!("{e:#}").contains("stack name \"My_Stack\""),
        "{e:#}"
    );
}

#[test]
fn interpolation_follows_compose() {
    let i = |s: &str| interpolate_str(s, &env);
    assert_eq!(i("a:${TAG}").unwrap(), "a:1.2");
    assert_eq!(i("a:$TAG-x").unwrap(), "a:1.2-x");
    assert_eq!(
        i("${NOPE:-dflt} ${EMPTY:-dflt} ${EMPTY-dflt} ${NOPE-d2}").unwrap(),
        "dflt dflt  d2"
    );
    assert_eq!(i("cost $$5").unwrap(), "cost $5");
    assert_eq!(i("${EMPTY?x}").unwrap(), "");
    assert!(i("${EMPTY:?needed}").is_err());
    assert!(i("${TAG").is_err());
    assert!(i("a $ b").is_err());
    assert_eq!(i("${NOPE}").unwrap(), "");
}

#[test]
fn later_files_override_earlier_ones_key_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yml");
    let b = dir.path().join("b.yml");
    std::fs::write(
        &a,
        "services:\n  web:\n    image: x\n    env_file: web.env\n    deploy: {replicas: 2}\n",
    )
    .unwrap();
    std::fs::write(&b, "services:\n  web:\n    deploy: {replicas: 5}\n").unwrap();
    std::fs::write(dir.path().join("web.env"), "# comment\nA=1\nFROM_SHELL\n\n").unwrap();
    let files = [a.display().to_string(), b.display().to_string()];
    let s = load(&files, "demo", &env).unwrap();
    let d = obj(&s, "Deployment", "web");
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "x");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "FROM_SHELL", "value": "shell-value"}])
    );
    assert_eq!(s.services(), BTreeSet::from(["web".to_string()]));
}

#[test]
fn sizes_and_durations() {
    assert_eq!(memory_quantity("512m").unwrap(), "512Mi");
    assert_eq!(memory_quantity("1G").unwrap(), "1Gi");
    assert_eq!(memory_quantity("100b").unwrap(), "100");
    assert_eq!(memory_quantity("2048").unwrap(), "2048");
    assert!(memory_quantity("lots").is_err());
    assert_eq!(seconds(&json!("1m30s"), "x").unwrap(), 90);
    assert_eq!(seconds(&json!("500ms"), "x").unwrap(), 1);
    assert_eq!(seconds(&json!(7), "x").unwrap(), 7);
    assert!(seconds(&json!("soon"), "x").is_err());
}

#[test]
fn shell_splitting() {
    assert_eq!(
        split_words(r#"sh -c 'echo "hi there"' a\ b"#).unwrap(),
        ["sh", "-c", "echo \"hi there\"", "a b"]
    );
    assert_eq!(split_words(r#"x "a\"b" '' "#).unwrap(), ["x", "a\"b", ""]);
    assert!(split_words("'open").is_err());
    assert!(split_words("\"open").is_err());
    assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
}

/// Quotes a word the way a user would to keep it one word.
fn quote(w: &str) -> String {
    format!("'{}'", w.replace('\'', r"'\''"))
}

proptest! {
    #[test]
    fn quoted_words_split_back(words in proptest::collection::vec("[ -~\t]{0,12}", 0..6)) {
        let line: Vec<String> = words.iter().map(|w| quote(w)).collect();
        prop_assert_eq!(split_words(&line.join(" ")).unwrap(), words);
    }
}

#[test]
fn configs_and_secrets_become_objects_mounted_where_swarm_puts_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.conf"), "port=80\n").unwrap();
    std::fs::write(dir.path().join("db.pw"), b"s3cr3t\xff").unwrap();
    let yaml = r#"
services:
  web:
    image: x
    configs:
      - app_conf
      - source: motd
        target: /etc/motd
    secrets:
      - db_pw
      - source: token
        target: api-token
        mode: 0400
configs:
  app_conf: {file: ./app.conf}
  motd: {content: "hello ${TAG}"}
secrets:
  db_pw: {file: db.pw}
  token: {environment: FROM_SHELL}
  unused: {external: true}
"#;
    let doc: Value = serde_yaml::from_str(yaml).unwrap();
    let s = convert(&doc, "demo", dir.path(), &env).unwrap();
    assert_eq!(s.warnings, ["Ignoring unsupported options: secrets.mode"]);
    let cm = obj(&s, "ConfigMap", "app-conf");
    assert_eq!(cm["data"], json!({"app_conf": "port=80\n"}));
    assert_eq!(cm["metadata"]["labels"][STACK_LABEL], "demo");
    assert_eq!(
        obj(&s, "ConfigMap", "motd")["data"],
        json!({"motd": "hello 1.2"})
    );
    assert_eq!(
        obj(&s, "Secret", "db-pw")["data"],
        json!({"db_pw": "czNjcjN0/w=="})
    );
    assert_eq!(
        obj(&s, "Secret", "token")["data"],
        json!({"token": base64(b"shell-value")})
    );
    assert!(
        !s.objects.iter().any(|o| o["metadata"]["name"] == "unused"),
        "external: not created"
    );

    let d = obj(&s, "Deployment", "web");
    let pod = &d["spec"]["template"]["spec"];
    let mounts = &pod["containers"][0]["volumeMounts"];
    let at: Vec<(&str, &str)> = mounts
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["mountPath"].as_str().unwrap(),
                m["subPath"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        at,
        [
            ("/app_conf", "app_conf"),
            ("/etc/motd", "motd"),
            ("/run/secrets/db_pw", "db_pw"),
            ("/run/secrets/api-token", "token"),
        ]
    );
    assert_eq!(
        pod["volumes"][2],
        json!({"name": "vol-2", "secret": {"secretName": "db-pw", "items": [{"key": "db_pw", "path": "db_pw"}]}})
    );
    // New content rolls the service out: the template carries a digest of what it mounts.
    let hash = d["spec"]["template"]["metadata"]["annotations"][FILES_HASH].clone();
    assert!(hash.is_string());
    std::fs::write(dir.path().join("app.conf"), "port=81\n").unwrap();
    let s2 = convert(&doc, "demo", dir.path(), &env).unwrap();
    assert_ne!(
        obj(&s2, "Deployment", "web")["spec"]["template"]["metadata"]["annotations"][FILES_HASH],
        hash
    );

    for (yaml, want) in [
        (
            "services:\n  web:\n    image: x\n    configs: [nope]\n",
            "config \"nope\" is not declared",
        ),
        (
            "services:\n  web: {image: x}\nsecrets:\n  s: {environment: NOPE}\n",
            "NOPE is not set",
        ),
        (
            "services:\n  web: {image: x}\nconfigs:\n  c: {}\n",
            "needs file, content or external",
        ),
    ] {
        let e = format!("{:#}", conv(yaml).unwrap_err());
        assert!(e.contains(want), "{yaml}: {e}");
    }
}

/// What a Secret's `data` holds: standard base64 with padding.
fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[test]
fn base64_matches_rfc4648_vectors() {
    for (raw, enc) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(raw.as_bytes()), enc);
    }
}

#[test]
fn update_monitoring_and_rollback_options_warn_and_unknown_ones_fail() {
    let s = conv(
        "services:\n  web:\n    image: x\n    deploy:\n      update_config: {parallelism: 2, delay: 10s, failure_action: rollback}\n      rollback_config: {parallelism: 1}\n",
    )
    .unwrap();
    assert_eq!(
        s.warnings,
        ["update_config.delay, update_config.failure_action, rollback_config: berth rolls out as readiness allows and rolls back only on `berthctl rollout undo`"]
    );
    let d = obj(&s, "Deployment", "web");
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 2);
    let e = conv(
        "services:\n  web:\n    image: x\n    deploy:\n      update_config: {paralelism: 2}\n",
    )
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("update_config Additional property paralelism is not allowed"),
        "{e:#}"
    );
}
