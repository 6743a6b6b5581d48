//! What the node reports about itself: capacity (CPUs, memory from /proc/meminfo, 110 pods), conditions
//! and nodeInfo, as NodeStatus JSON.

use serde_json::{json, Value};

/// Total memory in KiB from `/proc/meminfo`.
pub fn mem_total_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Number of CPUs.
pub fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// NodeStatus JSON for heartbeats and Join.
pub fn node_status(node_name: &str, node_ip: &str, runtime: &str) -> Value {
    let capacity = json!({"cpu": cpus().to_string(), "memory": format!("{}Ki", mem_total_kib()), "pods": "110"});
    json!({
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "berth-agent is posting ready status"},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID"},
        ],
        "addresses": [{"type": "InternalIP", "address": node_ip}, {"type": "Hostname", "address": node_name}],
        "nodeInfo": {
            "kubeletVersion": "v1.33.0-berth",
            "kubeProxyVersion": "v1.33.0-berth",
            "containerRuntimeVersion": runtime,
            "kernelVersion": kernel(),
            "osImage": "berth",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "machineID": "", "systemUUID": "", "bootID": ""
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn capacity_is_read_from_the_host() {
        let s = super::node_status("n1", "127.0.0.1", "crun");
        assert_eq!(s["capacity"]["pods"], "110");
        assert!(super::mem_total_kib() > 0);
        assert_eq!(s["capacity"]["cpu"], super::cpus().to_string());
    }
}
