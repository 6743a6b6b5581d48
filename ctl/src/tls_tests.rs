//! The kube client against a real HTTPS server on 127.0.0.1: a kubeconfig in the lab's shape (CA and
//! admin client certificate) works, a bearer token works, and missing credentials, an unknown CA and
//! `https://` to a plain HTTP server each print kubectl's one line.

use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt as _;
use http_body_util::Full;
use hyper::body::Bytes;

use crate::errors::render;
use crate::kubeconfig::{self, ConnectOptions};

const TOKEN: &str = "abcdef.0123456789abcdef";

/// An HTTPS API that answers 200 to a client certificate or the bearer [`TOKEN`], else a 401 Status.
async fn https_api(ca: &pki::Ca) -> String {
    let server = ca
        .issue(&pki::CertRequest {
            common_name: "berth-apiserver".into(),
            organizations: vec![],
            dns_names: vec![],
            ips: vec!["127.0.0.1".parse().unwrap()],
            usage: pki::Usage::Server,
            validity: Duration::from_secs(3600),
        })
        .unwrap();
    let cfg = pki::server_config(
        ca.cert_pem(),
        pki::CertSource::from_pem(&server.cert_pem, &server.key_pem).unwrap(),
        pki::ClientAuth::Optional,
        &[b"http/1.1"],
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut incoming = Box::pin(pki::net::incoming(listener, cfg));
    tokio::spawn(async move {
        while let Some(Ok(tls)) = incoming.next().await {
            let has_cert = tls.get_ref().1.peer_certificates().is_some();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    let bearer = req
                        .headers()
                        .get("authorization")
                        .is_some_and(|v| v.as_bytes() == format!("Bearer {TOKEN}").as_bytes());
                    let (code, body) = if has_cert || bearer {
                        (
                            200,
                            r#"{"kind":"SecretList","apiVersion":"v1","metadata":{},"items":[]}"#,
                        )
                    } else {
                        (
                            401,
                            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#,
                        )
                    };
                    async move {
                        hyper::Response::builder()
                            .status(code)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    format!("https://{addr}")
}

/// A plain HTTP server that answers every request with an empty 200.
async fn plain_http() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req: hyper::Request<_>| async {
                    hyper::Response::builder().body(Full::new(Bytes::new()))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

fn ca() -> pki::Ca {
    pki::Ca::generate("tls-test", Duration::from_secs(3600)).unwrap()
}

/// A kubeconfig file as the lab writes it, for `server` and `ca`, with or without the client cert.
fn kubeconfig_file(
    dir: &std::path::Path,
    server: &str,
    ca: &pki::Ca,
    cert: bool,
) -> std::path::PathBuf {
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let admin = ca
        .issue(&pki::CertRequest::client(
            "berth-admin",
            &[pki::GROUP_MASTERS],
            Duration::from_secs(3600),
        ))
        .unwrap();
    let user = if cert {
        format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b(&admin.cert_pem),
            b(&admin.key_pem)
        )
    } else {
        "    username: nobody\n".to_string()
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n{user}contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
        b(ca.cert_pem())
    );
    let p = dir.join(if cert { "with-cert" } else { "no-cert" });
    std::fs::write(&p, text).unwrap();
    p
}

async fn list_secrets(opts: ConnectOptions) -> anyhow::Result<serde_json::Value> {
    let s = kubeconfig::connect(&opts).await?;
    crate::rest::get(&s.client, "/api/v1/namespaces/default/secrets").await
}

#[tokio::test]
async fn client_certificate_from_the_kubeconfig_is_accepted() {
    let ca = ca();
    let url = https_api(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig_file(dir.path(), &url, &ca, true);
    let v = list_secrets(ConnectOptions {
        kubeconfig: Some(kc),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(v["kind"], "SecretList");
}

#[tokio::test]
async fn no_credentials_is_unauthorized_and_a_token_flag_fixes_it() {
    let ca = ca();
    let url = https_api(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig_file(dir.path(), &url, &ca, false);
    let e = list_secrets(ConnectOptions {
        kubeconfig: Some(kc.clone()),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(
        render(&e, None),
        "error: You must be logged in to the server (Unauthorized)"
    );
    let v = list_secrets(ConnectOptions {
        kubeconfig: Some(kc),
        token: Some(TOKEN.into()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(v["kind"], "SecretList");
    // Without any kubeconfig: --server, --certificate-authority and --token.
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let v = list_secrets(ConnectOptions {
        server: Some(url.trim_start_matches("https://").to_string()),
        certificate_authority: Some(ca_file),
        token: Some(TOKEN.into()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(v["kind"], "SecretList");
}

#[tokio::test]
async fn unknown_ca_and_plain_http_fail_in_one_line() {
    let ca = ca();
    let url = https_api(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    // Trusting another CA.
    let other_ca = self::ca();
    let other = kubeconfig_file(dir.path(), &url, &other_ca, true);
    let e = list_secrets(ConnectOptions {
        kubeconfig: Some(other.clone()),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(
        render(&e, None),
        "Unable to connect to the server: tls: failed to verify certificate: x509: certificate signed by unknown authority"
    );
    // ... which --insecure-skip-tls-verify overrides (with the token: the server would refuse a
    // client certificate of the other CA).
    let other = kubeconfig_file(dir.path(), &url, &other_ca, false);
    let v = list_secrets(ConnectOptions {
        kubeconfig: Some(other),
        insecure_skip_tls_verify: true,
        token: Some(TOKEN.into()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(v["kind"], "SecretList");

    // https:// to a plain HTTP server.
    let plain = plain_http().await;
    let e = list_secrets(ConnectOptions {
        server: Some(plain.replace("http://", "https://")),
        insecure_skip_tls_verify: true,
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(
        render(&e, None),
        "Unable to connect to the server: http: server gave HTTP response to HTTPS client"
    );
}
