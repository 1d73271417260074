//! The web tier's artifacts — the PHP extension and the C library — link the emit side only:
//! no database driver, no command-line parser. Checked on the dependency graph cargo resolves
//! for each of them alone (as their release builds see it), so a dependency added to the wrong
//! side fails here rather than in a php-fpm worker.

use std::collections::BTreeSet;
use std::process::Command;

/// The lines `cargo <args>` prints (offline, from the lock file), run in the SDK's directory.
fn cargo_lines(args: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .args(["--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

/// The lines `cargo tree` prints with `args`.
fn cargo_tree_lines(args: &[&str]) -> Vec<String> {
    cargo_lines(&[&["tree"], args].concat())
}

/// The normal (non-dev, non-build) dependency graph of what `args` select, one package a line
/// in `format`.
fn cargo_tree(format: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["-e", "normal", "--prefix", "none", "--format", format];
    all.extend(args);
    cargo_tree_lines(&all).iter().map(|l| l.trim_end_matches(" (*)").to_string()).collect()
}

/// Packages in the normal (non-dev, non-build) dependency graph of `package` with `args`,
/// `depth` levels deep (`None`: all).
fn tree(package: &str, args: &[&str], depth: Option<u32>) -> Vec<String> {
    let depth = depth.map(|d| d.to_string());
    let mut all = vec!["-p", package];
    if let Some(d) = &depth {
        all.extend(["--depth", d]);
    }
    all.extend(args);
    cargo_tree("{p}", &all).iter().filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect()
}

/// Never in the web tier's graph: the database driver and the command-line parser.
const NEVER: [&str; 5] = ["sqlx", "sqlx-core", "sqlx-mysql", "clap", "clap_builder"];

fn assert_emit_only(package: &str, args: &[&str]) {
    let deps = tree(package, args, None);
    assert!(deps.iter().any(|d| d == "google-cloud-pubsub"), "{package} was resolved: {deps:?}");
    let found: Vec<&String> = deps.iter().filter(|d| NEVER.contains(&d.as_str())).collect();
    assert!(found.is_empty(), "{package} {args:?} links {found:?}, which belong to the worker side");
}

#[test]
fn the_php_extension_links_no_database_driver_and_no_command_line() {
    assert_emit_only("suitex_events", &[]);
    assert_emit_only("suitex_events", &["--no-default-features"]);
}

#[test]
fn the_c_library_links_no_database_driver_and_no_command_line() {
    assert_emit_only("suitex-events-ffi", &[]);
}

#[test]
fn the_sdk_adds_no_worker_dependency_of_its_own_to_the_emit_and_consume_sides() {
    assert_emit_only("suitex-events", &[]);
    // Google's clients bring their own anyhow (code generation) and tracing-subscriber
    // (telemetry); the SDK itself adds neither, nor the database driver, outside the worker.
    let direct = tree("suitex-events", &["--no-default-features", "--features", "emit,consume"], Some(1));
    for own in ["anyhow", "tracing-subscriber", "sqlx", "clap", "prometheus-client", "reqwest"] {
        assert!(!direct.iter().any(|d| d == own), "the emit/consume SDK depends on {own}: {direct:?}");
    }
    let worker = tree("suitex-events", &["--features", "worker"], Some(1));
    assert!(worker.iter().any(|d| d == "sqlx"), "the worker feature brings the event store: {worker:?}");
}

/// The features of `serde_json` cargo resolves for `package` with `args`.
fn serde_json_features(package: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["-e", "features", "-i", "serde_json", "-p", package];
    all.extend(args);
    let mut features: Vec<String> = cargo_tree_lines(&all)
        .iter()
        .filter_map(|l| l.split("serde_json feature \"").nth(1)?.split('"').next().map(str::to_string))
        .collect();
    features.sort();
    features.dedup();
    features
}

/// Exact payloads (docs/architecture.md §2.1) are judged on the JSON text and hold whatever
/// `serde_json` features a build unifies; still, `arbitrary_precision` would change how every
/// `Value` holds numbers and breaks `#[serde(flatten)]` and untagged enums — which the Google
/// clients' generated types use — so no build of the backbone may enable it, and the lossless
/// round trip of a double (`float_roundtrip`) must stay on.
#[test]
fn no_build_enables_serde_json_arbitrary_precision_and_doubles_round_trip() {
    for (package, args) in [
        ("suitex_events", &[][..]),
        ("suitex-events-ffi", &[][..]),
        ("suitex-events", &["--features", "worker,cli"][..]),
    ] {
        let features = serde_json_features(package, args);
        assert!(features.iter().any(|f| f == "float_roundtrip"), "{package} {args:?}: {features:?}");
        assert!(
            !features.iter().any(|f| f == "arbitrary_precision"),
            "{package} {args:?} enables arbitrary_precision: {features:?}"
        );
    }
}

/// scripts/test builds the PHP extension alone, as it ships, after the workspace build. Every
/// crate it links beside the SDK must resolve with the features the workspace build gave it, or
/// that build compiles it — and every crate above it — a second time (php-ext/Cargo.toml lists
/// the features the extension takes on for this; the build-override profile does the same for
/// proc-macros).
#[test]
fn the_php_extension_alone_resolves_its_dependencies_as_the_workspace_build_does() {
    // The workspace build compiles the tests too: the dev-dependencies' features count.
    let workspace: BTreeSet<String> =
        cargo_tree("{p}|{f}", &["--workspace", "-e", "dev"]).into_iter().collect();
    let alone: BTreeSet<String> = cargo_tree("{p}|{f}", &["-p", "suitex_events"]).into_iter().collect();
    let other: Vec<&String> =
        alone.difference(&workspace).filter(|l| !l.starts_with("suitex-events ")).collect();
    assert!(
        other.is_empty(),
        "built alone, the PHP extension resolves these crates with features the workspace build does not give them (add them to php-ext/Cargo.toml's list): {other:?}"
    );
    assert!(alone.iter().any(|l| l.starts_with("tokio ")), "the extension was resolved: {alone:?}");
}

#[test]
fn the_crate_package_is_self_contained_and_carries_its_migrations() {
    let files = cargo_lines(&["package", "--list", "--allow-dirty", "-p", "suitex-events"]);
    for wanted in ["README.md", "migrations/0001_create_event_store.sql", "examples/emit.rs", "src/lib.rs"] {
        assert!(files.iter().any(|f| f == wanted), "the package lacks {wanted}:\n{}", files.join("\n"));
    }
    assert!(!files.iter().any(|f| f.starts_with("../") || f.starts_with("target/")), "{}", files.join("\n"));
}
