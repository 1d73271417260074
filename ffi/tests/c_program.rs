//! The C test program (tests/c/emit_test.c), compiled with warnings as errors against
//! include/suitex_events.h and libsuitex_events.so, run against the Pub/Sub emulator and
//! fake-gcs-server — natively, and under valgrind's memcheck.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use suitex_test_support::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Where cargo put libsuitex_events.so for this test run, with the link a program linked
/// against it loads it by: its soname (cargo makes the file, not the link; an installed library
/// has both, see ffi/Makefile).
fn lib_dir() -> PathBuf {
    // target/<profile>/deps/c_program-… → target/<profile>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(
        dir.join("libsuitex_events.so").exists(),
        "libsuitex_events.so is not in {} (cargo build -p suitex-events-ffi)",
        dir.display()
    );
    match std::os::unix::fs::symlink("libsuitex_events.so", dir.join(soname(&dir))) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => panic!("linking the soname: {e}"),
        _ => {}
    }
    dir
}

/// The soname recorded in the built library (`readelf -d`).
fn soname(dir: &Path) -> String {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(dir.join("libsuitex_events.so"))
        .output()
        .expect("readelf is installed (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("(SONAME)")).expect("the library has a soname");
    line[line.find('[').unwrap() + 1..line.rfind(']').unwrap()].to_string()
}

#[test]
fn the_library_is_named_for_its_abi_version() {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    // The crate is a cdylib + staticlib: its constant is read from the source.
    let source = std::fs::read_to_string(repo().join("ffi/src/lib.rs")).unwrap();
    let abi: u32 = source
        .lines()
        .find_map(|l| l.strip_prefix("pub const SUITEX_ABI_VERSION: u32 = ")?.strip_suffix(';')?.parse().ok())
        .expect("ffi/src/lib.rs defines SUITEX_ABI_VERSION");
    assert_eq!(
        soname(&dir),
        format!("libsuitex_events.so.{abi}"),
        "ffi/build.rs and SUITEX_ABI_VERSION agree"
    );
    let header = std::fs::read_to_string(repo().join("include/suitex_events.h")).unwrap();
    assert!(header.contains(&format!("#define SUITEX_ABI_VERSION {abi}")), "the header names the ABI");
}

/// Builds `ffi/tests/c/<source>.c` against the library as `<name>-<unique>`.
fn compile_source(source: &str, name: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!("{name}-{}", unique()));
    let lib = lib_dir();
    let status = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread", "-g"])
        .arg(repo().join(format!("ffi/tests/c/{source}.c")))
        .arg("-I")
        .arg(repo().join("include"))
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lsuitex_events", "-o"])
        .arg(&out)
        .status()
        .expect("gcc is installed");
    assert!(status.success(), "{source}.c does not compile cleanly with -Wall -Wextra -Werror");
    out
}

fn compile(name: &str) -> PathBuf {
    compile_source("emit_test", name)
}

fn run(program: &[&Path], config: &sdk::Config) -> Output {
    let mut cmd = Command::new(program[0]);
    cmd.args(&program[1..])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(config.to_settings());
    cmd.output().unwrap()
}

