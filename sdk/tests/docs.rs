//! The docs and the code cannot drift apart: the README's configuration table is generated from
//! the SDK's one list of settings (regenerate it with `SUITEX_BLESS=1 cargo test -p
//! suitex-events --test docs`).

use std::path::Path;

const BEGIN: &str = "<!-- settings:begin (generated from sdk/src/settings; SUITEX_BLESS=1 cargo test -p suitex-events --test docs) -->\n";
const END: &str = "<!-- settings:end -->";

#[test]
fn the_readme_configuration_table_is_the_settings_list() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme.find(BEGIN).expect("README.md has the settings markers") + BEGIN.len();
    let end = start + readme[start..].find(END).expect("README.md closes the settings markers");
    let table = suitex_events::settings::markdown_table();
    if std::env::var_os("SUITEX_BLESS").is_some() {
        std::fs::write(&path, format!("{}{table}{}", &readme[..start], &readme[end..])).unwrap();
        return;
    }
    assert_eq!(
        &readme[start..end],
        table,
        "README.md's configuration table is stale: SUITEX_BLESS=1 cargo test -p suitex-events --test docs"
    );
    for s in suitex_events::settings::ALL {
        assert_eq!(
            readme[start..end].matches(&format!("| `{}` |", s.name)).count(),
            1,
            "{} in the table",
            s.name
        );
    }
}
