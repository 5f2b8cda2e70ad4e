//! The agent's state file: what a paired agent remembers between runs
//! ([`AgentState`]), where it lives, and how it is written (atomically, mode 0600).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::AgentClient;
use crate::error::{Error, Result};
use crate::types::PairResponse;

/// Environment variable that overrides the state file path.
pub const STATE_ENV: &str = "PUSHDIAL_AGENT_STATE";

/// What a paired agent must remember between runs: which server, which
/// device, and the device token. Stored as JSON, mode 0600 (it holds a secret).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    /// Server base URL, e.g. `https://pushdial.example.com`.
    pub server: String,
    /// `dev_…`
    pub device_id: String,
    /// `pd_dev_…` device token. Secret.
    pub token: String,
    /// `agt_…`, informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

impl fmt::Debug for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentState")
            .field("server", &self.server)
            .field("device_id", &self.device_id)
            .field("token", &"<redacted>")
            .field("agent_id", &self.agent_id)
            .finish()
    }
}

impl AgentState {
    /// The state to store after a successful pairing with `server`.
    pub fn from_pair(server: &str, pair: &PairResponse) -> AgentState {
        AgentState {
            server: server.trim().to_owned(),
            device_id: pair.id.clone(),
            token: pair.token.clone(),
            agent_id: Some(pair.agent_id.clone()),
        }
    }

    /// `$XDG_CONFIG_HOME/pushdial/agent.json`, or `~/.config/pushdial/agent.json`.
    pub fn default_path() -> Result<PathBuf> {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|h| PathBuf::from(h).join(".config"))
            })
            .ok_or_else(|| {
                Error::Config(format!(
                    "neither XDG_CONFIG_HOME nor HOME is set; pass --state or set {STATE_ENV}"
                ))
            })?;
        Ok(config.join("pushdial").join("agent.json"))
    }

    /// The state path to use: `explicit` if given, else `$PUSHDIAL_AGENT_STATE`
    /// if set and non-empty, else [`AgentState::default_path`].
    pub fn resolve_path(explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(p) = explicit {
            return Ok(p.to_path_buf());
        }
        match std::env::var_os(STATE_ENV).filter(|v| !v.is_empty()) {
            Some(p) => Ok(PathBuf::from(p)),
            None => Self::default_path(),
        }
    }

    /// Reads the state file.
    pub fn load(path: &Path) -> Result<AgentState> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| Error::StateFile {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the state file atomically (temp file + rename), creating the
    /// parent directory (mode 0700) and giving the file mode 0600.
    pub fn save(&self, path: &Path) -> Result<()> {
        let io_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| Error::Io { path: p, source }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(io_err(dir))?;
        }
        let mut json = serde_json::to_vec_pretty(self).map_err(|source| Error::StateFile {
            path: path.to_path_buf(),
            source,
        })?;
        json.push(b'\n');

        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".tmp.{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let written = write_private(&tmp, &json).and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            // Best effort: do not leave a token-bearing temp file behind.
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(io_err(path))
    }

    /// An [`AgentClient`] for this state's server and token.
    pub fn client(&self) -> Result<AgentClient> {
        AgentClient::new(&self.server, &self.token)
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Writes `bytes` to a new (or truncated) file readable only by its owner.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path)?;
    #[cfg(unix)]
    {
        // The file may have existed with looser permissions.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn state_round_trip_with_private_mode() {
        let dir = std::env::temp_dir().join(format!(
            "pushdial-sdk-test-{}-{}",
            std::process::id(),
            rand::thread_rng().gen::<u64>()
        ));
        let path = dir.join("nested").join("agent.json");
        let state = AgentState {
            server: "http://127.0.0.1:8080".into(),
            device_id: "dev_123".into(),
            token: "pd_dev_secret".into(),
            agent_id: Some("agt_1".into()),
        };
        state.save(&path).unwrap();
        assert_eq!(AgentState::load(&path).unwrap(), state);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Overwrite keeps working and stays private.
        let other = AgentState {
            agent_id: None,
            ..state.clone()
        };
        other.save(&path).unwrap();
        assert_eq!(AgentState::load(&path).unwrap(), other);
        assert!(!format!("{other:?}").contains("pd_dev_secret"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn state_load_errors_are_typed() {
        let dir = std::env::temp_dir().join(format!("pushdial-sdk-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.json");
        assert!(matches!(AgentState::load(&missing), Err(Error::Io { .. })));
        let bad = dir.join("bad.json");
        std::fs::write(&bad, b"{not json").unwrap();
        assert!(matches!(
            AgentState::load(&bad),
            Err(Error::StateFile { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn state_file_accepts_minimal_shape() {
        let s: AgentState =
            serde_json::from_str(r#"{"server":"http://x","device_id":"dev_1","token":"t"}"#)
                .unwrap();
        assert_eq!(s.agent_id, None);
    }

    #[test]
    fn resolve_path_prefers_explicit() {
        let p = AgentState::resolve_path(Some(Path::new("/tmp/x.json"))).unwrap();
        assert_eq!(p, PathBuf::from("/tmp/x.json"));
    }
}
