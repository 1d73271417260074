//! Who may read the spool: its directory and files are private to their owner (or to the owner
//! and one configured group), whatever the process's umask (docs/architecture.md §2.6).
//!
//! The spool holds tenants' payloads in clear before they leave the host. On a shared web host
//! (other php-fpm pools, cron users) a spool created under the usual `umask 022` would be
//! readable by every local account, so — like PostgreSQL with its data directory and OpenSSH
//! with its keys — the spool is created private and an existing one that is not private is
//! refused, with the path, its mode and owner and the fix, before anything is written there.
//!
//! * Owner only (the default): directory `0700`, files `0600`.
//! * `SUITEX_EVENTS_SPOOL_GROUP` set (a group name or a numeric gid): directory `2770` owned by
//!   that group (set-group-id, so every file made in it belongs to the group too) and files
//!   `0660`, so a relay running as another member of the group can drain what php-fpm's user
//!   wrote. The emitting user must be a member of the group (or root) to create it so.
//!
//! SQLite creates the `-wal` and `-shm` (and, outside WAL mode, `-journal`) files with the mode,
//! owner and group of the database file, whatever the umask, so making the database file with
//! the right mode before SQLite opens it is what makes every file of the spool private.

use crate::error::{ConfigError, Error, Result};
use std::ffi::CString;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Suffixes of the files SQLite keeps beside the database.
const SIDE_FILES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Who may read and write a spool.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpoolAccess {
    /// The group that shares the spool: its gid and how it was named.
    group: Option<(u32, String)>,
}

impl SpoolAccess {
    /// Private to the owner: directory `0700`, files `0600`.
    pub fn owner_only() -> SpoolAccess {
        SpoolAccess { group: None }
    }

