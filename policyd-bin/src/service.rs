//! Fitting the daemon into the system: systemd's readiness protocol and
//! socket activation, dropping privileges, the UNIX sockets' owner and
//! mode, and the pidfile.
//!
//! - [`notify`]: `READY=1` once every listener is bound and the policy is
//!   in force, `RELOADING=1` (with `MONOTONIC_USEC`) when a SIGHUP reload
//!   starts and `READY=1` when it is over, `STOPPING=1` at a stop, and a
//!   `STATUS=` line with each. Only when systemd asked (`NOTIFY_SOCKET`,
//!   `Type=notify`); otherwise nothing is sent.
//! - [`activated_listeners`]: the sockets systemd passed (`LISTEN_FDS`, a
//!   `policyd.socket` unit), used instead of binding `--listen`.
//! - [`drop_privileges`]: `--user` and `--group`, after every socket is
//!   bound and every file the daemon keeps open is open, before any
//!   request is read.
//! - [`set_socket_access`]: `--unix-owner`, `--unix-group`, `--unix-mode`
//!   for the UNIX listeners, so that Postfix's smtpd (user `postfix`) can
//!   connect to `unix:private/policyd`.
//! - [`Pidfile`]: `--pidfile`, written at start and removed at exit.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use nix::unistd::{self, Gid, Group, Uid, User};

use crate::listen::{describe, Listener};

/// A readiness-protocol message for systemd.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Notice<'a> {
    /// Listening, the policy in force: `READY=1`.
    Ready(&'a str),
    /// A reload started: `RELOADING=1` and `MONOTONIC_USEC`.
    Reloading(&'a str),
    /// The daemon is stopping: `STOPPING=1`.
    Stopping(&'a str),
}

/// Tell systemd `notice`, if it asked for notices (`NOTIFY_SOCKET`). A
/// failure is logged at debug level: the service manager then sees a
/// timeout, which says more than a log line could.
pub(crate) fn notify(notice: Notice<'_>) {
    use sd_notify::NotifyState;
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let sent = match notice {
        Notice::Ready(status) => {
            sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(status)])
        }
        Notice::Reloading(status) => NotifyState::monotonic_usec_now().and_then(|now| {
            sd_notify::notify(
                false,
                &[NotifyState::Reloading, now, NotifyState::Status(status)],
            )
        }),
        Notice::Stopping(status) => {
            sd_notify::notify(false, &[NotifyState::Stopping, NotifyState::Status(status)])
        }
    };
    if let Err(e) = sent {
        crate::log::debug!("cannot notify systemd: {}", describe(&e));
    }
}

/// The listening sockets systemd passed (socket activation: `LISTEN_FDS`
/// and `LISTEN_PID` naming this process), TCP or UNIX stream sockets;
/// none when it passed none. Call before any thread starts: the variables
/// are removed from the environment, so that programs started later do
/// not take them for theirs.
pub(crate) fn activated_listeners() -> Result<Vec<Listener>, String> {
    let mut fds = listenfd::ListenFd::from_env();
    let mut listeners = Vec::with_capacity(fds.len());
    for index in 0..fds.len() {
        // The kind of each socket is checked (a stream socket, listening
        // family by family), not assumed.
        if let Ok(Some(tcp)) = fds.take_tcp_listener(index) {
            listeners.push(Listener::Tcp(tcp));
            continue;
        }
        match fds.take_unix_listener(index) {
            Ok(Some(unix)) => listeners.push(Listener::activated_unix(unix)),
            Ok(None) => {}
            Err(e) => {
                return Err(format!(
                    "socket {} passed by systemd (LISTEN_FDS) is not a TCP or UNIX stream \
                     socket: {e}; use ListenStream= in the .socket unit",
                    index + 3
                ))
            }
        }
    }
    Ok(listeners)
}

/// A user or group of `--user` and friends, found.
fn find_user(name: &str) -> Result<User, String> {
    let found = match name.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(name),
    };
    match found {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(format!("no user {name:?} on this host")),
        Err(e) => Err(format!("cannot look up user {name:?}: {}", e.desc())),
    }
}

fn find_group(name: &str) -> Result<Gid, String> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(Gid::from_raw(gid));
    }
    match Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid),
        Ok(None) => Err(format!("no group {name:?} on this host")),
        Err(e) => Err(format!("cannot look up group {name:?}: {}", e.desc())),
    }
}

