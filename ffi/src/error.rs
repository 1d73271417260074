//! Result codes and the calling thread's last error.

use std::cell::RefCell;
use std::ffi::c_char;

/// The outcome of a call. Zero is success; everything else is a failure whose message
/// `suitex_last_error_message` renders (per thread, until the thread's next failing call).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Publishing to Pub/Sub failed.
    SUITEX_ERR_PUBLISH = 6,
    /// Uploading the payload to Cloud Storage failed (or a claim-check conflict).
    SUITEX_ERR_STORAGE = 7,
    /// The call's deadline passed; the event may still be published (re-emitting is safe).
    SUITEX_ERR_DEADLINE_EXCEEDED = 8,
    /// The caller's buffer is too small; the needed size was reported.
    SUITEX_ERR_BUFFER_TOO_SMALL = 9,
    /// The handle is not a live emitter (never created, or already freed).
    SUITEX_ERR_INVALID_HANDLE = 10,
    /// A bug: the library panicked (and recovered).
    SUITEX_ERR_PANIC = 11,
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
        _ if e.is_validation() => SUITEX_ERR_VALIDATION,
        _ if e.is_config() => SUITEX_ERR_CONFIG,
        _ if e.is_deadline_exceeded() => SUITEX_ERR_DEADLINE_EXCEEDED,
        _ if e.is_publish() => SUITEX_ERR_PUBLISH,
        _ => SUITEX_ERR_STORAGE,
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
    crate::panic::guard(c"?".as_ptr(), || name_of(result).as_ptr().cast())
}

fn name_of(result: i32) -> &'static str {
    match result {
        0 => "SUITEX_OK\0",
        1 => "SUITEX_ERR_NULL_ARGUMENT\0",
        2 => "SUITEX_ERR_INVALID_UTF8\0",
        3 => "SUITEX_ERR_INVALID_JSON\0",
        4 => "SUITEX_ERR_VALIDATION\0",
        5 => "SUITEX_ERR_CONFIG\0",
        6 => "SUITEX_ERR_PUBLISH\0",
        7 => "SUITEX_ERR_STORAGE\0",
        8 => "SUITEX_ERR_DEADLINE_EXCEEDED\0",
        9 => "SUITEX_ERR_BUFFER_TOO_SMALL\0",
        10 => "SUITEX_ERR_INVALID_HANDLE\0",
        11 => "SUITEX_ERR_PANIC\0",
        _ => "SUITEX_UNKNOWN_RESULT\0",
    }
}
