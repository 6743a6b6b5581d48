//! `berth-agent`: runs the pods bound to this node.

fn main() {
    println!("berth-agent");
}
