//! Gives the shared library its soname, `libsuitex_events.so.<ABI>`: programs linked against it
//! record that name, so a library with an incompatible ABI (a different number) is never loaded
//! in its place. Raise `ABI` with every change a compiled C program would notice (a struct's
//! layout, a function's signature, a result code's meaning); include/README.md lists them.

/// The C ABI's version, `SUITEX_ABI_VERSION` in `src/lib.rs` (a test compares the built
/// library's soname with it). 1: `suitex_emit_receipt.spooled`, `SUITEX_ERR_SPOOL_FULL`,
/// `SUITEX_ERR_SPOOL`, `SUITEX_ERR_OTHER` (before it, the library had no soname).
const ABI: u32 = 1;

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsuitex_events.so.{ABI}");
    println!("cargo:rerun-if-changed=build.rs");
}
