//! `berthctl lab` end to end, as root: `up` then `down` must leave no namespace, link, process or directory.
//!
//! - `lab_smoke_with_real_binaries`: `lab up --servers 1 --agents 1` with the real `berth-server` and
//!   `berth-agent` from the target dir; skipped (with the reason printed) until they are built and take the
//!   lab's flags.
//! - `lab_drills_with_stand_in_binaries`: the same flow plus status/partition/heal/kill/restart, with
//!   stand-ins (`openssl s_server` over TLS for the server, busybox httpd for the agent) that serve what
//!   `lab up` polls (`/version`, `/api/v1/nodes`, `/api/v1/namespaces/default`) and write the admin
//!   kubeconfig the lab kubeconfig is made from, so the namespace and TLS plumbing is tested even before
//!   the real binaries work.
//!
//! Both tests take one lock so they never build two labs at once; all traffic goes to the labs' own bridge.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn berthctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berthctl"))
}

/// Runs berthctl with a hard time bound (the lab's own wait is bounded too; this guards against a hang).
fn run(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(berthctl())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    println!(
        "$ berthctl {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// What is left of lab `name` on the host.
fn leftovers(name: &str, dir: &Path) -> Vec<String> {
    let mut left = Vec::new();
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for l in String::from_utf8_lossy(&ns.stdout).lines() {
        let n = l.split_whitespace().next().unwrap_or_default();
        if n.starts_with(&format!("{name}-")) {
            left.push(format!("netns {n}"));
        }
    }
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    for l in String::from_utf8_lossy(&links.stdout).lines() {
        let n = l
            .split(": ")
            .nth(1)
            .unwrap_or_default()
            .split('@')
            .next()
            .unwrap_or_default();
        if n == format!("berthlab-{name}") || n.starts_with(&format!("bl-{name}-")) {
            left.push(format!("link {n}"));
        }
    }
    let needle = dir.display().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(c) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(&needle) {
                left.push(format!("process {pid}: {c}"));
            }
        }
    }
    if dir.exists() {
        left.push(format!("dir {}", dir.display()));
    }
    left
}

/// Tears the lab down however the test ends.
struct Down<'a> {
    name: &'a str,
    dir: &'a Path,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let d = self.dir.display().to_string();
        run(
            &["lab", "down", "--name", self.name, "--dir", &d],
            Duration::from_secs(60),
        );
    }
}

/// `lab up` of 1 server and 1 agent from `bin_dir` into `dir`, checked to succeed and to print the
/// kubeconfig export line.
fn up_one_and_one(name: &str, dir: &str, bin_dir: &str, timeout: &str, limit: Duration) {
    let up = run(
        &[
            "lab",
            "up",
            "--servers",
            "1",
            "--agents",
            "1",
            "--name",
            name,
            "--dir",
            dir,
            "--bin-dir",
            bin_dir,
            "--timeout",
            timeout,
        ],
        limit,
    );
    assert!(up.status.success(), "lab up failed");
    assert!(text(&up).contains(&format!("export KUBECONFIG={dir}/kubeconfig")));
}

fn lab_name(tag: char) -> String {
    format!("{tag}{}", std::process::id() % 10000)
}

#[test]
fn lab_smoke_with_real_binaries() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !is_root() {
        println!("skipped: lab needs root");
        return;
    }
    let bin_dir = berthctl().parent().unwrap().to_path_buf();
    for (bin, flag) in [
        ("berth-server", "--initial-cluster"),
        ("berth-agent", "--node-name"),
    ] {
        let p = bin_dir.join(bin);
        if !p.exists() {
            println!("skipped: {} is not built", p.display());
            return;
        }
        let help = Command::new(&p).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&help.stdout).into_owned()
            + &String::from_utf8_lossy(&help.stderr);
        if !help.contains(flag) {
            println!("skipped: {bin} does not take {flag} yet (not functional)");
            return;
        }
    }
    let name = lab_name('r');
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let d = dir.display().to_string();
    let b = bin_dir.display().to_string();
    {
        let _down = Down {
            name: &name,
            dir: &dir,
        };
        up_one_and_one(&name, &d, &b, "90s", Duration::from_secs(150));
        let st = run(
            &["lab", "status", "--name", &name, "--dir", &d],
            Duration::from_secs(30),
        );
        assert!(text(&st).contains("running"));
    }
    assert_eq!(leftovers(&name, &dir), Vec::<String>::new());
}

