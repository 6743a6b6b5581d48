//! Kubeconfig resolution like kubectl: `--kubeconfig`, `$KUBECONFIG`, `~/.kube/config`, `--context`,
//! `--namespace`, and the `--server`, `--token`, `--certificate-authority` and `--insecure-skip-tls-verify`
//! overrides, turned into a connected [`Session`] (rustls with ring for `https://`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Connection flags shared by every kubectl-like verb.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--kubeconfig FILE`: wins over `$KUBECONFIG` and `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context NAME`: instead of the file's `current-context`.
    pub context: Option<String>,
    /// `-n/--namespace`: instead of the context's namespace.
    pub namespace: Option<String>,
    /// `--server URL`: overrides the cluster address (plain `http://` works without any kubeconfig).
    pub server: Option<String>,
    /// `--token`: a bearer token instead of the kubeconfig user's credentials.
    pub token: Option<String>,
    /// `--certificate-authority FILE`: the CA bundle (PEM) that verifies the server instead of the
    /// kubeconfig's.
    pub certificate_authority: Option<PathBuf>,
    /// `--insecure-skip-tls-verify`: do not verify the server certificate (never with a CA).
    pub insecure_skip_tls_verify: bool,
}

/// A connected client plus the namespace the verbs act in.
#[derive(Clone)]
pub struct Session {
    /// The API client.
    pub client: Client,
    /// The effective namespace (flag, then context, then `default`).
    pub namespace: String,
    /// The API server URL, for messages.
    pub server: String,
}

/// Which kubeconfig files to read, in merge order, exactly as kubectl picks them: the flag alone if given,
/// else every non-empty entry of `$KUBECONFIG` (`:`-separated), else `~/.kube/config`.
pub fn kubeconfig_paths(
    flag: Option<&Path>,
    env: Option<&str>,
    home: Option<&Path>,
) -> Vec<PathBuf> {
    if let Some(p) = flag {
        return vec![p.to_path_buf()];
    }
    if let Some(env) = env {
        let paths: Vec<PathBuf> = env
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        if !paths.is_empty() {
            return paths;
        }
    }
    home.map(|h| vec![h.join(".kube").join("config")])
        .unwrap_or_default()
}

/// Reads and merges the kubeconfig files. Missing files from `$KUBECONFIG`/home are skipped (as kubectl does);
/// a missing `--kubeconfig` file is an error. Returns `None` when no file exists at all.
pub fn read_kubeconfig(paths: &[PathBuf], explicit: bool) -> Result<Option<Kubeconfig>> {
    let mut merged: Option<Kubeconfig> = None;
    for p in paths {
        if !p.exists() {
            if explicit {
                anyhow::bail!("stat {}: no such file or directory", p.display());
            }
            continue;
        }
        let kc = Kubeconfig::read_from(p)
            .with_context(|| format!("failed to read kubeconfig {}", p.display()))?;
        merged = Some(match merged {
            None => kc,
            Some(m) => m.merge(kc)?,
        });
    }
    Ok(merged)
}

/// Builds the client configuration from the flags and the environment.
///
/// # Errors
/// When no kubeconfig exists and no `--server` is given, when the context is unknown, or the file is invalid.
pub async fn load_config(opts: &ConnectOptions) -> Result<Config> {
    let env = std::env::var("KUBECONFIG").ok();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let paths = kubeconfig_paths(opts.kubeconfig.as_deref(), env.as_deref(), home.as_deref());
    let kc = read_kubeconfig(&paths, opts.kubeconfig.is_some())?;
    config_from(kc, opts).await
}

