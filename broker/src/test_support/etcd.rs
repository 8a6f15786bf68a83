//! A throwaway etcd for tests: one member on free loopback ports with a temporary data
//! directory, started as production would run it (auto-compaction on, fsync on), and
//! stopped, killed, paused or restarted on the same data at will.
//!
//! The binary is `RUNNEL_ETCD_BIN` when set, else what scripts/build-etcd.sh prints (it
//! builds etcd 3.6 from its Go modules once per machine, or reuses the Kubernetes test
//! bed's). Under `CI=true` a missing etcd fails the test instead of skipping it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

/// How long a started etcd may take to answer `/health`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Auto-compaction keeps this many revisions (etcd compacts every 5 minutes in revision
/// mode), so a long test run cannot fill etcd's quota and a short one sees no compaction
/// it did not ask for.
const COMPACTION_RETENTION: &str = "1000";

fn other(message: String) -> io::Error {
    io::Error::other(message)
}

/// The etcd binary to run, found once per process.
pub fn etcd_binary() -> io::Result<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| find_binary().map_err(|e| e.to_string()))
        .clone()
        .map_err(other)
}

fn find_binary() -> io::Result<PathBuf> {
    if let Some(path) = std::env::var_os("RUNNEL_ETCD_BIN") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(other(format!(
            "RUNNEL_ETCD_BIN={} is not a file",
            path.display()
        )));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-etcd.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| other(format!("failed to run {}: {e}", script.display())))?;
    if !output.status.success() {
        return Err(other(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout.lines().last().unwrap_or_default().trim();
    let binary = Path::new(dir).join("etcd");
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(other(format!(
            "{} printed {dir:?}, which holds no etcd",
            script.display()
        )))
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// One etcd member for a test.
#[derive(Debug)]
pub struct TestEtcd {
    binary: PathBuf,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl TestEtcd {
    /// Starts a fresh etcd, or says why it cannot: no binary outside CI gives `None`
    /// (the test skips, saying so); under `CI=true` that panics, since CI must not skip.
    pub fn start_or_skip(test: &str) -> Option<TestEtcd> {
        let binary = match etcd_binary() {
            Ok(binary) => binary,
            Err(err) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("{test}: no etcd to test against ({err}); run scripts/build-etcd.sh or set RUNNEL_ETCD_BIN")
            }
            Err(err) => {
                eprintln!("{test}: skipped, no etcd ({err}); run scripts/build-etcd.sh or set RUNNEL_ETCD_BIN");
                return None;
            }
        };
        match TestEtcd::start_with(binary) {
            Ok(etcd) => Some(etcd),
            Err(err) => panic!("{test}: failed to start etcd: {err}"),
        }
    }

    /// Starts a fresh etcd from `binary` and waits until it answers.
    pub fn start_with(binary: PathBuf) -> io::Result<TestEtcd> {
        let mut last = None;
        // Free ports are picked before etcd binds them; another process may win the race.
        for _ in 0..3 {
            let mut etcd = TestEtcd {
                binary: binary.clone(),
                dir: tempfile::tempdir()?,
                client_port: free_port()?,
                peer_port: free_port()?,
                child: None,
            };
            match etcd.launch() {
                Ok(()) => return Ok(etcd),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| other("etcd did not start".into())))
    }

    /// The client URL, as `etcd.endpoints` takes it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The client address, for a [`TcpProxy`](super::proxy::TcpProxy) in front of it.
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.client_port))
    }

    /// The running process id, if etcd runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// etcd's own log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    fn launch(&mut self) -> io::Result<()> {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))?;
        let child = Command::new(&self.binary)
            .args(["--name", "test"])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .args(["--auto-compaction-mode", "revision"])
            .args(["--auto-compaction-retention", COMPACTION_RETENTION])
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Err(other(format!(
                        "etcd exited with {status}; its log:\n{}",
                        self.log()
                    )));
                }
            }
            if self.healthy() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(other(format!(
            "etcd was not healthy within {READY_TIMEOUT:?}; its log:\n{}",
            self.log()
        )))
    }

    /// Whether etcd answers `/health` with `"health":"true"` (it has a leader).
    fn healthy(&self) -> bool {
        let Ok(mut stream) =
            TcpStream::connect_timeout(&self.client_addr(), Duration::from_secs(1))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.contains("\"health\":\"true\"")
    }

    fn signal(&self, signal: Signal) -> io::Result<()> {
        let Some(child) = &self.child else {
            return Err(other("etcd is not running".into()));
        };
        let pid = Pid::from_child(child);
        kill_process(pid, signal).map_err(io::Error::from)
    }

    /// Stops etcd gracefully (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) -> io::Result<()> {
        self.signal(Signal::TERM)?;
        self.reap()
    }

    /// Kills etcd (SIGKILL), as a crash would, and waits for it to exit.
    pub fn kill(&mut self) -> io::Result<()> {
        self.signal(Signal::KILL)?;
        self.reap()
    }

    /// Freezes etcd (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) -> io::Result<()> {
        self.signal(Signal::STOP)
    }

    /// Thaws a paused etcd (SIGCONT).
    pub fn resume(&self) -> io::Result<()> {
        self.signal(Signal::CONT)
    }

    /// Starts etcd again on the same data directory and ports, after `stop` or `kill`.
    pub fn restart(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            return Err(other("etcd is still running".into()));
        }
        self.launch()
    }

    fn reap(&mut self) -> io::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.wait()?;
        }
        Ok(())
    }
}

impl Drop for TestEtcd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL ends a paused etcd too.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
