//! What the compiler reads and gives back: list and logins files come in
//! through a [`SourceLoader`] ([`NoFiles`] when there are none), and a
//! policy that compiled comes out as [`Compiled`], with its warnings.

/// Where the compiler gets the text of the files a policy names (`list NAME
/// file "path"`, `logins NAME file "path"`).
///
/// `policy-core` does no I/O: the daemon implements this by reading `path`
/// resolved against the policy file's directory; tests use an in-memory map
/// or [`NoFiles`].
pub trait SourceLoader {
    /// The text of the file `path`, as written in the policy, or why it
    /// could not be read (`Err("no such file or directory")`): the compiler
    /// reports the reason at the `file "path"` of the policy.
    fn load(&mut self, path: &str) -> Result<String, String>;

    /// How diagnostics name the file `path` (as written in the policy): by
    /// default `path` itself; the daemon gives the resolved path, so that
    /// an error in a list file names the file to open.
    fn display_name(&self, path: &str) -> String {
        path.to_owned()
    }
}

/// A [`SourceLoader`] refusing every file: for policies without list files,
/// tests and fuzzing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFiles;

impl SourceLoader for NoFiles {
    fn load(&mut self, _path: &str) -> Result<String, String> {
        Err("files are not available here (NoFiles)".to_owned())
    }
}

/// Any closure `FnMut(&str) -> Result<String, String>` is a loader.
impl<F> SourceLoader for F
where
    F: FnMut(&str) -> Result<String, String>,
{
    fn load(&mut self, path: &str) -> Result<String, String> {
        self(path)
    }
}
