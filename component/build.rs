//! Links the component with a 128 KiB stack (Rust's default is 1 MiB) at the
//! bottom of its memory, so that what one operation touches (the top of the
//! stack, the data, the heap) sits in the first few hundred KiB: the part the
//! host keeps resident between fresh instances (host/src/runtime/mod.rs).
//! A deeper recursion than that traps, and the operation writes nothing.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=131072");
    }
}
