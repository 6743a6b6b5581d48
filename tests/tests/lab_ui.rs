//! The live web view in a real browser: headless Chromium, driven through chromedriver with fantoccini,
//! against `berthctl lab ui` on a real 1-server + 3-agent lab. The page must show the nodes and web's pods,
//! follow a `kubectl scale` without a reload, scale through its own button, and follow an agent kill (the
//! node goes NotReady, its pods come back elsewhere) while staying live. berth-server's own `/ui/` is
//! checked over HTTPS: the assets are public, the data is not.
//!
//! Only the DOM contract of the page is used (`#status`, `.node[data-node]`, `.pod[data-phase]`, ...), read
//! by one script per poll. `BERTH_UI_SCREENSHOTS=1` saves `docs/img/ui-*.png`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use berth_tests::{bin_dir, https, skip_reason, wait_for, workspace, Lab};
use fantoccini::{Client, ClientBuilder, Locator};
use serde::Deserialize;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const POLL: Duration = Duration::from_millis(500);

/// A child process killed on drop. With `group`, it leads its own process group and the whole group is
/// killed: chromedriver starts Chromium and its helpers, and none of them may outlive the test. `lab ui`
/// is killed alone, since nodes it restarts may share its group and belong to the lab.
struct Reaped {
    child: Child,
    group: bool,
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.group {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(cmd: &mut Command, group: bool) -> Result<Reaped> {
    if group {
        cmd.process_group(0);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("failed to start {cmd:?}"))?;
    Ok(Reaped { child, group })
}

/// A free port on 127.0.0.1 (bound and released: chromedriver takes its port on the command line).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Headless Chromium behind chromedriver, and a runtime to drive it from this synchronous test.
struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    _profile: tempfile::TempDir,
    _driver: Reaped,
}

impl Browser {
    fn start() -> Result<Browser> {
        let port = free_port()?;
        let driver = spawn(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            true,
        )?;
        let profile = tempfile::tempdir()?;
        // Nothing leaves the machine: no background services, and every host name but 127.0.0.1 fails
        // to resolve (the page only talks to the origin it came from).
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1400,900",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-domain-reliability",
            "--no-first-run",
            "--no-pings",
            "--dns-prefetch-disable",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            format!("--user-data-dir={}", profile.path().display()),
        ]);
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let url = format!("http://127.0.0.1:{port}");
        let client = rt.block_on(async {
            let start = Instant::now();
            loop {
                let c =
                    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                        .capabilities(caps.clone())
                        .connect(&url)
                        .await;
                match c {
                    Ok(c) => return Ok(c),
                    // chromedriver takes a moment to listen.
                    Err(e) if start.elapsed() < Duration::from_secs(20) => {
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => return Err(anyhow!("chromedriver session: {e}")),
                }
            }
        })?;
        Ok(Browser {
            rt,
            client: Some(client),
            _profile: profile,
            _driver: driver,
        })
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("client lives until drop")
    }

    fn goto(&self, url: &str) -> Result<()> {
        Ok(self.rt.block_on(self.client().goto(url))?)
    }

    fn eval(&self, script: &str) -> Result<Value> {
        Ok(self.rt.block_on(self.client().execute(script, vec![]))?)
    }

    /// Clicks the first element matching `css`.
    fn click(&self, css: &str) -> Result<()> {
        self.rt.block_on(async {
            let e = self.client().find(Locator::Css(css)).await?;
            e.click().await?;
            anyhow::Ok(())
        })
    }

    /// Replaces the value of the input matching `css` by typing, as a user would.
    fn type_into(&self, css: &str, text: &str) -> Result<()> {
        self.rt.block_on(async {
            let e = self.client().find(Locator::Css(css)).await?;
            e.clear().await?;
            e.send_keys(text).await?;
            anyhow::Ok(())
        })
    }