/// Run as `user` (and `group`, else the user's own group) from now on:
/// the supplementary groups become the user's (initgroups), then the
/// group, then the user is set, for every thread of the process. Then it
/// is checked that root cannot be regained. A daemon not started as root
/// may only "change" to the user and group it already is.
pub(crate) fn drop_privileges(user: Option<&str>, group: Option<&str>) -> Result<String, String> {
    let user = user.map(find_user).transpose()?;
    let gid = match group {
        Some(group) => find_group(group)?,
        None => match &user {
            Some(user) => user.gid,
            None => return Ok(String::new()),
        },
    };
    let uid = user.as_ref().map_or_else(Uid::current, |u| u.uid);
    let is_root = Uid::effective().is_root();
    if !is_root {
        if uid == Uid::current() && gid == Gid::current() {
            return Ok(String::new());
        }
        return Err(format!(
            "--user/--group need the daemon to start as root (it runs as uid {}, gid {})",
            Uid::current(),
            Gid::current()
        ));
    }
    let fail = |step: &str, e: nix::Error| format!("cannot drop privileges: {step}: {}", e.desc());
    match &user {
        Some(user) => {
            let name = std::ffi::CString::new(user.name.as_bytes())
                .map_err(|_| format!("user name {:?} has a NUL byte", user.name))?;
            unistd::initgroups(&name, gid).map_err(|e| fail("initgroups", e))?;
        }
        None => unistd::setgroups(&[gid]).map_err(|e| fail("setgroups", e))?,
    }
    unistd::setgid(gid).map_err(|e| fail("setgid", e))?;
    unistd::setuid(uid).map_err(|e| fail("setuid", e))?;
    if !uid.is_root() && unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err("cannot drop privileges: root could be regained after setuid".into());
    }
    Ok(format!(
        "running as uid {uid} ({}) gid {gid}",
        user.as_ref().map_or("", |u| u.name.as_str())
    ))
}

/// Give the UNIX listening sockets of `listeners` the owner, group and
/// mode asked for. Sockets systemd passed are left alone (their unit's
/// `SocketUser=`, `SocketGroup=` and `SocketMode=` say).
pub(crate) fn set_socket_access(
    listeners: &[Listener],
    owner: Option<&str>,
    group: Option<&str>,
    mode: Option<u32>,
) -> Result<(), String> {
    let uid = owner.map(find_user).transpose()?.map(|u| u.uid.as_raw());
    let gid = group.map(find_group).transpose()?.map(Gid::as_raw);
    for path in listeners.iter().filter_map(Listener::created_unix_path) {
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::chown(path, uid, gid).map_err(|e| {
                format!(
                    "cannot give UNIX socket {} its owner or group: {}",
                    path.display(),
                    describe(&e)
                )
            })?;
        }
        if let Some(mode) = mode {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| {
                format!(
                    "cannot set the mode of UNIX socket {} to {mode:04o}: {}",
                    path.display(),
                    describe(&e)
                )
            })?;
        }
    }
    Ok(())
}

/// `--pidfile`: holds the daemon's PID while it runs; removed when dropped
/// if it still holds this PID (a new daemon may have written its own).
#[derive(Debug)]
pub(crate) struct Pidfile {
    path: PathBuf,
    pid: u32,
}

impl Pidfile {
    /// Write `PID\n` to `path` (created mode 0644, or replaced), through
    /// `path.tmp` and a rename, so a reader never sees a partial file.
    pub(crate) fn write(path: &Path) -> Result<Self, String> {
        let pid = std::process::id();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let written = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .and_then(|mut file| file.write_all(format!("{pid}\n").as_bytes()))
            .and_then(|()| fs::rename(&tmp, path));
        match written {
            Ok(()) => Ok(Self {
                path: path.to_owned(),
                pid,
            }),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(format!(
                    "cannot write the pidfile {}: {}",
                    path.display(),
                    describe(&e)
                ))
            }
        }
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        let ours = fs::read_to_string(&self.path)
            .is_ok_and(|text| text.trim().parse::<u32>() == Ok(self.pid));
        if ours {
            if let Err(e) = fs::remove_file(&self.path) {
                // After --user, the directory may not be ours to change.
                crate::log::debug!(
                    "cannot remove the pidfile {}: {}",
                    self.path.display(),
                    describe(&e)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfile_is_written_and_removed_only_when_ours() {
        let dir = std::env::temp_dir().join(format!("policyd-pidfile-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policyd.pid");
        let pidfile = Pidfile::write(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        assert!(!dir.join("policyd.pid.tmp").exists());
        drop(pidfile);
        assert!(!path.exists(), "removed at exit");

        // Another daemon's PID in the file by now: left alone.
        let pidfile = Pidfile::write(&path).unwrap();
        fs::write(&path, "1\n").unwrap();
        drop(pidfile);
        assert_eq!(fs::read_to_string(&path).unwrap(), "1\n");

        let missing = dir.join("no/such/dir/policyd.pid");
        let err = Pidfile::write(&missing).unwrap_err();
        assert!(
            err.starts_with(&format!("cannot write the pidfile {}: ", missing.display())),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_accounts_are_named() {
        assert_eq!(
            find_user("no-such-user-policyd").unwrap_err(),
            "no user \"no-such-user-policyd\" on this host"
        );
        assert_eq!(
            find_group("no-such-group-policyd").unwrap_err(),
            "no group \"no-such-group-policyd\" on this host"
        );
        assert_eq!(find_user("0").unwrap().uid, Uid::from_raw(0));
        assert_eq!(find_group("0").unwrap(), Gid::from_raw(0));
    }
}
