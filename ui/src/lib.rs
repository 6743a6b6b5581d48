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
    let html = "text/html; charset=utf-8";
    match path.trim_start_matches('/') {
        "" | "index.html" => Some(Asset {
            content_type: html,
            body: include_bytes!("../assets/index.html"),
        }),
        _ => None,
    }
}
