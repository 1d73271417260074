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

fn repository() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file below `dir`, as a path relative to the repository root.
fn rust_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(repository()).unwrap();
            out.push(relative.to_string_lossy().into_owned());
        }
    }
}

#[test]
fn the_design_documents_module_table_is_the_sdk_source_tree() {
    let doc = std::fs::read_to_string(repository().join("docs/architecture.md")).unwrap();
    let start = doc.find("<!-- layout:begin -->").expect("docs/architecture.md has the layout markers");
    let end = doc.find("<!-- layout:end -->").expect("docs/architecture.md closes the layout markers");
    let mut documented: Vec<String> = doc[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next().map(str::to_owned))
        .collect();
    let mut tree = Vec::new();
    rust_files(&repository().join("sdk/src"), &mut tree);
    documented.sort();
    tree.sort();
    let missing: Vec<_> = tree.iter().filter(|f| !documented.contains(f)).collect();
    let stale: Vec<_> = documented.iter().filter(|f| !tree.contains(f)).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/architecture.md §3.1 and sdk/src differ: not in the table {missing:?}; in the table but not in the tree {stale:?}"
    );
    assert_eq!(documented.len(), tree.len(), "each module once in the table");
}

/// The repository explains itself: nothing in it sends the reader to a file outside it.
#[test]
fn no_file_cites_a_design_document_outside_the_repository() {
    let mut offenders = Vec::new();
    let mut stack = vec![repository()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                // `.services`: the local services' state (venvs of third-party packages), not the project.
                if !matches!(
                    name.as_str(),
                    ".git" | ".services" | "target" | "vendor" | "node_modules" | "fixtures"
                ) {
                    stack.push(path);
                }
                continue;
            }
            if name.ends_with(".lock") || name.ends_with(".json") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            for (n, line) in text.lines().enumerate() {
                if line.contains(concat!("../", "shared")) || line.contains(concat!("DESIGN", " §")) {
                    offenders.push(format!("{}:{}: {line}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "cite docs/architecture.md instead:\n{}", offenders.join("\n"));
}

/// The SDK's top-level modules, each with the top-level modules it may use
/// (docs/architecture.md §5.2): the foundations use only foundations, each side only the
/// foundations and the sides below it, the command line anything.
const LAYERS: &[(&str, &[&str])] = &[
    ("error", FOUNDATIONS),
    ("settings", FOUNDATIONS),
    ("envelope", FOUNDATIONS),
    ("config", FOUNDATIONS),
    ("deadline", FOUNDATIONS),
    ("clients", FOUNDATIONS),
    ("claim_check", FOUNDATIONS),
    ("ordered_publisher", FOUNDATIONS),
    ("per_process", FOUNDATIONS),
    ("serve", FOUNDATIONS),
    ("trace", FOUNDATIONS),
    ("telemetry", FOUNDATIONS),
    ("emit", FOUNDATIONS),
    ("consume", FOUNDATIONS),
    ("store", FOUNDATIONS),
    ("worker", &["consume", "store"]),
    ("cli", &["emit", "consume", "store", "worker"]),
    ("main", &["cli"]),
];
const FOUNDATIONS: &[&str] = &[
    "error",
    "settings",
    "envelope",
    "config",
    "deadline",
    "clients",
    "claim_check",
    "ordered_publisher",
    "per_process",
    "serve",
    "trace",
    "telemetry",
];

#[test]
fn every_import_runs_downward_and_none_goes_through_the_crate_root() {
    let mut files = Vec::new();
    rust_files(&repository().join("sdk/src"), &mut files);
    let mut wrong = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("sdk/src/lib.rs")) {
        let top = file.trim_start_matches("sdk/src/").split(['/', '.']).next().unwrap().to_string();
        let (_, above) = LAYERS
            .iter()
            .find(|(m, _)| *m == top)
            .unwrap_or_else(|| panic!("{file}: module {top} is not in the layer table"));
        let text = std::fs::read_to_string(repository().join(file)).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            for (i, _) in code.match_indices("crate::") {
                let used: String =
                    code[i + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                let through_root = used.chars().next().is_some_and(char::is_uppercase);
                let allowed =
                    used == top || FOUNDATIONS.contains(&used.as_str()) || above.contains(&used.as_str());
                if through_root || !allowed {
                    wrong.push(format!(
                        "{file}:{}: crate::{used} ({top} may not use it): {}",
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that do not run downward (docs/architecture.md §5.2):\n{}",
        wrong.join("\n")
    );
}
