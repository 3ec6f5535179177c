//! Policy files: reading them (and the list files they name) from disk with
//! size limits, compiling them with `policy-core`, and the embedded default
//! policy.
//!
//! `policy-core` does no I/O: [`Policy::compile`] asks a [`SourceLoader`] for
//! every list or login-map file a policy names. [`FileLoader`] is the daemon's:
//! it resolves a relative path against the policy file's directory (so a
//! policy and its lists move together), reads only regular files, refuses a
//! file over [`MAX_LIST_FILE_BYTES`] or a policy whose files add up to more
//! than [`MAX_TOTAL_LIST_BYTES`], and names the file in every error
//! (`/etc/policyd/local_domains: no such file or directory`).
//!
//! [`load`] turns a [`PolicySource`] into a compiled policy: used at start,
//! on SIGHUP, and by `policyd check` and `policyd test`.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use policy_core::{CompileErrors, Diagnostic, NoFiles, Policy, Severity, SourceLoader};

use crate::cli::PolicySource;
use crate::listen::describe;
use crate::log::{self, Level};

/// The embedded default policy (`policyd-bin/default-policy.conf`), used when
/// neither `--config` nor `--action` is given: DUNNO for every request, with
/// example rules commented out. `policyd default-policy` prints it.
pub(crate) const DEFAULT_POLICY: &str = include_str!("../default-policy.conf");

/// The file name diagnostics of the embedded default policy carry.
pub(crate) const DEFAULT_POLICY_NAME: &str = "default-policy.conf";

/// Largest policy file read: 16 MiB.
///
/// A policy written by hand is a few KiB; even one with large inline lists
/// stays far below this. A bigger file is a mistake (the wrong file given to
/// `--config`, a log file) that would otherwise be read whole into memory,
/// and compiled, on every start and reload.
pub(crate) const MAX_POLICY_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Largest list or login-map file read: 64 MiB.
///
/// One entry a line, a typical entry is 15 to 40 bytes: 64 MiB is well over a
/// million entries, an order of magnitude beyond the largest real block
/// lists. The cap keeps a wrong path (a disk image, a mail spool) from
/// exhausting memory at reload.
pub(crate) const MAX_LIST_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Most bytes of list and login-map files read for one policy: 256 MiB.
///
/// Bounds the memory one compile may read even when a policy names many
/// files (or the same large file many times); a reload holds the old and the
/// new policy at once, so this must stay well below the host's memory.
pub(crate) const MAX_TOTAL_LIST_BYTES: u64 = 256 * 1024 * 1024;

/// A compiled policy and what the compiler said about it.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The policy, ready for [`policy_core::Engine`].
    pub(crate) policy: Policy,
    /// Warnings: the policy compiled, but something in it deserves a look.
    pub(crate) warnings: Vec<Diagnostic>,
    /// How to name the policy in logs: the file as given, `default` for the
    /// embedded default, `--action` for the shortcut.
    pub(crate) name: String,
    /// Rules in the policy (0 for `--action`).
    pub(crate) rules: usize,
    /// List and login-map files read while compiling.
    pub(crate) files: usize,
}

/// Why a policy could not be loaded.
#[derive(Debug)]
pub(crate) enum LoadError {
    /// The policy file itself cannot be read.
    Read {
        /// The file as given.
        path: PathBuf,
        /// Why, in words.
        reason: String,
    },
    /// The policy does not compile.
    Compile {
        /// The file as given (or `default-policy.conf`).
        name: String,
        /// Every error and warning.
        errors: CompileErrors,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, reason } => {
                write!(f, "cannot read policy {}: {reason}", path.display())
            }
            Self::Compile { name, errors } => {
                let n = errors.errors.len();
                write!(
                    f,
                    "policy {name} does not compile: {n} {}",
                    plural(n, "error", "errors")
                )
            }
        }
    }
}

/// `one` or `many`, by `n`.
pub(crate) fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Read and compile the policy `source` names.
pub(crate) fn load(source: &PolicySource) -> Result<Loaded, LoadError> {
    match source {
        PolicySource::Action(action) => Ok(Loaded {
            policy: Policy::always(action.clone()),
            warnings: Vec::new(),
            name: "--action".to_owned(),
            rules: 0,
            files: 0,
        }),
        PolicySource::Default => {
            compile(DEFAULT_POLICY_NAME, DEFAULT_POLICY, &mut NoFiles, 0).map(|mut loaded| {
                loaded.name = "default".to_owned();
                loaded
            })
        }
        PolicySource::File(path) => {
            let text = read_text(path, MAX_POLICY_FILE_BYTES, "MAX_POLICY_FILE_BYTES").map_err(
                |reason| LoadError::Read {
                    path: path.clone(),
                    reason,
                },
            )?;
            let mut loader = FileLoader::new(path);
            let name = path.display().to_string();
            let mut loaded = compile(&name, &text, &mut loader, 0)?;
            loaded.files = loader.files;
            Ok(loaded)
        }
    }
}