    /// Shared with `group` (a name, or a numeric gid): directory `2770`, files `0660`.
    pub fn shared_with(group: &str) -> Result<SpoolAccess> {
        let gid = match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_id(group).ok_or_else(|| {
                config_error(format!(
                    "is {group:?}, which is not a group on this host (getent group {group})"
                ))
            })?,
        };
        Ok(SpoolAccess { group: Some((gid, group.to_owned())) })
    }

    /// The access `config` asks for (`SUITEX_EVENTS_SPOOL_GROUP`).
    pub fn of(config: &crate::config::Config) -> Result<SpoolAccess> {
        config.spool_group().map_or_else(|| Ok(SpoolAccess::owner_only()), SpoolAccess::shared_with)
    }

    fn gid(&self) -> Option<u32> {
        self.group.as_ref().map(|(gid, _)| *gid)
    }

    /// The directory's mode when this process creates it.
    pub fn dir_mode(&self) -> u32 {
        if self.group.is_some() { 0o2770 } else { 0o700 }
    }

    /// A file's mode when this process creates it.
    pub fn file_mode(&self) -> u32 {
        if self.group.is_some() { 0o660 } else { 0o600 }
    }

    /// Creates `dir` private (its parents as the umask has them), or checks that the existing
    /// one is. Nothing is written into a directory that fails the check.
    pub fn secure_dir(&self, dir: &Path) -> Result<()> {
        if std::fs::symlink_metadata(dir).is_err() {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| io_error(parent, "creating", e))?;
            }
            match std::fs::DirBuilder::new().mode(self.dir_mode() & 0o777).create(dir) {
                Ok(()) => {
                    // The mode given to mkdir is reduced by the umask and loses set-group-id:
                    // set both explicitly, and the group before the mode (chown clears setgid).
                    if let Some(gid) = self.gid() {
                        std::os::unix::fs::chown(dir, None, Some(gid))
                            .map_err(|e| io_error(dir, "giving the group to", e))?;
                    }
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(self.dir_mode()))
                        .map_err(|e| io_error(dir, "setting the mode of", e))?;
                }
                // Another process made it a moment ago: check it like any existing one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error(dir, "creating", e)),
            }
        }
        self.check(dir, "spool directory", true)
    }

    /// Creates the file at `path` with this access's mode if it is missing, then checks it and
    /// the SQLite files beside it.
    pub fn secure_file(&self, path: &Path) -> Result<()> {
        if std::fs::symlink_metadata(path).is_err() {
            match std::fs::OpenOptions::new().write(true).create_new(true).mode(self.file_mode()).open(path) {
                Ok(file) => {
                    if let Some(gid) = self.gid() {
                        std::os::unix::fs::fchown(&file, None, Some(gid))
                            .map_err(|e| io_error(path, "giving the group to", e))?;
                    }
                    file.set_permissions(std::fs::Permissions::from_mode(self.file_mode()))
                        .map_err(|e| io_error(path, "setting the mode of", e))?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error(path, "creating", e)),
            }
        }
        self.check(path, "spool file", false)?;
        for suffix in SIDE_FILES {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            // SQLite creates and deletes these as it writes, in any process using the spool: one
            // missing, or gone between two looks at it, is nothing to check.
            self.check_present(Path::new(&side), "spool file", false, true)?;
        }
        Ok(())
    }

    /// Refuses `path` unless only its owner (and the configured group) can reach it, it belongs
    /// to this process's user (or to the configured group), and it is no link of another user.
    fn check(&self, path: &Path, what: &str, is_dir: bool) -> Result<()> {
        self.check_present(path, what, is_dir, false)
    }

    /// [`Self::check`]; when `may_vanish`, a `path` that does not exist (any more) passes.
    fn check_present(&self, path: &Path, what: &str, is_dir: bool, may_vanish: bool) -> Result<()> {
        let look = |found: std::io::Result<std::fs::Metadata>| match found {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if may_vanish && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(path, "inspecting", e)),
        };
        let me = unsafe { libc::geteuid() };
        let Some(link) = look(std::fs::symlink_metadata(path))? else { return Ok(()) };
        if link.file_type().is_symlink() && link.uid() != me && link.uid() != 0 {
            return Err(refused(
                path,
                what,
                &link,
                "is a symbolic link owned by another user".into(),
                format!(
                    "remove the link and let the spool be created where it points, owned by {}",
                    user(me)
                ),
            ));
        }
        let Some(meta) = look(std::fs::metadata(path))? else { return Ok(()) };
        if meta.is_dir() != is_dir {
            let kind = if is_dir { "a directory" } else { "a regular file" };
            return Err(config_error(format!("names {}, which is not {kind}", path.display())));
        }
        let mode = meta.mode() & 0o777;
        let private = if is_dir { 0o700 } else { 0o600 };
        let fix = match self.group {
            None => format!("chmod {private:o} {}", path.display()),
            Some((_, ref name)) => {
                format!(
                    "chgrp {name} {} && chmod {:o} {}",
                    path.display(),
                    self.mode_for(is_dir),
                    path.display()
                )
            }
        };
        let in_group = self.gid() == Some(meta.gid());
        if meta.uid() != me && !in_group {
            return Err(refused(
                path,
                what,
                &meta,
                format!("belongs to {}, not to {} who runs this process", user(meta.uid()), user(me)),
                format!(
                    "chown {} {} (or share it: SUITEX_EVENTS_SPOOL_GROUP and {fix})",
                    user(me),
                    path.display()
                ),
            ));
        }
        let problem = if mode & 0o007 != 0 {
            Some("others may read or write it")
        } else if mode & 0o070 != 0 && self.group.is_none() {
            Some("its group may read or write it and SUITEX_EVENTS_SPOOL_GROUP is not set")
        } else if mode & 0o070 != 0 && !in_group {
            Some("a group other than SUITEX_EVENTS_SPOOL_GROUP may read or write it")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(refused(path, what, &meta, problem.into(), fix)),
            None => Ok(()),
        }
    }

    fn mode_for(&self, is_dir: bool) -> u32 {
        if is_dir { self.dir_mode() } else { self.file_mode() }
    }
}

fn config_error(problem: String) -> Error {
    Error::Config(ConfigError::new(crate::settings::SPOOL_GROUP.name, problem))
}

fn refused(path: &Path, what: &str, meta: &std::fs::Metadata, problem: String, fix: String) -> Error {
    Error::Config(ConfigError::new(
        crate::settings::SPOOL.name,
        format!(
            "names a {what} that is not private: {} is mode {:04o}, owner {}, group {}; {problem}. \
             The spool holds tenants' payloads: fix it with `{fix}`. Nothing was written there",
            path.display(),
            meta.mode() & 0o7777,
            user(meta.uid()),
            group(meta.gid()),
        ),
    ))
}