/// Stand-ins for berth-server and berth-agent: they take the lab's flags (the token from `BERTH_TOKEN`),
/// serve the files the readiness wait reads and keep the data dir in their command line as the real ones
/// do. The server is TLS like the real one: it makes a CA (once; a restart keeps it), a certificate for its
/// lab address and an admin client certificate, writes `pki/admin.kubeconfig`, and serves with
/// `openssl s_server -WWW`; the agent is busybox httpd on 10250.
const STAND_IN: &str = r#"#!/bin/sh
set -e
[ -n "$BERTH_TOKEN" ] || { echo "no BERTH_TOKEN in the environment" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --token) echo "a token on the command line" >&2; exit 2 ;;
    --data-dir) dir=$2; shift ;;
    --listen-api) api=1 ;;
    --listen-peer) peer=$2; shift ;;
    --node-name) node=$2; shift ;;
  esac
  shift
done
mkdir -p "$dir/www/api/v1/namespaces"
echo '{"major":"1","minor":"32","gitVersion":"v1.32.0-standin"}' > "$dir/www/version"
echo '{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"default"}}' > "$dir/www/api/v1/namespaces/default"
echo '{"kind":"NodeList","items":[{"metadata":{"name":"a1"},"status":{"conditions":[{"type":"Ready","status":"True"}]}}]}' > "$dir/www/api/v1/nodes"
if [ -z "$api" ]; then
  exec BUSYBOX httpd -f -p 10250 -h "$dir/www"
fi
p="$dir/pki"
mkdir -p "$p"
if [ ! -f "$p/admin.kubeconfig" ]; then
  key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
  key "$p/ca.key"; key "$p/api.key"; key "$p/admin.key"
  openssl req -x509 -new -key "$p/ca.key" -out "$p/ca.crt" -days 2 -subj /CN=standin-ca 2>/dev/null
  openssl req -new -key "$p/api.key" -out "$p/api.csr" -subj /CN=standin-api 2>/dev/null
  printf 'subjectAltName=IP:%s
extendedKeyUsage=serverAuth
' "${peer%:*}" > "$p/api.ext"
  openssl x509 -req -in "$p/api.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -out "$p/api.crt" -days 2 -extfile "$p/api.ext" 2>/dev/null
  openssl req -new -key "$p/admin.key" -out "$p/admin.csr" -subj "/O=system:masters/CN=berth-admin" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth
' > "$p/admin.ext"
  openssl x509 -req -in "$p/admin.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -out "$p/admin.crt" -days 2 -extfile "$p/admin.ext" 2>/dev/null
  b() { base64 -w0 "$1"; }
  printf 'apiVersion: v1\nkind: Config\nclusters:\n- name: berth\n  cluster:\n    server: https://%s:6443\n    certificate-authority-data: %s\nusers:\n- name: berth-admin\n  user:\n    client-certificate-data: %s\n    client-key-data: %s\ncontexts:\n- name: berth\n  context:\n    cluster: berth\n    user: berth-admin\ncurrent-context: berth\n' \
    "${peer%:*}" "$(b "$p/ca.crt")" "$(b "$p/admin.crt")" "$(b "$p/admin.key")" > "$p/admin.kubeconfig.tmp"
  mv "$p/admin.kubeconfig.tmp" "$p/admin.kubeconfig"
fi
cd "$dir/www"
exec openssl s_server -quiet -WWW -accept 6443 -cert "$p/api.crt" -key "$p/api.key"
"#;

