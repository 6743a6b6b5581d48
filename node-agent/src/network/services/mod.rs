//! Service load balancing in nftables, after kube-proxy's nftables mode: table `ip berth` with a dispatch map from
//! `ClusterIP . proto . port` (and `proto . nodePort` on local addresses) to a per-service-port chain that picks a
//! ready endpoint with `numgen random`, optional ClientIP affinity sets, masquerade marks for hairpin and
//! off-cluster sources, and rejects for services without endpoints. A change to one service is applied as one
//! `nft -f` transaction that rebuilds only that service's chains and map elements.
//!
//! Split in two: `render` is pure (what to write), `proxy` holds the state and does the writing.

mod proxy;
mod render;

pub use proxy::ServiceProxy;
pub use render::{
    is_headless, render_base, render_service, ProxyConfig, RenderedService, AFFINITY_TIMEOUT_SECS,
    MASQ_MARK, TABLE,
};

#[cfg(test)]
mod tests;
