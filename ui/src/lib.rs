//! berth's live web view (`/ui`): static HTML, CSS and JavaScript embedded at build time, so the page
//! works offline and needs no Node toolchain. Every binary that serves the page (berth-server on the
//! API port, `berthctl lab ui` on 127.0.0.1) serves these same bytes; the page itself talks only to the
//! Kubernetes API (list + watch) with the credentials it was given.

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// `Content-Type` to serve it with.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
}

/// The asset at `path` below `/ui/` (`""` and `index.html` are the page), if there is one.
pub fn asset(path: &str) -> Option<Asset> {
    let (content_type, body): (&str, &[u8]) = match path.trim_start_matches('/') {
        "" | "index.html" => (HTML, include_bytes!("../assets/index.html")),
        "style.css" => (CSS, include_bytes!("../assets/style.css")),
        "app.js" => (JS, include_bytes!("../assets/app.js")),
        "api.js" => (JS, include_bytes!("../assets/api.js")),
        "dom.js" => (JS, include_bytes!("../assets/dom.js")),
        "views.js" => (JS, include_bytes!("../assets/views.js")),
        "actions.js" => (JS, include_bytes!("../assets/actions.js")),
        _ => return None,
    };
    Some(Asset { content_type, body })
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
// ES modules: browsers refuse a module script served with any type but a JavaScript one, and
// `nosniff` makes that strict for classic scripts too.
const JS: &str = "text/javascript; charset=utf-8";

/// Every asset's name below `/ui/`, for tests and for proxies that list what they serve.
pub const NAMES: &[&str] = &[
    "index.html",
    "style.css",
    "app.js",
    "api.js",
    "dom.js",
    "views.js",
    "actions.js",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str) -> &'static str {
        std::str::from_utf8(asset(name).expect(name).body).expect("UTF-8")
    }

    #[test]
    fn every_named_asset_is_served_and_nothing_else() {
        for n in NAMES {
            assert!(asset(n).is_some(), "{n}");
        }
        assert_eq!(asset(""), asset("index.html"));
        for n in ["nope.js", "../Cargo.toml", "assets/app.js", "index.htm"] {
            assert!(asset(n).is_none(), "{n}");
        }
    }

    /// Offline: no asset names another origin (no CDN fonts or scripts), and the strict CSP the
    /// servers send holds: no inline script, no inline style attribute, no inline handler.
    #[test]
    fn assets_are_self_contained_and_csp_clean() {
        for n in NAMES {
            let t = text(n);
            for bad in ["http://", "https://", "//cdn", "@import", "url(http"] {
                assert!(!t.contains(bad), "{n} contains {bad}");
            }
            assert!(
                !t.contains("innerHTML"),
                "{n}: cluster data goes in as text only"
            );
            assert!(!t.contains("eval("), "{n}");
        }
        let html = text("index.html");
        for bad in [" style=", " onclick=", " onload=", " onsubmit=", "<script>"] {
            assert!(!html.contains(bad), "index.html contains {bad}");
        }
    }

    /// Every file the page and its modules load is embedded.
    #[test]
    fn references_resolve() {
        let html = text("index.html");
        for r in ["style.css", "app.js"] {
            assert!(html.contains(&format!("\"{r}\"")), "{r}");
        }
        for n in NAMES.iter().filter(|n| n.ends_with(".js")) {
            for line in text(n).lines().filter(|l| l.starts_with("import ")) {
                let from = line.rsplit("from '").next().unwrap_or_default();
                let file = from.trim_end_matches("';").trim_start_matches("./");
                assert!(asset(file).is_some(), "{n} imports {file}");
            }
        }
    }

    /// A syntax check of every module with `node --check`, when node is installed (it is no build
    /// dependency: without it the test says so and passes).
    #[test]
    fn javascript_parses() {
        if std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("node not installed: JavaScript syntax not checked");
            return;
        }
        let dir = std::env::temp_dir().join(format!("berth-ui-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for n in NAMES.iter().filter(|n| n.ends_with(".js")) {
            // `.mjs` so node parses them as the ES modules the browser loads.
            let file = dir.join(n.replace(".js", ".mjs"));
            std::fs::write(&file, asset(n).expect(n).body).expect("write");
            let out = std::process::Command::new("node")
                .arg("--check")
                .arg(&file)
                .output()
                .expect("node runs");
            assert!(
                out.status.success(),
                "{n}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
