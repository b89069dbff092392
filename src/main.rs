//! The `clientlog` command line: wires configuration to the library crates.

fn main() {
    println!("clientlog");
}