    /// Saves a PNG of the window as `docs/img/ui-NAME.png` when `BERTH_UI_SCREENSHOTS=1`.
    fn screenshot(&self, name: &str) -> Result<()> {
        if std::env::var("BERTH_UI_SCREENSHOTS").as_deref() != Ok("1") {
            return Ok(());
        }
        let png = self.rt.block_on(self.client().screenshot())?;
        let dir = workspace().join("docs/img");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("ui-{name}.png"));
        std::fs::write(&path, png)?;
        eprintln!("screenshot: {}", path.display());
        Ok(())
    }

    /// The page as the DOM contract describes it.
    fn view(&self) -> Result<View> {
        Ok(serde_json::from_value(self.eval(VIEW_JS)?)?)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session makes chromedriver stop Chromium cleanly; the group kill is the backstop.
        if let Some(c) = self.client.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), c.close()).await });
        }
    }
}

/// Reads the contract's elements in one round trip.
const VIEW_JS: &str = r##"
const q = (s, r) => Array.from((r || document).querySelectorAll(s));
const pod = p => ({name: p.dataset.pod || "", namespace: p.dataset.namespace || "",
                   phase: p.dataset.phase || "", terminating: p.dataset.terminating === "true"});
const st = document.querySelector("#status");
return {
  status: st ? st.textContent.trim() : "",
  nodes: q("#nodes .node").map(n => ({name: n.dataset.node || "", ready: n.dataset.ready || "",
    unschedulable: n.dataset.unschedulable === "true", pods: q(".pod", n).map(pod)})),
  pending: q("#pending .pod").map(pod),
  faults: q("button.fault").map(b => (b.dataset.verb || "") + ":" + (b.dataset.node || "")),
  workloads: q("#workloads .workload").map(w => ({kind: w.dataset.kind || "", name: w.dataset.name || "",
    ready: (w.querySelector(".ready") || {textContent: ""}).textContent.trim()})),
};
"##;

#[derive(Debug, Deserialize)]
struct View {
    status: String,
    nodes: Vec<NodeBox>,
    pending: Vec<PodBox>,
    faults: Vec<String>,
    workloads: Vec<WorkloadBox>,
}

#[derive(Debug, Deserialize)]
struct NodeBox {
    name: String,
    ready: String,
    #[allow(dead_code)]
    unschedulable: bool,
    pods: Vec<PodBox>,
}

#[derive(Debug, Deserialize)]
struct PodBox {
    name: String,
    namespace: String,
    phase: String,
    terminating: bool,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct WorkloadBox {
    kind: String,
    name: String,
    ready: String,
}

impl View {
    /// Running, not terminating pods of Deployment web, by node.
    fn web_running(&self) -> BTreeMap<String, usize> {
        self.nodes
            .iter()
            .map(|n| {
                let c = n
                    .pods
                    .iter()
                    .filter(|p| {
                        p.namespace == "default"
                            && p.name.starts_with("web-")
                            && p.phase == "Running"
                            && !p.terminating
                    })
                    .count();
                (n.name.clone(), c)
            })
            .collect()
    }

    fn web_total(&self) -> usize {
        self.web_running().values().sum()
    }