/// Checks the program passed and every event it says it emitted arrived on events.raw.
async fn check(out: &Output, config: &sdk::Config, probe: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("FAIL "), "the C checks failed:\n{stderr}");
    let emitted: Vec<(String, String)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("emitted "))
        .map(|l| {
            let (id, loc) = l.split_once(' ').unwrap();
            (id.to_string(), loc.to_string())
        })
        .collect();
    assert_eq!(
        emitted.len(),
        107,
        "2 single emits, a batch of 3, 1 deprecated emit, 4 threads x 25, 1 through a JSON-configured handle:\n{stdout}"
    );
    assert_eq!(emitted.iter().filter(|(_, l)| l == "gcs").count(), 1);
    let got = receive(config, probe, emitted.len(), Duration::from_secs(60)).await;
    let arrived: HashSet<&str> = got.iter().map(|m| attr(m, "event_id")).collect();
    let want: HashSet<&str> = emitted.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(arrived, want, "every event the C program emitted is on events.raw");
    // Numbers the ledger holds exactly arrive as they were written.
    let small = got
        .iter()
        .find(|m| attr(m, "event_id") == "0190a7f2-4c1e-7b3a-9d2e-000000000001")
        .expect("the small event arrived");
    let data = String::from_utf8_lossy(&small.data);
    assert!(data.contains(r#""max":18446744073709551615"#) && data.contains(r#""rate":0.1"#), "{data}");
    // The trace context the C caller put in the metadata, in the official clients' attribute.
    assert_eq!(
        attr(small, "googclient_traceparent"),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_program_passes_against_the_emulators() {
    let program = compile("emit_test");
    let config = emulator_config("c").build().unwrap();
    let probe = provision_with_probe(&config).await;
    let out = run(&[&program], &config);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    check(&out, &config, &probe).await;
    std::fs::remove_file(program).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_valgrind_memcheck_there_are_no_errors_and_nothing_definitely_lost() {
    let program = compile("emit_test_valgrind");
    let config = emulator_config("cvg").build().unwrap();
    let probe = provision_with_probe(&config).await;
    let valgrind = Path::new("/usr/bin/valgrind");
    assert!(valgrind.exists(), "valgrind is not installed (apt-get install valgrind)");
    let out = run(
        &[
            valgrind,
            Path::new("--tool=memcheck"),
            Path::new("--leak-check=full"),
            Path::new("--errors-for-leak-kinds=definite"),
            Path::new("--error-exitcode=99"),
            &program,
        ],
        &config,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "valgrind or the program failed:\n{stderr}");
    assert!(stderr.contains("ERROR SUMMARY: 0 errors"), "memcheck reported errors:\n{stderr}");
    let definitely = stderr.lines().find(|l| l.contains("definitely lost:"));
    assert!(
        definitely.is_none_or(|l| l.contains("definitely lost: 0 bytes")),
        "memory definitely lost:\n{stderr}"
    );
    check(&out, &config, &probe).await;
    std::fs::remove_file(program).ok();
}

#[test]
fn the_example_builds_with_its_makefile() {
    let out_dir = std::env::temp_dir().join(format!("suitex-example-{}", unique()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let status = Command::new("make")
        .arg("-C")
        .arg(repo().join("ffi/examples"))
        .arg(format!("LIBDIR={}", lib_dir().display()))
        .arg("emit")
        .status()
        .expect("make is installed");
    assert!(status.success(), "make -C ffi/examples failed");
    let example = repo().join("ffi/examples/emit");
    let out = Command::new(&example)
        .arg("{\"account_id\": 0}")
        .env_clear()
        .env("SUITEX_EVENTS_PROJECT", "suitex-prod")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "emit: SUITEX_ERR_VALIDATION: account_id must be an integer from 1 to 18446744073709551615; got 0\n"
    );
    std::fs::remove_file(example).ok();
    std::fs::remove_dir_all(out_dir).ok();
}

/// A C program's emit continues the trace context it gives in the metadata: with the `OTEL_*`
/// variables set, the library exports the emit's `create` span (a child of that context) and
/// its `publish` span to a real OTLP receiver, under the executable's name, before
/// `suitex_emitter_free` returns; the event carries the `create` span's context.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_programs_emit_exports_its_spans_continuing_the_callers_trace() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CALLER: &str = "00f067aa0ba902b7";
    let program = compile_source("trace_test", "trace_test");
    let config = emulator_config("ctrace").build().unwrap();
    let probe = provision_with_probe(&config).await;
    let receiver = suitex_test_support::otlp::Receiver::start();
    let mut cmd = Command::new(&program);
    cmd.arg(format!("00-{TRACE}-{CALLER}-01"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(config.to_settings())
        .envs(receiver.env());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let event_id = stdout.trim().strip_prefix("emitted ").expect("the program emitted").to_string();

    let exe = program.file_name().unwrap().to_string_lossy().into_owned();
    let service = format!("unknown_service:{exe}");
    let topic = &config.names().raw_topic;
    // Sent by suitex_emitter_free: the program has exited, so they are in the file already.
    let spans = receiver.spans();
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s["service"] == service.as_str() && s["name"] == name)
            .unwrap_or_else(|| panic!("no {name:?} span of {service} among {spans:#?}"))
            .clone()
    };
    let create = named(&format!("{topic} create"));
    assert_eq!(create["trace_id"], TRACE, "the caller's trace");
    assert_eq!(create["parent_span_id"], CALLER, "a child of the caller's context");
    assert_eq!(create["kind"], "producer");
    assert_eq!(create["attributes"]["event_id"], event_id.as_str());
    let publish = named(&format!("{topic} publish"));
    assert_eq!(publish["trace_id"], TRACE);
    assert!(
        publish["links"].as_array().unwrap().iter().any(|l| l["span_id"] == create["span_id"]),
        "the publish span links the create span: {publish:#}"
    );
    let got = receive(&config, &probe, 1, Duration::from_secs(30)).await;
    let span_id = create["span_id"].as_str().unwrap();
    assert_eq!(attr(&got[0], "googclient_traceparent"), format!("00-{TRACE}-{span_id}-01"));

    // An OTEL_* value the library cannot use fails the emitter's creation, naming it.
    let out = Command::new(&program)
        .env_clear()
        .envs(config.to_settings())
        .envs(receiver.env())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("created SUITEX_ERR_CONFIG "), "{stdout}");
    assert!(stdout.contains("OTEL_EXPORTER_OTLP_PROTOCOL is \"http/json\""), "{stdout}");
    std::fs::remove_file(program).ok();
}
