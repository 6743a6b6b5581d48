//! Registry pulls through `oci-client`; registries on loopback are spoken to over plain HTTP.

use super::{digest_hex, Error, ImageRecord, ImageStore, LayerRef, Reference, Result};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;

const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
];

pub(super) async fn pull(store: &ImageStore, image: &str) -> Result<ImageRecord> {
    let fail = |message: String| Error::PullFailed {
        image: image.to_string(),
        message,
    };
    let r = Reference::parse(image).map_err(fail)?;
    let protocol = if r.is_local_registry() {
        ClientProtocol::HttpsExcept(vec![r.registry.clone()])
    } else {
        ClientProtocol::Https
    };
    // reqwest's rustls has no built-in provider here (no aws-lc, no OpenSSL): ring, process-wide.
    pki::install_crypto_provider();
    let client = oci_client::Client::new(ClientConfig {
        protocol,
        ..Default::default()
    });
    let oref: oci_client::Reference = r.full().parse().map_err(|e| fail(format!("{e}")))?;
    let data = client
        .pull(&oref, &RegistryAuth::Anonymous, LAYER_TYPES.to_vec())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let config_digest = store.put_blob(&data.config.data)?;
    if let Some(m) = &data.manifest {
        if m.config.digest != config_digest {
            return Err(Error::DigestMismatch(m.config.digest.clone()));
        }
    }
    let config: serde_json::Value =
        serde_json::from_slice(&data.config.data).map_err(|e| fail(e.to_string()))?;
    let ids = super::import::diff_ids(&config)?;
    // The client fetches layers concurrently and returns them in completion order: store them all, then
    // order them by the manifest (bottom first), which is also the order of the config's diff_ids.
    let mut stored = std::collections::HashMap::new();
    for l in &data.layers {
        stored.insert(store.put_blob(&l.data)?, l);
    }
    let order: Vec<String> = match &data.manifest {
        Some(m) => m.layers.iter().map(|d| d.digest.clone()).collect(),
        None => return Err(fail("registry returned no manifest".into())),
    };
    // A config without one diff_id per layer is not a valid image (OCI image-spec, config.md); the
    // diff_ids are checked against the content when the layers are unpacked.
    if ids.len() != order.len() {
        return Err(Error::Invalid(format!(
            "{} layers but {} diff_ids",
            order.len(),
            ids.len()
        )));
    }
    let mut layers = Vec::new();
    for (digest, diff_id) in order.iter().zip(ids) {
        digest_hex(digest)?;
        if !stored.contains_key(digest) {
            return Err(fail(format!("layer {digest} missing from the pull")));
        }
        layers.push(LayerRef {
            digest: digest.clone(),
            diff_id,
        });
    }
    let rec = ImageRecord {
        name: r.full(),
        manifest_digest: data.digest.clone(),
        config_digest,
        layers,
    };
    store.layer_dirs(&rec)?;
    store.tag(rec.clone())?;
    Ok(rec)
}