fn agent_answers(ip: &str) -> bool {
    Command::new("timeout")
        .args([
            "3",
            "busybox",
            "wget",
            "-qO-",
            &format!("http://{ip}:10250/version"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn lab_drills_with_stand_in_binaries() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !is_root() {
        println!("skipped: lab needs root");
        return;
    }
    let Some(busybox) = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        println!("skipped: busybox is not installed");
        return;
    };
    if !Path::new("/usr/bin/openssl").exists() {
        println!("skipped: openssl is not installed (the server stand-in serves TLS with it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for b in ["berth-server", "berth-agent"] {
        let p = bin.join(b);
        std::fs::write(&p, STAND_IN.replace("BUSYBOX", busybox)).unwrap();
        assert!(Command::new("chmod")
            .arg("755")
            .arg(&p)
            .status()
            .unwrap()
            .success());
    }
    let name = lab_name('s');
    let dir = tmp.path().join("lab");
    let d = dir.display().to_string();
    let b = bin.display().to_string();
    let w = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--name", &name, "--dir", &d]);
        run(&a, Duration::from_secs(60))
    };
    {
        let _down = Down {
            name: &name,
            dir: &dir,
        };
        up_one_and_one(&name, &d, &b, "30s", Duration::from_secs(60));
        // The token and the admin credentials are private; the token is in no command line.
        use std::os::unix::fs::PermissionsExt as _;
        for f in ["kubeconfig", "token"] {
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        let kubeconfig = std::fs::read_to_string(dir.join("kubeconfig")).unwrap();
        assert!(kubeconfig.contains("server: https://") && kubeconfig.contains("client-key-data"));
        let token = std::fs::read_to_string(dir.join("token")).unwrap();
        assert!(leftovers(&name, &dir)
            .iter()
            .all(|l| !l.contains(token.trim())));
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("lab.json")).unwrap()).unwrap();
        let a1 = state["plan"]["nodes"][1]["ip"]
            .as_str()
            .unwrap()
            .to_string();

        // The nodes have only the lab subnet: no default route out of the machine.
        let routes = Command::new("ip")
            .args(["-n", &format!("{name}-a1"), "route"])
            .output()
            .unwrap();
        let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
        assert!(!routes.contains("default"), "{routes}");
        assert_eq!(routes.lines().count(), 1, "{routes}");

        let st = text(&w(&["lab", "status"]));
        assert!(
            st.contains("a1") && st.contains("running") && st.contains("Ready"),
            "{st}"
        );
        let kc = format!("{d}/kubeconfig");
        let v = run(&["--kubeconfig", &kc, "version"], Duration::from_secs(30));
        assert!(text(&v).contains("Server Version: v1.32.0-standin"));

        assert!(agent_answers(&a1));
        assert!(w(&["lab", "partition", "a1"]).status.success());
        assert!(
            !agent_answers(&a1),
            "a partitioned node must be unreachable"
        );
        assert!(text(&w(&["lab", "status"])).contains("partitioned"));
        assert!(text(&w(&["lab", "heal"])).contains("node a1 healed"));
        let start = Instant::now();
        while !agent_answers(&a1) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "healed node stays unreachable"
            );
            std::thread::sleep(Duration::from_millis(200));
        }

        assert!(text(&w(&["lab", "kill", "s1"])).contains("killed"));
        let st = text(&w(&["lab", "status"]));
        assert!(
            st.lines()
                .any(|l| l.starts_with("s1 ") && l.contains("stopped")),
            "{st}"
        );
        assert!(text(&w(&["lab", "restart", "s1"])).contains("restarted"));
        let start = Instant::now();
        loop {
            let v = run(&["--kubeconfig", &kc, "version"], Duration::from_secs(30));
            if v.status.success() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "restarted server does not answer"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // A second lab with the same name is refused while this one exists.
        let again = run(
            &[
                "lab",
                "up",
                "--servers",
                "1",
                "--agents",
                "0",
                "--name",
                &name,
                "--dir",
                &d,
                "--bin-dir",
                &b,
            ],
            Duration::from_secs(30),
        );
        assert!(!again.status.success());
    }
    assert_eq!(leftovers(&name, &dir), Vec::<String>::new());
    // down is idempotent.
    assert!(run(
        &["lab", "down", "--name", &name, "--dir", &d],
        Duration::from_secs(30)
    )
    .status
    .success());
}
