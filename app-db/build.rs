// embed_migrations! reads migrations/ at compile time; a new or removed migration folder
// must rebuild the crate, which cargo would not notice by itself.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