/// The pure part of [`load_config`]: applies context, namespace, server and credential flags to a parsed
/// kubeconfig.
pub async fn config_from(kc: Option<Kubeconfig>, opts: &ConnectOptions) -> Result<Config> {
    if opts.insecure_skip_tls_verify && opts.certificate_authority.is_some() {
        // kubectl's own refusal: a CA and "verify nothing" contradict each other.
        anyhow::bail!("specifying a root certificates file with the insecure flag is not allowed");
    }
    let mut config = match kc {
        Some(kc) => {
            let kco = KubeConfigOptions {
                context: opts.context.clone(),
                ..Default::default()
            };
            match Config::from_custom_kubeconfig(kc, &kco).await {
                Ok(c) => c,
                Err(e) if opts.server.is_some() => {
                    tracing::debug!("ignoring kubeconfig because --server is set: {e}");
                    Config::new(parse_server(
                        opts.server.as_deref().unwrap_or_default(),
                        false,
                    )?)
                }
                Err(e) => return Err(e).context("invalid configuration"),
            }
        }
        None => match &opts.server {
            Some(s) => Config::new(parse_server(s, false)?),
            None => anyhow::bail!(
                "no configuration has been provided, try setting KUBECONFIG or --server \
                 (or run `berthctl lab up` and export the KUBECONFIG it prints)"
            ),
        },
    };
    if let Some(path) = &opts.certificate_authority {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("unable to read certificate-authority {}", path.display()))?;
        let certs = pki::parse_certs(&pem)
            .with_context(|| format!("unable to load root certificates from {}", path.display()))?;
        config.root_cert = Some(certs.iter().map(|c| c.to_vec()).collect());
        config.root_cert_file = None;
        config.accept_invalid_certs = false;
    }
    if opts.insecure_skip_tls_verify {
        config.root_cert = None;
        config.root_cert_file = None;
        config.accept_invalid_certs = true;
    }
    if let Some(t) = &opts.token {
        // As kubectl: the flag replaces whatever else the user entry would send as a bearer.
        let a = &mut config.auth_info;
        a.token = Some(secrecy::SecretString::from(t.clone()));
        a.token_file = None;
        a.username = None;
        a.password = None;
        a.exec = None;
        a.auth_provider = None;
    }
    if let Some(s) = &opts.server {
        config.cluster_url = parse_server(s, speaks_tls(&config))?;
    }
    if let Some(ns) = &opts.namespace {
        config.default_namespace = ns.clone();
    }
    // Short connect timeout: a lab node that is down should fail fast, as kubectl does.
    config.connect_timeout = Some(std::time::Duration::from_secs(5));
    Ok(config)
}

/// Whether the configuration carries TLS settings, which make a bare `--server host:port` mean
/// `https://` (client-go's rule: a CA, a client certificate or `insecure` imply TLS).
fn speaks_tls(c: &Config) -> bool {
    c.root_cert.is_some()
        || c.root_cert_file.is_some()
        || c.accept_invalid_certs
        || c.auth_info.client_certificate.is_some()
        || c.auth_info.client_certificate_data.is_some()
}

/// Accepts `host:port` or a URL; a bare address means `https://` when `tls` is set (the configuration
/// has a CA, a client certificate or skips verification), plain `http://` otherwise.
pub fn parse_server(s: &str, tls: bool) -> Result<http::Uri> {
    let full = if s.contains("://") {
        s.to_string()
    } else if tls {
        format!("https://{s}")
    } else {
        format!("http://{s}")
    };
    full.parse::<http::Uri>()
        .with_context(|| format!("invalid server address {s:?}"))
}