fn compile(
    name: &str,
    text: &str,
    loader: &mut dyn SourceLoader,
    files: usize,
) -> Result<Loaded, LoadError> {
    match Policy::compile(name, text, loader) {
        Ok(compiled) => Ok(Loaded {
            rules: compiled.policy.rule_names().count(),
            policy: compiled.policy,
            warnings: compiled.warnings,
            name: name.to_owned(),
            files,
        }),
        Err(errors) => Err(LoadError::Compile {
            name: name.to_owned(),
            errors,
        }),
    }
}

/// A diagnostic as the text of one log line: `file:line:column: message`
/// (`file: message` when it is about the whole file). Its severity is left
/// out: the logger writes it, once, as the line's level ([`log_diagnostic`]).
/// The source line and caret of its Display are left out too (`policyd
/// check` shows them).
pub(crate) fn log_text(diagnostic: &Diagnostic) -> String {
    let d = diagnostic;
    if d.line == 0 {
        format!("{}: {}", d.file, d.message)
    } else {
        format!("{}:{}:{}: {}", d.file, d.line, d.column, d.message)
    }
}

/// Log `diagnostic` at its own level: an error at error level, a warning at
/// warning level, the severity word written once (by the logger).
pub(crate) fn log_diagnostic(diagnostic: &Diagnostic) {
    let level = match diagnostic.severity {
        Severity::Warning => Level::Warn,
        // An error, or a severity a later policy-core adds: the louder level.
        _ => Level::Error,
    };
    log::message(level, format_args!("{}", log_text(diagnostic)));
}

/// Reads the list and login-map files a policy names, for [`Policy::compile`].
#[derive(Debug)]
pub(crate) struct FileLoader {
    /// The policy file's directory: relative paths are resolved against it.
    base: PathBuf,
    /// Bytes read so far, against [`MAX_TOTAL_LIST_BYTES`].
    total: u64,
    /// Files read so far.
    files: usize,
}

impl FileLoader {
    /// A loader for the policy file `policy`.
    pub(crate) fn new(policy: &Path) -> Self {
        let base = match policy.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        Self {
            base,
            total: 0,
            files: 0,
        }
    }

    /// Where `path` (as written in the policy) is on disk.
    pub(crate) fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base.join(path)
        }
    }
}

impl SourceLoader for FileLoader {
    fn load(&mut self, path: &str) -> Result<String, String> {
        let resolved = self.resolve(path);
        let left = MAX_TOTAL_LIST_BYTES.saturating_sub(self.total);
        let (limit, limit_name) = if left < MAX_LIST_FILE_BYTES {
            (
                left,
                "MAX_TOTAL_LIST_BYTES, for all list files of the policy",
            )
        } else {
            (MAX_LIST_FILE_BYTES, "MAX_LIST_FILE_BYTES")
        };
        let text = read_text(&resolved, limit, limit_name)
            .map_err(|reason| format!("{}: {reason}", resolved.display()))?;
        self.total += text.len() as u64;
        self.files += 1;
        Ok(text)
    }

    /// Errors inside a list file name the file as resolved on disk, so the
    /// administrator knows which file to open.
    fn display_name(&self, path: &str) -> String {
        self.resolve(path).display().to_string()
    }
}

/// Read `path` as UTF-8 text of at most `limit` bytes. The error is the
/// reason alone (the caller names the file).
pub(crate) fn read_text(path: &Path, limit: u64, limit_name: &str) -> Result<String, String> {
    let bytes = read_bytes(path, limit, limit_name)?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
        let column = 1 + at
            - bytes[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
        format!("not valid UTF-8 at line {line}, byte {column}: expected UTF-8 text")
    })
}

