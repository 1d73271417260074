//! `include/suitex_events.h` is what cbindgen generates from this crate, byte for byte.
//! Regenerate it with `SUITEX_BLESS=1 cargo test -p suitex-events-ffi --test header`.

use std::path::Path;

#[test]
fn the_committed_header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let generated = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut fresh = Vec::new();
    generated.write(&mut fresh);
    let path = crate_dir.join("../include/suitex_events.h");
    if std::env::var_os("SUITEX_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/suitex_events.h is stale: regenerate it with SUITEX_BLESS=1 cargo test -p suitex-events-ffi --test header"
    );
}
