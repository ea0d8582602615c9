//! The migrations are embedded in the binary (`embed_migrations!`): rebuild when one is
//! added or changed, which cargo cannot see on its own.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
