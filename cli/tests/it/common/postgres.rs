//! A throw-away PostgreSQL (Debian's) for one test: initdb in a temp dir,
//! listening only on a unix socket there, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory of PostgreSQL's server binaries: `TELLTALE_TEST_PG_BIN`
/// (scripts/tools sets it), else the newest /usr/lib/postgresql/*/bin.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TELLTALE_TEST_PG_BIN").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").is_file())
        .collect();
    found.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL's initdb is required by this test and was not found; run scripts/tools \
             (it installs Debian's postgresql) or set TELLTALE_TEST_PG_BIN"
        )
    })
}

pub struct Postgres {
    /// The socket directory (also the data directory's parent).
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    pub user: String,
}

/// PostgreSQL refuses to run as root: as root the server runs as the
/// `postgres` system user, which owns the temp dir.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("telltale-pg")
            .tempdir()
            .unwrap();
        // The server user must reach the socket directory.
        super::run_ok(Command::new("chmod").arg("755").arg(dir.path()));
        if is_root() {
            super::run_ok(Command::new("chown").arg("postgres").arg(dir.path()));
        }
        let data = dir.path().join("data");
        let user = "telltale".to_string();
        super::run_ok(
            as_server_user(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-A", "trust", "-U", &user, "--no-sync"]),
        );
        super::run_ok(
            as_server_user(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-o")
                .arg(format!(
                    "-k {} -c listen_addresses='' -c fsync=off",
                    dir.path().display()
                ))
                .arg("-l")
                .arg(dir.path().join("server.log"))
                .args(["-w", "-t", "30", "start"]),
        );
        Postgres { dir, bin, user }
    }

    /// A libpq URL for the unix socket, as postgres_exporter takes it.
    pub fn dsn(&self) -> String {
        format!(
            "postgresql://{}@/postgres?host={}&sslmode=disable",
            self.user,
            self.dir.path().display()
        )
    }

    /// Runs `sql` with psql, failing on the first error; returns the rows
    /// as tab-separated fields, the header row first.
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let psql = [self.bin.join("psql"), PathBuf::from("/usr/bin/psql")]
            .into_iter()
            .find(|p| p.is_file())
            .expect("psql");
        let output = Command::new(psql)
            .args(["-X", "-q", "-A", "-F", "\t", "-P", "footer=off"])
            .args(["-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args(["-U", &self.user, "-d", "postgres", "-c", sql])
            .env("LC_ALL", "C")
            .output()
            .expect("psql runs");
        assert!(
            output.status.success(),
            "psql failed on\n{sql}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(String::from).collect())
            .collect()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
