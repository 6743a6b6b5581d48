//! Registry pulls through `oci-client`; registries on loopback are spoken to over plain HTTP.

use super::{Error, ImageRecord, ImageStore, LayerRef, Reference, Result};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use sha2::{Digest, Sha256};

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
    let config: serde_json::Value =
        serde_json::from_slice(&data.config.data).map_err(|e| fail(e.to_string()))?;
    let ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
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
    let mut layers = Vec::new();
    for (i, digest) in order.iter().enumerate() {
        let l = stored
            .get(digest)
            .ok_or_else(|| fail(format!("layer {digest} missing from the pull")))?;
        // Registries without diff_ids in the config (rare) get them computed from the uncompressed layer.
        let diff_id = match ids.get(i) {
            Some(id) => id.clone(),
            None => {
                let mut raw = Vec::new();
                let mut dec = flate2::read::GzDecoder::new(&l.data[..]);
                if std::io::Read::read_to_end(&mut dec, &mut raw).is_err() {
                    raw = l.data.to_vec();
                }
                format!("sha256:{}", hex::encode(Sha256::digest(&raw)))
            }
        };
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
