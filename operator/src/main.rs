//! `runnel-operator`: `run` (the default) reconciles KafkaClusters; `crdgen` writes the
//! CRD manifests; `rack` is the broker pods' init container.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use runnel_operator::lease::Election;
use runnel_operator::rack_init::RackArgs;
use runnel_operator::run::RunArgs;
use runnel_operator::{crd, rack_init, run};

const USAGE: &str = "\
runnel-operator: Runnel's Kubernetes operator

usage:
  runnel-operator [run] [--metrics-address HOST:PORT] [--cluster-domain DOMAIN]
                  [--leader-election true|false] [--lease-name NAME] [--lease-namespace NS]
                  [--topic-resync-seconds 60]
      Reconciles KafkaCluster and Topic resources (a settled Topic is compared with its
      topic every --topic-resync-seconds). In a pod it uses the pod's service account;
      elsewhere the kubeconfig. Leader election (default on) takes a Lease in
      --lease-namespace (default: $POD_NAMESPACE) so only one replica acts.
      Defaults: --metrics-address 0.0.0.0:8080, --cluster-domain cluster.local,
      --lease-name runnel-operator. Logs follow RUST_LOG (default info).
  runnel-operator crdgen [--root DIR]
      Writes the CRD manifests into DIR/crds and DIR/charts/runnel-operator/crds
      (default DIR: the current directory), or to stdout with --stdout.
  runnel-operator rack --config-map NAME --namespace NS --pod POD --node NODE --out FILE
                  [--timeout-seconds 600]
      The broker pods' init container: waits for the operator's rack entry for POD on
      NODE and writes broker.rack into FILE.
  runnel-operator --version
";

/// `--key value` and `--key=value` pairs after the subcommand.
fn options(args: &[String]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let Some(body) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        if let Some((key, value)) = body.split_once('=') {
            out.insert(key.to_string(), value.to_string());
        } else if body == "stdout" {
            out.insert(body.to_string(), "true".to_string());
        } else {
            let value = args
                .get(i + 1)
                .ok_or_else(|| format!("--{body} needs a value"))?;
            out.insert(body.to_string(), value.clone());
            i += 1;
        }
        i += 1;
    }
    Ok(out)
}

fn take(options: &mut HashMap<String, String>, key: &str) -> Option<String> {
    options.remove(key)
}

fn require(options: &mut HashMap<String, String>, key: &str) -> Result<String, String> {
    take(options, key).ok_or_else(|| format!("--{key} is required"))
}

fn no_more(options: HashMap<String, String>) -> Result<(), String> {
    match options.keys().next() {
        Some(key) => Err(format!("unknown option --{key}")),
        None => Ok(()),
    }
}

fn run_args(mut opts: HashMap<String, String>) -> Result<RunArgs, String> {
    let metrics_address: SocketAddr = take(&mut opts, "metrics-address")
        .unwrap_or_else(|| "0.0.0.0:8080".to_string())
        .parse()
        .map_err(|e| format!("--metrics-address: {e}"))?;
    let domain = take(&mut opts, "cluster-domain").unwrap_or_else(|| "cluster.local".to_string());
    let elect = match take(&mut opts, "leader-election").as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(format!(
                "--leader-election: expected true or false, not {other:?}"
            ))
        }
    };
    let identity = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("runnel-operator-{}", std::process::id()));
    let lease_name = take(&mut opts, "lease-name").unwrap_or_else(|| "runnel-operator".to_string());
    let lease_namespace =
        take(&mut opts, "lease-namespace").or_else(|| std::env::var("POD_NAMESPACE").ok());
    let topic_resync = Duration::from_secs(
        take(&mut opts, "topic-resync-seconds")
            .map(|v| match v.parse::<u64>() {
                Ok(s) if s >= 1 => Ok(s),
                _ => Err(format!(
                    "--topic-resync-seconds: expected whole seconds >= 1, not {v:?}"
                )),
            })
            .transpose()?
            .unwrap_or(60),
    );
    no_more(opts)?;
    let election = if elect {
        let namespace = lease_namespace.ok_or(
            "leader election needs --lease-namespace (or POD_NAMESPACE); --leader-election=false runs without",
        )?;
        Some(Election::new(
            lease_name,
            namespace,
            identity.clone(),
            Duration::from_secs(15),
            Duration::from_secs(5),
        ))
    } else {
        None
    };
    Ok(RunArgs {
        metrics_address,
        domain,
        election,
        identity,
        topic_resync,
    })
}

fn rack_args(mut opts: HashMap<String, String>) -> Result<RackArgs, String> {
    let args = RackArgs {
        config_map: require(&mut opts, "config-map")?,
        namespace: require(&mut opts, "namespace")?,
        pod: require(&mut opts, "pod")?,
        node: require(&mut opts, "node")?,
        out: PathBuf::from(require(&mut opts, "out")?),
        timeout: Duration::from_secs(
            take(&mut opts, "timeout-seconds")
                .map(|v| v.parse().map_err(|e| format!("--timeout-seconds: {e}")))
                .transpose()?
                .unwrap_or(600),
        ),
    };
    no_more(opts)?;
    Ok(args)
}

fn crdgen(mut opts: HashMap<String, String>) -> Result<(), String> {
    let stdout = take(&mut opts, "stdout").is_some();
    let root = PathBuf::from(take(&mut opts, "root").unwrap_or_else(|| ".".to_string()));
    no_more(opts)?;
    for (file, definition) in crd::all() {
        let yaml =
            crd::to_yaml(&definition).map_err(|e| format!("failed to render {file}: {e}"))?;
        if stdout {
            print!("---\n{yaml}");
            continue;
        }
        for dir in crd::OUTPUT_DIRS {
            let dir = root.join(dir);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("failed to create {}: {e}", dir.display()))?;
            let path = dir.join(file);
            std::fs::write(&path, &yaml)
                .map_err(|e| format!("failed to write {}: {e}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("failed to start the async runtime: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.first().map(String::as_str) {
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("-V" | "--version") => {
            println!("runnel-operator {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(c @ ("run" | "crdgen" | "rack")) => (c, &args[1..]),
        _ => ("run", &args[..]),
    };
    let result = options(rest).and_then(|opts| match command {
        "crdgen" => crdgen(opts),
        "rack" => {
            let args = rack_args(opts)?;
            init_tracing();
            runtime()?
                .block_on(rack_init::run(args))
                .map_err(|e| e.to_string())
        }
        _ => {
            let args = run_args(opts)?;
            init_tracing();
            runtime()?
                .block_on(run::run(args))
                .map_err(|e| e.to_string())
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("runnel-operator: {message}");
            ExitCode::FAILURE
        }
    }
}
