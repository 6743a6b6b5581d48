//! `berth-server`: one member of the berth control plane.

fn main() {
    println!("berth-server");
}
