//! `berthctl`: the berth command-line tool.

fn main() {
    println!("berthctl");
}