fn io_error(path: &Path, operation: &str, e: std::io::Error) -> Error {
    Error::service(crate::error::Service::Spool, format!("{operation} {}", path.display()), false, e)
}

/// `name (uid)`, or the uid alone when the host has no name for it.
fn user(uid: u32) -> String {
    let mut buf = vec![0u8; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out = std::ptr::null_mut();
    // SAFETY: the buffers outlive the call; getpwuid_r writes only within them.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc == 0 && !out.is_null() {
        // SAFETY: on success pw_name points at a NUL-terminated string inside `buf`.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return format!("{} (uid {uid})", name.to_string_lossy());
    }
    format!("uid {uid}")
}

/// `name (gid)`, or the gid alone.
fn group(gid: u32) -> String {
    let mut buf = vec![0u8; 16384];
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out = std::ptr::null_mut();
    // SAFETY: as in `user`.
    let rc = unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc == 0 && !out.is_null() {
        // SAFETY: on success gr_name points into `buf`.
        let name = unsafe { std::ffi::CStr::from_ptr(grp.gr_name) };
        return format!("{} (gid {gid})", name.to_string_lossy());
    }
    format!("gid {gid}")
}

/// The gid of the group called `name`.
fn group_id(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    let mut buf = vec![0u8; 16384];
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out = std::ptr::null_mut();
    // SAFETY: as in `user`; `name` is NUL-terminated.
    let rc =
        unsafe { libc::getgrnam_r(name.as_ptr(), &mut grp, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    (rc == 0 && !out.is_null()).then_some(grp.gr_gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh_dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("spool-privacy-{}", uuid::Uuid::now_v7()))
    }

    #[test]
    fn a_new_spool_directory_and_file_are_private_whatever_the_umask() {
        let dir = fresh_dir();
        // SAFETY: umask only changes this process's file creation mask.
        let old = unsafe { libc::umask(0o022) };
        let access = SpoolAccess::owner_only();
        access.secure_dir(&dir).unwrap();
        access.secure_file(&dir.join("spool.sqlite3")).unwrap();
        unsafe { libc::umask(old) };
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);
        assert_eq!(std::fs::metadata(dir.join("spool.sqlite3")).unwrap().mode() & 0o7777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_directory_others_can_read_is_refused_naming_its_path_mode_owner_and_the_fix() {
        for mode in [0o755, 0o777, 0o750] {
            let dir = fresh_dir();
            std::fs::create_dir(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = SpoolAccess::owner_only().secure_dir(&dir).unwrap_err().to_string();
            assert!(err.contains(&dir.display().to_string()), "{err}");
            assert!(err.contains(&format!("mode {mode:04o}")), "{err}");
            assert!(err.contains("owner "), "{err}");
            assert!(err.contains(&format!("chmod 700 {}", dir.display())), "{err}");
            assert!(err.contains("SUITEX_EVENTS_SPOOL names a spool directory that is not private"), "{err}");
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn a_group_readable_directory_is_accepted_only_for_the_configured_group() {
        let dir = fresh_dir();
        std::fs::create_dir(&dir).unwrap();
        let gid = std::fs::metadata(&dir).unwrap().gid();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2770)).unwrap();
        SpoolAccess::shared_with(&gid.to_string()).unwrap().secure_dir(&dir).unwrap();
        let other = SpoolAccess::shared_with(&(gid + 4242).to_string()).unwrap();
        let err = other.secure_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("a group other than SUITEX_EVENTS_SPOOL_GROUP"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unknown_group_name_is_a_configuration_error_naming_the_setting() {
        let err = SpoolAccess::shared_with("no-such-group-suitex").unwrap_err().to_string();
        assert!(
            err.contains("SUITEX_EVENTS_SPOOL_GROUP is \"no-such-group-suitex\", which is not a group"),
            "{err}"
        );
    }

    #[test]
    fn a_spool_file_others_can_read_is_refused() {
        let dir = fresh_dir();
        let access = SpoolAccess::owner_only();
        access.secure_dir(&dir).unwrap();
        let file = dir.join("spool.sqlite3");
        std::fs::write(&file, b"").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = access.secure_file(&file).unwrap_err().to_string();
        assert!(err.contains("mode 0644") && err.contains(&format!("chmod 600 {}", file.display())), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
