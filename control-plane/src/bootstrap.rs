//! The `Bootstrap` gRPC service (first contact of new members and agents) and the member's client of
//! it. See `proto/bootstrap.proto` for the protocol and why the proof is bound to the TLS certificate.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use proto::bootstrappb::bootstrap_client::BootstrapClient;
use proto::bootstrappb::bootstrap_server::{Bootstrap, BootstrapServer};
use proto::bootstrappb::{HelloRequest, HelloResponse, JoinMemberRequest, JoinMemberResponse};
use tonic::{Request, Response, Status};

use crate::security::{self, ClusterPki, MemberIdentity, MemberKeys};
use crate::store::{self, Consistency, ObjectStore};

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    /// The cluster token: members and agents.
    Cluster,
    /// A bootstrap token Secret (`kube-system/bootstrap-token-<id>`): agents only.
    Node,
}

/// Finds the token named `id`: the cluster token, or an unexpired bootstrap token Secret with
/// `usage-bootstrap-authentication: "true"` (kubeadm's format).
pub async fn find_token(
    store: &dyn ObjectStore,
    pki: &ClusterPki,
    id: &str,
) -> Option<(pki::Token, TokenUse)> {
    if pki::ct_eq(id.as_bytes(), pki.token.id.as_bytes()) {
        return Some((pki.token.clone(), TokenUse::Cluster));
    }
    if id.len() != 6
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return None;
    }
    let key = store::key(
        "",
        "secrets",
        "kube-system",
        &format!("bootstrap-token-{id}"),
    );
    let obj = store.get(&key, Consistency::Linearizable).await.ok()??;
    let s = &obj.value;
    if s["type"] != "bootstrap.kubernetes.io/token" {
        return None;
    }
    let field = |k: &str| -> Option<String> {
        if let Some(v) = s["stringData"][k].as_str() {
            return Some(v.to_string());
        }
        let b = s["data"][k].as_str()?;
        let raw = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
        String::from_utf8(raw).ok()
    };
    if field("usage-bootstrap-authentication").as_deref() != Some("true") {
        return None;
    }
    if let Some(exp) = field("expiration") {
        let t = apimachinery::time::parse_rfc3339(&exp)?;
        if t <= std::time::SystemTime::now() {
            return None;
        }
    }
    let token = pki::Token::parse(&format!(
        "{}.{}",
        field("token-id")?,
        field("token-secret")?
    ))
    .ok()?;
    (token.id == id).then_some((token, TokenUse::Node))
}

struct Service {
    pki: Arc<ClusterPki>,
    store: Arc<dyn ObjectStore>,
}

/// The `Bootstrap` service for the peer port.
pub fn service(
    pki: Arc<ClusterPki>,
    store: Arc<dyn ObjectStore>,
) -> BootstrapServer<impl Bootstrap> {
    BootstrapServer::new(Service { pki, store })
}

#[tonic::async_trait]
impl Bootstrap for Service {
    async fn hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloResponse>, Status> {
        let req = req.into_inner();
        if req.nonce.len() < 16 || req.nonce.len() > 256 {
            return Err(Status::invalid_argument("nonce must be 16 to 256 bytes"));
        }
        let Some((token, _)) = find_token(self.store.as_ref(), &self.pki, &req.token_id).await
        else {
            // Same answer for every unknown id: which ids exist is not told.
            return Err(Status::unauthenticated("unknown token"));
        };
        let leaf = pki::parse_certs(&self.pki.member.cert_pem())
            .map_err(|e| Status::internal(e.to_string()))?
            .remove(0);
        let ca_pem = self.pki.ca_pem().to_string();
        let proof = pki::hello_proof(&token, &req.nonce, &ca_pem, &leaf);
        Ok(Response::new(HelloResponse { ca_pem, proof }))
    }

    async fn join_member(
        &self,
        req: Request<JoinMemberRequest>,
    ) -> Result<Response<JoinMemberResponse>, Status> {
        let req = req.into_inner();
        if !self.pki.token.matches(&req.token) {
            return Err(Status::unauthenticated("invalid cluster token"));
        }
        if req.name.is_empty() || req.name.len() > 253 || req.sans.len() > 64 {
            return Err(Status::invalid_argument("bad member name or too many SANs"));
        }
        let identity = MemberIdentity {
            name: req.name.clone(),
            sans: req.sans.clone(),
            validity: self.pki.validity(),
        };
        let issued = self
            .pki
            .ca
            .issue(&security::member_request(&identity))
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let keys = self.pki.member_keys();
        tracing::info!(member = %req.name, "issued member keys to a joining member");
        Ok(Response::new(JoinMemberResponse {
            ca_cert_pem: keys.ca_cert_pem,
            ca_key_pem: keys.ca_key_pem,
            service_account_key: keys.sa_secret,
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        }))
    }
}

async fn channel(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
) -> anyhow::Result<tonic::transport::Channel> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10));
    Ok(endpoint
        .connect_with_connector(pki::net::grpc_connector(config))
        .await?)
}

/// First contact with the server at `addr`: the CA, once the server proved it holds `token`.
///
/// # Errors
/// As [`pki::hello::verify_hello`].
pub async fn verify_hello(addr: &str, token: &pki::Token) -> anyhow::Result<String> {
    pki::hello::verify_hello(addr, token, security::ALPN_H2, |config| {
        channel(addr, config)
    })
    .await
}

/// Gets the cluster keys from the running member at `addr` with the cluster token: what a member
/// that joins (or starts as a non-first initial member) needs before anything else.
///
/// # Errors
/// When the server cannot be reached, fails the proof, or refuses the token.
pub async fn fetch_member_keys(
    addr: &str,
    token: &pki::Token,
    identity: &MemberIdentity,
) -> anyhow::Result<MemberKeys> {
    let ca = verify_hello(addr, token).await?;
    let config = pki::client_config(&ca, None, &[security::ALPN_H2])?;
    let mut client = BootstrapClient::new(channel(addr, config).await?);
    let resp = client
        .join_member(JoinMemberRequest {
            token: token.to_string(),
            name: identity.name.clone(),
            sans: identity.sans.clone(),
        })
        .await
        .with_context(|| format!("join as member through {addr}"))?
        .into_inner();
    if resp.ca_cert_pem != ca {
        bail!("{addr} answered with another CA than it proved");
    }
    Ok(MemberKeys {
        ca_cert_pem: resp.ca_cert_pem,
        ca_key_pem: resp.ca_key_pem,
        sa_secret: resp.service_account_key,
    })
}