    fn node(&self, name: &str) -> Option<&NodeBox> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// Waits until the page satisfies `ok`, failing with the last view seen.
fn wait_view(b: &Browser, what: &str, limit: Duration, ok: impl Fn(&View) -> bool) -> Result<View> {
    let mut last = None;
    let r = wait_for(what, limit, POLL, || {
        let v = b.view()?;
        if ok(&v) {
            return Ok(Some(v));
        }
        last = Some(format!("{v:?}"));
        Ok(None)
    });
    r.with_context(|| format!("last view: {}", last.unwrap_or_default()))
}

/// `berthctl lab ui` on a free loopback port; the URL is the line it prints.
fn lab_ui(lab: &Lab) -> Result<(Reaped, String)> {
    let mut child = spawn(
        Command::new(bin_dir().join("berthctl"))
            .args(["lab", "ui", "--name", &lab.name, "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
        false,
    )?;
    let out = child.child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("berth web view: ")
        .with_context(|| format!("lab ui printed {line:?}"))?
        .to_string();
    Ok((child, url))
}

fn chromium_missing() -> Option<String> {
    for p in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(p).exists() {
            let why = format!("{p} missing (run scripts/setup.sh)");
            assert!(std::env::var_os("CI").is_none(), "{why}");
            return Some(why);
        }
    }
    None
}

fn web_replicas(lab: &Lab) -> Result<i64> {
    let d = lab.get_json("/apis/apps/v1/namespaces/default/deployments/web")?;
    d["spec"]["replicas"]
        .as_i64()
        .ok_or_else(|| anyhow!("no spec.replicas in {d}"))
}

#[test]
fn lab_ui_in_chromium() -> Result<()> {
    if let Some(why) = skip_reason().or_else(chromium_missing) {
        eprintln!("skipping lab_ui_in_chromium: {why}");
        return Ok(());
    }
    let started = Instant::now();
    let image = berth_tests::busybox_oci_image()?;
    let lab = Lab::up("ui", 3, 3)?;
    lab.berthctl(&["image", "load", &image])?;
    let web: PathBuf = workspace().join("manifests/web.yaml");
    lab.kubectl(&["apply", "-f", web.to_str().unwrap()])?;
    let agents: Vec<String> = lab.nodes("agent").into_iter().map(|(n, _)| n).collect();
    eprintln!("== lab up, web applied ({:?})", started.elapsed());

    let (_ui, url) = lab_ui(&lab)?;
    let b = Browser::start()?;
    let navigated = Instant::now();
    b.goto(&url)?;
    // How long a reader waits for the nodes to be drawn (the issue asks for under 1 s on a lab);
    // reported, not asserted: timings belong to benchmarks, and this machine is shared.
    wait_for(
        "the first paint of the nodes",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || Ok((!b.view()?.nodes.is_empty()).then_some(())),
    )?;
    eprintln!(
        "   first paint of the nodes {:?} after navigation",
        navigated.elapsed()
    );

    eprintln!("== the page goes live and shows every agent Ready and web's 3 pods Running");
    // Chromium opens at most 6 HTTP/1.1 connections per host: a page holding more watches than that
    // open leaves the rest queued until they time out, and never gets to `live` here. The page holds
    // one, the merged `/berth/v1/watch`.
    let v = wait_view(
        &b,
        "the page to be live with 3 web pods",
        Duration::from_secs(60),
        |v| {
            v.status == "live"
                && agents
                    .iter()
                    .all(|a| v.node(a).is_some_and(|n| n.ready == "true"))
                && v.web_total() == 3
        },
    )?;
    assert!(
        v.faults.iter().any(|f| f.starts_with("kill:")),
        "lab ui answers /lab/info, so the fault buttons show: {:?}",
        v.faults
    );
    assert!(
        v.workloads
            .iter()
            .any(|w| w.kind == "Deployment" && w.name == "web"),
        "{:?}",
        v.workloads
    );
    b.screenshot("nodes")?;

    eprintln!("== kubectl scale to 5: new pod boxes appear without a reload");
    b.eval("window.__berthNoReload = true; return null;")?;
    lab.kubectl(&["scale", "deployment/web", "--replicas=5"])?;
    wait_view(
        &b,
        "5 Running web pods on the page",
        Duration::from_secs(60),
        |v| v.web_total() == 5,
    )?;
    assert_eq!(
        b.eval("return window.__berthNoReload === true;")?,
        Value::Bool(true),
        "the page reloaded"
    );

    eprintln!("== the page's scale button sets spec.replicas to 2");
    let w = r#"#workloads .workload[data-kind="Deployment"][data-name="web"][data-namespace="default"]"#;
    b.type_into(&format!("{w} input.scale-replicas"), "2")?;
    b.click(&format!("{w} button.scale-apply"))?;
    wait_for("spec.replicas 2", Duration::from_secs(30), POLL, || {
        Ok((web_replicas(&lab)? == 2).then_some(()))
    })?;
    let v = wait_view(&b, "2 web pods on the page", Duration::from_secs(60), |v| {
        v.web_total() == 2 && v.nodes.iter().flat_map(|n| &n.pods).all(|p| !p.terminating)
    })?;

    eprintln!("== the page's kill button on an agent with web pods: NotReady, the pods move");
    let victim = v
        .web_running()
        .into_iter()
        .find(|(_, c)| *c > 0)
        .map(|(n, _)| n)
        .context("no node runs web")?;
    b.eval("window.confirm = () => true; return null;")?;
    b.click(&format!(
        r#"button.fault[data-verb="kill"][data-node="{victim}"]"#
    ))?;
    wait_view(
        &b,
        "the killed node NotReady",
        Duration::from_secs(60),
        |v| v.node(&victim).is_some_and(|n| n.ready != "true"),
    )?;
    let v = wait_view(
        &b,
        "2 web pods Running on the other nodes",
        Duration::from_secs(90),
        |v| {
            let r = v.web_running();
            r.get(&victim).copied().unwrap_or(0) == 0 && v.web_total() == 2
        },
    )?;
    assert_eq!(v.status, "live", "the page stays live through the kill");
    assert!(v.pending.is_empty() || v.pending.iter().all(|p| !p.name.starts_with("web-")));
    b.screenshot("after-kill")?;

    eprintln!(
        "== the page's kill button on the leader: the page comes back live and keeps following"
    );
    let leader = lab
        .get_json("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/berth-leader")?
        ["spec"]["holderIdentity"]
        .as_str()
        .context("no leader in the lease")?
        .to_string();
    b.click(&format!(
        r#"button.fault[data-verb="kill"][data-node="{leader}"]"#
    ))?;
    // The next writes go to a new leader; the page must show them through its reconnected stream.
    wait_for("a new leader", Duration::from_secs(60), POLL, || {
        let l = lab
            .get_json("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/berth-leader")?;
        Ok((l["spec"]["holderIdentity"]
            .as_str()
            .is_some_and(|h| h != leader))
        .then_some(()))
    })?;
    // The lab kubeconfig names the first server, which may be the one just killed: scale through
    // any member that answers (followers forward the write to the new leader).
    let scale = r#"{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web","namespace":"default"},"spec":{"replicas":3}}"#;
    wait_for(
        "a scale through a live member",
        Duration::from_secs(60),
        POLL,
        || {
            for addr in lab.api_addrs() {
                let path = "/apis/apps/v1/namespaces/default/deployments/web/scale";
                if let Ok(r) = lab.api("PUT", addr, path, Some(scale), Duration::from_secs(3)) {
                    if r.status == 200 {
                        return Ok(Some(()));
                    }
                }
            }
            Ok(None)
        },
    )?;
    wait_view(
        &b,
        "live again, with the 3 web pods the new leader scheduled",
        Duration::from_secs(90),
        |v| v.status == "live" && v.web_total() == 3,
    )?;
    drop(b);

    eprintln!("== berth-server's own /ui/: public assets, authenticated data");
    let t = Duration::from_secs(5);
    // The leader killed above stays down: ask a member that is up.
    let (api, page) = lab
        .api_addrs()
        .into_iter()
        .find_map(|a| Some((a, https(&lab.anonymous, "GET", a, "/ui/", None, t).ok()?)))
        .context("no server answers")?;
    if page.status != 200 || !page.body.to_ascii_lowercase().contains("<html") {
        bail!("anonymous GET /ui/ on {api}: {} {}", page.status, page.body);
    }
    let pods = https(&lab.anonymous, "GET", api, "/api/v1/pods", None, t)?;
    assert_eq!(pods.status, 401, "{}", pods.body);
    eprintln!("lab_ui_in_chromium: {:?}", started.elapsed());
    Ok(())
}