/// Read the regular file `path`, of at most `limit` bytes, as bytes (request
/// files: Postfix's values need not be UTF-8). The error is the reason alone.
pub(crate) fn read_bytes(path: &Path, limit: u64, limit_name: &str) -> Result<Vec<u8>, String> {
    let too_large = |size: u64| {
        format!("too large: {size} bytes or more, expected at most {limit} ({limit_name})")
    };
    let file = File::open(path).map_err(|e| describe(&e))?;
    let meta = file.metadata().map_err(|e| describe(&e))?;
    if meta.is_dir() {
        return Err("is a directory, expected a file".to_owned());
    }
    // A FIFO or device could block or never end.
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    // The file may grow between metadata and read: read one byte past the
    // limit to notice.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| describe(&e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("policyd-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn relative_paths_resolve_against_the_policy_directory() {
        let loader = FileLoader::new(Path::new("/etc/policyd/policy.conf"));
        assert_eq!(
            loader.resolve("lists/local"),
            Path::new("/etc/policyd/lists/local")
        );
        assert_eq!(loader.resolve("/srv/x"), Path::new("/srv/x"));
        let bare = FileLoader::new(Path::new("policy.conf"));
        assert_eq!(bare.resolve("l"), Path::new("./l"));
    }

    #[test]
    fn loader_reads_and_reports_path_and_reason() {
        let dir = temp_dir("loader");
        std::fs::write(dir.join("ok"), "a.example\n# comment\n").unwrap();
        std::fs::write(dir.join("latin1"), b"ok\nbad \xe9\n").unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        let mut loader = FileLoader::new(&dir.join("policy.conf"));
        assert_eq!(loader.load("ok").unwrap(), "a.example\n# comment\n");
        assert_eq!(loader.files, 1);

        let missing = loader.load("missing").unwrap_err();
        assert_eq!(
            missing,
            format!(
                "{}: no such file or directory",
                dir.join("missing").display()
            )
        );
        let sub = loader.load("sub").unwrap_err();
        assert!(
            sub.ends_with("sub: is a directory, expected a file"),
            "{sub}"
        );
        let latin1 = loader.load("latin1").unwrap_err();
        assert!(
            latin1.ends_with("latin1: not valid UTF-8 at line 2, byte 5: expected UTF-8 text"),
            "{latin1}"
        );
        let dev = loader.load("/dev/null").unwrap_err();
        assert_eq!(dev, "/dev/null: not a regular file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn oversize_files_are_refused() {
        let dir = temp_dir("big");
        let path = dir.join("big");
        std::fs::write(&path, vec![b'a'; 100]).unwrap();
        assert_eq!(read_text(&path, 100, "X").unwrap().len(), 100);
        assert_eq!(
            read_text(&path, 99, "X").unwrap_err(),
            "too large: 100 bytes or more, expected at most 99 (X)"
        );
        // The total budget shrinks the per-file limit.
        let mut loader = FileLoader::new(&dir.join("policy.conf"));
        loader.total = MAX_TOTAL_LIST_BYTES - 50;
        let err = loader.load("big").unwrap_err();
        assert!(err.contains("MAX_TOTAL_LIST_BYTES"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_default_policy_compiles_cleanly_and_never_answers_ok() {
        let loaded = load(&PolicySource::Default).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.name, "default");
        let mut scratch = policy_core::Scratch::new();
        let engine = policy_core::Engine::new(loaded.policy);
        for frame in [
            &b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.1\n\
               sender=a@example.net\nrecipient=b@example.com\n"[..],
            b"request=smtpd_access_policy\nprotocol_state=CONNECT\n",
            b"request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\nsender=\n",
        ] {
            let request = policy_core::Request::parse(frame).unwrap();
            let decision = engine.decide(
                &request,
                policy_core::Timestamp::from_unix_millis(0),
                &mut scratch,
            );
            assert_eq!(*decision.compiled_action(), policy_core::Action::Dunno);
        }
    }

    /// A log line's text has no severity word of its own (the logger
    /// writes the level) and no source line or caret.
    #[test]
    fn diagnostics_log_without_their_own_severity() {
        let dir = temp_dir("diag");
        let src = "list unused { a.example }\nrule r {\n  if sender in nowhere then OK }\n";
        let path = dir.join("policy.conf");
        std::fs::write(&path, src).unwrap();
        let Err(LoadError::Compile { errors, .. }) = load(&PolicySource::File(path.clone())) else {
            panic!("compiled");
        };
        let name = path.display();
        let error = &errors.errors[0];
        assert_eq!(error.severity, Severity::Error);
        assert!(
            error.to_string().contains(": error: "),
            "the Display has one: {error}"
        );
        let text = log_text(error);
        assert!(text.starts_with(&format!("{name}:3:")), "{text}");
        let warning = &errors.warnings[0];
        assert_eq!(warning.severity, Severity::Warning);
        assert!(log_text(warning).starts_with(&format!("{name}:1:")));
        for text in [log_text(error), log_text(warning)] {
            assert!(
                !text.contains("error") && !text.contains("warning") && !text.contains('\n'),
                "{text}"
            );
        }
        let whole = Diagnostic {
            line: 0,
            column: 0,
            source_line: String::new(),
            ..error.clone()
        };
        assert_eq!(log_text(&whole), format!("{name}: {}", error.message));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_policy_file() {
        let err = load(&PolicySource::File("/nonexistent/policy.conf".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read policy /nonexistent/policy.conf: no such file or directory"
        );
    }
}
