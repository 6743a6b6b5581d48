//! The labels and annotations a stack puts on its objects.

/// Label on every object of a stack (the Swarm label name), with the stack's name.
pub const STACK_LABEL: &str = "com.docker.stack.namespace";
/// The namespace label of the Pod Security level the API server enforces there.
pub const POD_SECURITY_LABEL: &str = "pod-security.kubernetes.io/enforce";
/// Label on a service's Deployment (or DaemonSet), Service and pods, with the Compose service name.
pub const SERVICE_LABEL: &str = "com.docker.stack.service.name";

/// Pod template annotation with a hash of the configs and secrets the service mounts.
pub const FILES_HASH: &str = "berth.dev/configs-hash";

/// The service key that asks for a HorizontalPodAutoscaler (a Compose extension field, so other tools ignore it).
pub const AUTOSCALE_KEY: &str = "x-berth-autoscale";
