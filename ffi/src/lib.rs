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

/// The library's version, e.g. "0.2.0". A static string: do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn suitex_version() -> *const std::ffi::c_char {
    crate::panic::guard(c"?".as_ptr(), || concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast())
}
