//! Result codes and the calling thread's last error.

use std::cell::RefCell;
use std::ffi::c_char;

/// The outcome of a call. Zero is success; everything else is a failure whose message
/// `suitex_last_error_message` renders (per thread, until the thread's next failing call).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumIter)]
pub enum SuitexResult {
    /// Success.
    SUITEX_OK = 0,
    /// A required pointer argument was NULL.
    SUITEX_ERR_NULL_ARGUMENT = 1,
    /// Bytes that must be UTF-8 were not.
    SUITEX_ERR_INVALID_UTF8 = 2,
    /// Bytes that must be JSON were not (or not the expected JSON shape).
    SUITEX_ERR_INVALID_JSON = 3,
    /// The event broke a rule of the envelope (the message names the field and the limit).
    SUITEX_ERR_VALIDATION = 4,
    /// The configuration is missing or out of range (the message names the setting).
    SUITEX_ERR_CONFIG = 5,
    /// Publishing to Pub/Sub failed (or the event waited behind a failed one of its aggregate).
    SUITEX_ERR_PUBLISH = 6,
    /// Uploading the payload to Cloud Storage failed or timed out (Cloud Storage only).
    SUITEX_ERR_STORAGE = 7,
    /// The call's deadline passed; the event may still be published (re-emitting is safe).
    SUITEX_ERR_DEADLINE_EXCEEDED = 8,
    /// The caller's buffer is too small; the needed size was reported.
    SUITEX_ERR_BUFFER_TOO_SMALL = 9,
    /// The handle is not a live emitter (never created, or already freed).
    SUITEX_ERR_INVALID_HANDLE = 10,
    /// A bug: the library panicked (and recovered).
    SUITEX_ERR_PANIC = 11,
    /// The library's async runtime could not start (the process is out of threads or memory).
    SUITEX_ERR_RUNTIME = 12,
    /// Spool mode: the event would pass SUITEX_EVENTS_SPOOL_MAX_BYTES; nothing was spooled.
    SUITEX_ERR_SPOOL_FULL = 13,
    /// Spool mode: the local spool failed (its disk, its database file); nothing was spooled.
    SUITEX_ERR_SPOOL = 14,
    /// Any other failure (the message says which); nothing in this library returns it today,
    /// but a newer SDK error lands here rather than under an unrelated code.
    SUITEX_ERR_OTHER = 15,
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records `message` as the calling thread's last error and returns `code`.
pub(crate) fn set_last_error(code: SuitexResult, message: impl Into<String>) -> SuitexResult {
    LAST_ERROR.with(|e| *e.borrow_mut() = message.into());
    code
}

/// The result code for an SDK error.
pub(crate) fn code_of(e: &sdk::Error) -> SuitexResult {
    use SuitexResult::*;
    match e {
        sdk::Error::Runtime(_) => SUITEX_ERR_RUNTIME,
        _ if e.is_validation() => SUITEX_ERR_VALIDATION,
        _ if e.is_config() => SUITEX_ERR_CONFIG,
        sdk::Error::SpoolFull { .. } => SUITEX_ERR_SPOOL_FULL,
        _ if e.is_deadline_exceeded() => SUITEX_ERR_DEADLINE_EXCEEDED,
        _ if e.is_publish() => SUITEX_ERR_PUBLISH,
        _ if e.is_storage() => SUITEX_ERR_STORAGE,
        _ if e.is_spool() => SUITEX_ERR_SPOOL,
        _ => SUITEX_ERR_OTHER,
    }
}

/// Records an SDK error as the last error and returns its code.
pub(crate) fn fail(e: &sdk::Error) -> SuitexResult {
    set_last_error(code_of(e), e.to_string())
}

/// Copies the calling thread's last error message, NUL-terminated, into `buf` (`len` bytes).
///
/// `*needed` (when not NULL) is set to the size the message needs, NUL included (1 when there is
/// no error). Returns `SUITEX_ERR_BUFFER_TOO_SMALL` — writing nothing — when `len` is smaller,
/// and `SUITEX_ERR_NULL_ARGUMENT` when `buf` is NULL with a non-zero `len`. Call it with
/// `buf = NULL, len = 0` to learn the size.
///
/// # Safety
/// `buf` must be NULL or point to `len` writable bytes; `needed` must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn suitex_last_error_message(
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> SuitexResult {
    crate::panic::ffi_boundary(|| {
        let message = LAST_ERROR.with(|e| e.borrow().clone());
        let size = message.len() + 1;
        if !needed.is_null() {
            // SAFETY: the caller passes NULL or a valid pointer.
            unsafe { *needed = size };
        }
        if buf.is_null() {
            return if len == 0 {
                SuitexResult::SUITEX_ERR_BUFFER_TOO_SMALL
            } else {
                SuitexResult::SUITEX_ERR_NULL_ARGUMENT
            };
        }
        if len < size {
            return SuitexResult::SUITEX_ERR_BUFFER_TOO_SMALL;
        }
        // SAFETY: `buf` holds `len >= size` writable bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(message.as_ptr(), buf.cast::<u8>(), message.len());
            *buf.add(message.len()) = 0;
        }
        SuitexResult::SUITEX_OK
    })
}

/// The name of a result code, e.g. "SUITEX_ERR_VALIDATION" ("SUITEX_UNKNOWN_RESULT" for a
/// number that is none). A static string: do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn suitex_result_name(result: i32) -> *const c_char {
    crate::panic::guard(c"?".as_ptr(), || name_of(result).as_ptr())
}

/// NUL-terminated names of the result codes, derived from the enum itself.
fn names() -> &'static std::collections::HashMap<i32, std::ffi::CString> {
    use strum::IntoEnumIterator;
    static NAMES: std::sync::OnceLock<std::collections::HashMap<i32, std::ffi::CString>> =
        std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        SuitexResult::iter()
            .map(|r| (r as i32, std::ffi::CString::new(<&'static str>::from(r)).expect("names hold no NUL")))
            .collect()
    })
}

fn name_of(result: i32) -> &'static std::ffi::CStr {
    names().get(&result).map_or(c"SUITEX_UNKNOWN_RESULT", |n| n.as_c_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_result_code_has_its_own_name() {
        use strum::IntoEnumIterator;
        for r in SuitexResult::iter() {
            let name = name_of(r as i32).to_str().unwrap();
            assert_eq!(name, format!("{r:?}"));
        }
        assert_eq!(name_of(99), c"SUITEX_UNKNOWN_RESULT");
    }

    #[test]
    fn a_full_spool_a_failed_spool_and_other_failures_are_not_storage_errors() {
        let full = sdk::Error::SpoolFull { path: "/s/spool.sqlite3".into(), held: 1, needed: 2, limit: 3 };
        assert_eq!(code_of(&full), SuitexResult::SUITEX_ERR_SPOOL_FULL);
        let runtime = sdk::Error::Runtime(std::io::Error::other("no threads"));
        assert_eq!(code_of(&runtime), SuitexResult::SUITEX_ERR_RUNTIME);
        let not_private = sdk::Error::Config(sdk::ConfigError::new("SUITEX_EVENTS_SPOOL", "names a spool …"));
        assert_eq!(code_of(&not_private), SuitexResult::SUITEX_ERR_CONFIG);
    }
}
