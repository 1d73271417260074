//! The one panic boundary every exported function runs behind.
//!
//! A Rust panic must never unwind into C. The boundary catches it, records a "panic: …" last
//! error for the calling thread, and returns [`SuitexResult::SUITEX_ERR_PANIC`].

use crate::error::{SuitexResult, set_last_error};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f`, turning a panic into `SUITEX_ERR_PANIC`.
pub(crate) fn ffi_boundary(f: impl FnOnce() -> SuitexResult) -> SuitexResult {
    guard(SuitexResult::SUITEX_ERR_PANIC, f)
}

/// Runs `f`; if it panics, records the panic as the last error and returns `on_panic`.
pub(crate) fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(SuitexResult::SUITEX_ERR_PANIC, format!("panic inside libsuitex_events: {what}"));
            on_panic
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_result_code_and_a_message() {
        let rc = ffi_boundary(|| panic!("boom"));
        assert_eq!(rc, SuitexResult::SUITEX_ERR_PANIC);
        let mut buf = [0 as std::ffi::c_char; 128];
        let rc = unsafe {
            crate::error::suitex_last_error_message(buf.as_mut_ptr(), buf.len(), std::ptr::null_mut())
        };
        assert_eq!(rc, SuitexResult::SUITEX_OK);
        let msg = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
        assert_eq!(msg, "panic inside libsuitex_events: boom");
    }

    #[test]
    fn every_exported_function_runs_behind_the_boundary() {
        let src = [include_str!("lib.rs"), include_str!("error.rs"), include_str!("emitter.rs")].join("\n");
        let mut exported = 0;
        for (i, _) in src.match_indices("extern \"C\" fn ") {
            exported += 1;
            let body = &src[i..];
            let open = body.find('{').unwrap();
            let first = body[open + 1..].trim_start();
            assert!(
                first.starts_with("ffi_boundary(")
                    || first.starts_with("crate::panic::ffi_boundary(")
                    || first.starts_with("crate::panic::guard("),
                "exported function without the panic boundary: {}",
                &body[..open]
            );
        }
        assert_eq!(exported, 10, "the exported functions were counted");
    }
}
