//! An agent's [`Summary`] to usage, as metrics-server decodes a kubelet's: a node or pod without
//! both CPU and memory is left out rather than shown as zero, so the HPA never scales on a guess.

use std::time::{Duration, SystemTime};

use apimachinery::stats::{ContainerStats, CpuStats, MemoryStats, Summary};
use apimachinery::time::parse_rfc3339;

use super::{ContainerUsage, NodeUsage, PodUsage};

/// End and length of a CPU window, when it is usable (a zero window has no rate).
fn window(cpu: &CpuStats) -> Option<(SystemTime, Duration)> {
    let end = parse_rfc3339(&cpu.time)?;
    (cpu.window_nano_seconds > 0).then(|| (end, Duration::from_nanos(cpu.window_nano_seconds)))
}

fn measured<'a>(
    cpu: &'a Option<CpuStats>,
    memory: &'a Option<MemoryStats>,
) -> Option<(&'a CpuStats, &'a MemoryStats)> {
    Some((cpu.as_ref()?, memory.as_ref()?))
}

/// The usage of node `name` (the name of the Node object the summary was fetched for: what the
/// agent calls itself is not trusted).
pub fn node_usage(name: &str, summary: &Summary) -> Option<NodeUsage> {
    let (cpu, memory) = measured(&summary.node.cpu, &summary.node.memory)?;
    let (timestamp, window) = window(cpu)?;
    Some(NodeUsage {
        name: name.to_string(),
        timestamp,
        window,
        cpu_nanocores: cpu.usage_nano_cores,
        memory_bytes: memory.working_set_bytes,
    })
}

fn container_usage(c: &ContainerStats) -> Option<(ContainerUsage, SystemTime, Duration)> {
    let (cpu, memory) = measured(&c.cpu, &c.memory)?;
    let (end, len) = window(cpu)?;
    Some((
        ContainerUsage {
            name: c.name.clone(),
            cpu_nanocores: cpu.usage_nano_cores,
            memory_bytes: memory.working_set_bytes,
        },
        end,
        len,
    ))
}

/// The pods of a summary, optionally of one namespace. A pod with any unmeasured container is left
/// out whole (metrics-server does the same: a partial sum would under-report the pod).
pub fn pod_usages(summary: &Summary, namespace: Option<&str>) -> Vec<PodUsage> {
    summary
        .pods
        .iter()
        .filter(|p| namespace.is_none_or(|ns| p.pod_ref.namespace == ns))
        .filter_map(|p| {
            if p.containers.is_empty() || p.pod_ref.name.is_empty() {
                return None;
            }
            let measured: Option<Vec<_>> = p.containers.iter().map(container_usage).collect();
            let measured = measured?;
            // The pod's window is its latest container sample, as metrics-server's.
            let (timestamp, window) = measured
                .iter()
                .map(|(_, end, len)| (*end, *len))
                .max_by_key(|(end, _)| *end)?;
            Some(PodUsage {
                namespace: p.pod_ref.namespace.clone(),
                name: p.pod_ref.name.clone(),
                timestamp,
                window,
                containers: measured.into_iter().map(|(c, _, _)| c).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::stats::{NodeStats, PodReference, PodStats};

    fn cpu(nanocores: u64, window_ns: u64) -> Option<CpuStats> {
        Some(CpuStats {
            time: "2026-01-01T00:00:10Z".into(),
            window_nano_seconds: window_ns,
            usage_nano_cores: nanocores,
            usage_core_nano_seconds: 1,
        })
    }

    fn mem(bytes: u64) -> Option<MemoryStats> {
        Some(MemoryStats {
            time: "2026-01-01T00:00:10Z".into(),
            working_set_bytes: bytes,
            usage_bytes: bytes * 2,
        })
    }

    fn container(name: &str, c: Option<CpuStats>, m: Option<MemoryStats>) -> ContainerStats {
        ContainerStats {
            name: name.into(),
            cpu: c,
            memory: m,
        }
    }

    fn pod(ns: &str, name: &str, containers: Vec<ContainerStats>) -> PodStats {
        PodStats {
            pod_ref: PodReference {
                name: name.into(),
                namespace: ns.into(),
                uid: "u".into(),
            },
            cpu: None,
            memory: None,
            containers,
        }
    }

    fn at10() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_610)
    }

    #[test]
    fn node_usage_takes_the_object_name_and_the_working_set() {
        let s = Summary {
            node: NodeStats {
                node_name: "claims-to-be-n2".into(),
                cpu: cpu(250_000_000, 2_000_000_000),
                memory: mem(512 << 20),
            },
            pods: vec![],
        };
        assert_eq!(
            node_usage("n1", &s),
            Some(NodeUsage {
                name: "n1".into(),
                timestamp: at10(),
                window: Duration::from_secs(2),
                cpu_nanocores: 250_000_000,
                memory_bytes: 512 << 20,
            })
        );
        // Unmeasured, half-measured or a zero window: left out.
        let mut half = s.clone();
        half.node.memory = None;
        assert_eq!(node_usage("n1", &half), None);
        let mut zero = s.clone();
        zero.node.cpu = cpu(1, 0);
        assert_eq!(node_usage("n1", &zero), None);
        let mut bad_time = s;
        bad_time.node.cpu.as_mut().unwrap().time = "yesterday".into();
        assert_eq!(node_usage("n1", &bad_time), None);
    }

    #[test]
    fn pod_usages_keep_fully_measured_pods_of_the_namespace() {
        let s = Summary {
            node: NodeStats::default(),
            pods: vec![
                pod(
                    "default",
                    "web",
                    vec![
                        container("app", cpu(1_000_000, 2_000_000_000), mem(4096)),
                        container("sidecar", cpu(500, 2_000_000_000), mem(8192)),
                    ],
                ),
                pod(
                    "default",
                    "half",
                    vec![
                        container("a", cpu(1, 1), mem(1)),
                        container("b", cpu(1, 1), None),
                    ],
                ),
                pod("default", "empty", vec![]),
                pod(
                    "kube-system",
                    "dns",
                    vec![container("dns", cpu(7, 1), mem(1))],
                ),
            ],
        };
        let all = pod_usages(&s, None);
        let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["web", "dns"]);
        let web = &all[0];
        assert_eq!(web.window, Duration::from_secs(2));
        assert_eq!(web.timestamp, at10());
        assert_eq!(web.cpu_nanocores(), 1_000_500);
        assert_eq!(web.memory_bytes(), 12288);
        assert_eq!(
            web.containers[1],
            ContainerUsage {
                name: "sidecar".into(),
                cpu_nanocores: 500,
                memory_bytes: 8192
            }
        );
        let system = pod_usages(&s, Some("kube-system"));
        assert_eq!(system.len(), 1);
        assert_eq!(system[0].namespace, "kube-system");
    }
}
