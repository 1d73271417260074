//! # The C ABI of the SuiteX event backbone SDK
//!
//! `libsuitex_events.so` / `libsuitex_events.a` and the header `include/suitex_events.h`
//! (generated from this crate by cbindgen; a test fails when it is stale).
//!
//! This crate only converts values and maps errors: validation, claim-checks and publishing are
//! the SDK's (`suitex_events::blocking::BlockingEmitter`). Every exported function runs behind
//! one panic boundary ([`panic::ffi_boundary`]) and reports failures as [`SuitexResult`] codes;
//! the message of the calling thread's last failure is rendered by
//! [`suitex_last_error_message`].

#![allow(non_camel_case_types)]

mod emitter;
mod error;
mod panic;

pub use emitter::*;
pub use error::*;

/// The library's version, e.g. "0.3.0". A static string: do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn suitex_version() -> *const std::ffi::c_char {
    crate::panic::guard(c"?".as_ptr(), || concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast())
}

/// The C ABI's version: the number in the library's soname (`libsuitex_events.so.1`). It goes
/// up with every change a compiled program would notice; a program can compare it with the
/// `SUITEX_ABI_VERSION` its header had.
#[unsafe(no_mangle)]
pub extern "C" fn suitex_abi_version() -> u32 {
    crate::panic::guard(0, || SUITEX_ABI_VERSION)
}

/// The C ABI's version this header describes: the library's soname is
/// `libsuitex_events.so.<SUITEX_ABI_VERSION>`, and `suitex_abi_version()` returns the loaded
/// library's.
// ffi/build.rs names the soname after the same number; tests/c_program.rs compares them.
pub const SUITEX_ABI_VERSION: u32 = 1;
