//! Links the function as a position-dependent executable: a position-independent one carries a
//! dynamic relocation for every pointer in its read-only data (about 1.7 MiB here), which the
//! loader resolves at each start. docs/security.md says what this gives up and why it is kept.

fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