/// Resolves the flags and connects (no request is sent yet).
pub async fn connect(opts: &ConnectOptions) -> Result<Session> {
    // kube builds its rustls configuration from the process-wide provider: make sure it is ring.
    pki::install_crypto_provider();
    let config = load_config(opts).await?;
    let namespace = config.default_namespace.clone();
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config).context("failed to build the API client")?;
    Ok(Session {
        client,
        namespace,
        server,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_CONTEXTS: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "http://10.0.0.1:6443"}
- name: b
  cluster: {server: "http://10.0.0.2:6443"}
users:
- name: u
  user: {}
contexts:
- name: ca
  context: {cluster: a, user: u}
- name: cb
  context: {cluster: b, user: u, namespace: team}
current-context: ca
"#;

    fn opts() -> ConnectOptions {
        ConnectOptions::default()
    }

    #[test]
    fn flag_wins_over_env_and_home() {
        let p = kubeconfig_paths(
            Some(Path::new("/x/flag")),
            Some("/a:/b"),
            Some(Path::new("/home/u")),
        );
        assert_eq!(p, vec![PathBuf::from("/x/flag")]);
    }

    #[test]
    fn env_is_split_and_empty_entries_dropped() {
        let p = kubeconfig_paths(None, Some("/a::/b"), Some(Path::new("/home/u")));
        assert_eq!(p, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
    }

    #[test]
    fn home_is_the_fallback() {
        let p = kubeconfig_paths(None, Some(""), Some(Path::new("/home/u")));
        assert_eq!(p, vec![PathBuf::from("/home/u/.kube/config")]);
        assert!(kubeconfig_paths(None, None, None).is_empty());
    }

    #[test]
    fn missing_explicit_file_is_an_error_but_missing_env_file_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(read_kubeconfig(std::slice::from_ref(&missing), true).is_err());
        assert!(read_kubeconfig(&[missing], false).unwrap().is_none());
    }

    #[test]
    fn env_files_are_merged_first_wins() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, TWO_CONTEXTS).unwrap();
        std::fs::write(
            &b,
            "apiVersion: v1\nkind: Config\ncurrent-context: other\nclusters:\n- name: z\n  cluster: {server: \"http://1.2.3.4\"}\n",
        )
        .unwrap();
        let kc = read_kubeconfig(&[a, b], false).unwrap().unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("ca"));
        assert_eq!(kc.clusters.len(), 3);
    }

    #[tokio::test]
    async fn current_context_and_default_namespace() {
        let kc = Kubeconfig::from_yaml(TWO_CONTEXTS).unwrap();
        let c = config_from(Some(kc), &opts()).await.unwrap();
        assert_eq!(c.cluster_url.to_string(), "http://10.0.0.1:6443/");
        assert_eq!(c.default_namespace, "default");
    }

    #[tokio::test]
    async fn context_flag_selects_cluster_and_namespace() {
        let kc = Kubeconfig::from_yaml(TWO_CONTEXTS).unwrap();
        let o = ConnectOptions {
            context: Some("cb".into()),
            ..opts()
        };
        let c = config_from(Some(kc), &o).await.unwrap();
        assert_eq!(c.cluster_url.to_string(), "http://10.0.0.2:6443/");
        assert_eq!(c.default_namespace, "team");
    }

    #[tokio::test]
    async fn namespace_and_server_flags_override() {
        let kc = Kubeconfig::from_yaml(TWO_CONTEXTS).unwrap();
        let o = ConnectOptions {
            namespace: Some("prod".into()),
            server: Some("127.0.0.1:8080".into()),
            ..opts()
        };
        let c = config_from(Some(kc), &o).await.unwrap();
        assert_eq!(c.cluster_url.to_string(), "http://127.0.0.1:8080/");
        assert_eq!(c.default_namespace, "prod");
    }

    #[tokio::test]
    async fn server_without_kubeconfig_works_and_nothing_at_all_fails() {
        let o = ConnectOptions {
            server: Some("http://127.0.0.1:1".into()),
            ..opts()
        };
        let c = config_from(None, &o).await.unwrap();
        assert_eq!(c.default_namespace, "default");
        assert!(config_from(None, &opts()).await.is_err());
    }

    #[tokio::test]
    async fn unknown_context_is_an_error() {
        let kc = Kubeconfig::from_yaml(TWO_CONTEXTS).unwrap();
        let o = ConnectOptions {
            context: Some("nope".into()),
            ..opts()
        };
        assert!(config_from(Some(kc), &o).await.is_err());
    }

    const TLS: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: a
  cluster:
    server: "https://10.0.0.1:6443"
    certificate-authority-data: "bm90IGEgY2VydA=="
users:
- name: u
  user: {token: from-file}
contexts:
- name: ca
  context: {cluster: a, user: u}
current-context: ca
"#;

    #[tokio::test]
    async fn bare_server_is_https_when_the_config_speaks_tls() {
        let kc = Kubeconfig::from_yaml(TLS).unwrap();
        let o = ConnectOptions {
            server: Some("10.0.0.9:6443".into()),
            ..opts()
        };
        let c = config_from(Some(kc), &o).await.unwrap();
        assert_eq!(c.cluster_url.to_string(), "https://10.0.0.9:6443/");
        assert_eq!(
            parse_server("h:1", false).unwrap().to_string(),
            "http://h:1/"
        );
        assert_eq!(
            parse_server("http://h:1", true).unwrap().to_string(),
            "http://h:1/"
        );
    }

    #[tokio::test]
    async fn token_ca_and_insecure_flags() {
        use secrecy::ExposeSecret as _;
        let kc = Kubeconfig::from_yaml(TLS).unwrap();
        let o = ConnectOptions {
            token: Some("abcdef.0123456789abcdef".into()),
            insecure_skip_tls_verify: true,
            ..opts()
        };
        let c = config_from(Some(kc), &o).await.unwrap();
        assert_eq!(
            c.auth_info
                .token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            Some("abcdef.0123456789abcdef".to_string())
        );
        assert!(c.accept_invalid_certs);
        assert!(c.root_cert.is_none());

        let dir = tempfile::tempdir().unwrap();
        let ca = pki::Ca::generate("test-ca", std::time::Duration::from_secs(3600)).unwrap();
        let ca_file = dir.path().join("ca.crt");
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        let o = ConnectOptions {
            certificate_authority: Some(ca_file.clone()),
            server: Some("https://127.0.0.1:1".into()),
            ..opts()
        };
        let c = config_from(None, &o).await.unwrap();
        assert_eq!(c.root_cert.as_ref().map(Vec::len), Some(1));
        let both = ConnectOptions {
            certificate_authority: Some(ca_file),
            insecure_skip_tls_verify: true,
            server: Some("https://127.0.0.1:1".into()),
            ..opts()
        };
        let e = config_from(None, &both).await.unwrap_err();
        assert!(
            e.to_string().contains("insecure flag is not allowed"),
            "{e}"
        );
    }
}
