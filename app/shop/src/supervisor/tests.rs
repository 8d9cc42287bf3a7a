//! Tests of the supervisor: the pure plan (groups, ports, peers, `serve`
//! arguments, discovery document, backoff schedule), the watchdog, and the
//! process machinery run against a stand-in for `shop serve` (a shell
//! script that announces itself and sleeps), since the real command is not
//! needed to start, restart and stop processes.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

fn groups(gs: &[&[&str]]) -> Vec<Vec<String>> {
    gs.iter()
        .map(|g| g.iter().map(|c| (*c).to_owned()).collect())
        .collect()
}

/// The first four capabilities of the table: the tests group them, and
/// expect every other one to run alone.
fn four() -> [&'static str; 4] {
    assert!(CAPABILITIES.len() >= 4, "the tests group four capabilities");
    [
        CAPABILITIES[0],
        CAPABILITIES[1],
        CAPABILITIES[2],
        CAPABILITIES[3],
    ]
}

/// Every capability after the first four, each alone.
fn the_rest_alone() -> Vec<Vec<String>> {
    CAPABILITIES[4..]
        .iter()
        .map(|c| vec![(*c).to_owned()])
        .collect()
}

#[test]
fn by_default_every_capability_runs_alone_in_dependency_order() {
    let want: Vec<Vec<String>> = crate::capabilities::TABLE
        .iter()
        .map(|c| vec![c.name.to_owned()])
        .collect();
    assert_eq!(default_groups(), want);
    assert_eq!(normalize_groups(&default_groups()).unwrap(), want);
    assert_eq!(normalize_groups(&[]).unwrap(), want, "no groups: one each");
}

#[test]
fn groups_are_completed_and_ordered() {
    let [a, b, c, d] = four();
    let mut want = groups(&[&[a, b], &[c, d]]);
    want.extend(the_rest_alone());
    assert_eq!(
        normalize_groups(&groups(&[&[d, c], &[b, a], &[]])).unwrap(),
        want
    );
    let mut want = groups(&[&[a], &[b, c], &[d]]);
    want.extend(the_rest_alone());
    assert_eq!(normalize_groups(&groups(&[&[c, b]])).unwrap(), want);
}

#[test]
fn bad_groups_are_refused_naming_the_capability() {
    let [a, b, ..] = four();
    let err = normalize_groups(&groups(&[&[a, "shipping"]])).unwrap_err();
    assert!(err.to_string().contains("\"shipping\""), "{err}");
    let err = normalize_groups(&groups(&[&[a], &[b, a]])).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("{a:?} is in more than one group")),
        "{err}"
    );
}

/// The second and third capabilities share a service, the others run
/// alone, on ports from 4001 up.
fn colocated_plan() -> Vec<ServiceSpec> {
    let [_, b, c, _] = four();
    let groups = normalize_groups(&groups(&[&[c, b]])).unwrap();
    let ports: Vec<u16> = (0..groups.len()).map(|i| 4001 + i as u16).collect();
    plan(groups, &ports).unwrap()
}

/// The port of `cap` in [`colocated_plan`].
fn colocated_port(cap: &str) -> u16 {
    let i = CAPABILITIES.iter().position(|c| *c == cap).unwrap();
    4001 + if i <= 1 { i } else { i - 1 } as u16
}

#[test]
fn each_group_gets_a_port_and_every_capability_a_peer_url() {
    let [_, b, c, d] = four();
    let specs = colocated_plan();
    assert_eq!(specs.len(), CAPABILITIES.len() - 1);
    assert_eq!(specs[1].label(), format!("{b},{c}"));
    assert_eq!(specs[1].url(), "http://127.0.0.1:4002");
    let url = |port: u16| format!("http://127.0.0.1:{port}");
    let want: Vec<(String, String)> = CAPABILITIES
        .iter()
        .map(|cap| ((*cap).to_owned(), url(colocated_port(cap))))
        .collect();
    assert_eq!(peers(&specs), want);
    assert_eq!(want[1].1, want[2].1, "{b} and {c} share a service");
    let routes = routes(&specs);
    assert_eq!(routes.url(c), Some("http://127.0.0.1:4002"));
    assert_eq!(routes.url(d), Some("http://127.0.0.1:4003"));
    assert!(plan(default_groups(), &[1, 2]).is_err());
}

#[test]
fn serve_gets_its_capabilities_address_data_remote_peers_and_extra_args() {
    let [_, b, c, _] = four();
    let specs = colocated_plan();
    let args = serve_args(
        &specs[1],
        &specs,
        Path::new("/data dir"),
        &[
            "--chaos".to_owned(),
            "--durability".to_owned(),
            "normal".to_owned(),
        ],
    );
    let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
    let mut want: Vec<String> = [
        "serve",
        b,
        c,
        "--addr",
        "127.0.0.1:4002",
        "--data",
        "/data dir",
    ]
    .map(str::to_owned)
    .to_vec();
    for cap in CAPABILITIES.iter().filter(|cap| ![b, c].contains(*cap)) {
        want.push("--peer".to_owned());
        want.push(format!("{cap}=http://127.0.0.1:{}", colocated_port(cap)));
    }
    want.extend(["--chaos", "--durability", "normal"].map(str::to_owned));
    assert_eq!(args, want);
}

#[test]
fn the_discovery_document_lists_every_service() {
    let [a, b, c, d] = four();
    let specs = colocated_plan();
    let pids: Vec<Option<u32>> = (0..specs.len())
        .map(|i| (i != 2).then_some(10 + i as u32))
        .collect();
    let mut services: Vec<Vec<&str>> = vec![vec![a], vec![b, c], vec![d]];
    services.extend(CAPABILITIES[4..].iter().map(|cap| vec![*cap]));
    let want: Vec<Value> = services
        .iter()
        .enumerate()
        .map(|(i, caps)| {
            json!({ "capabilities": caps, "url": format!("http://127.0.0.1:{}", 4001 + i), "pid": pids[i] })
        })
        .collect();
    assert_eq!(discovery_json(&specs, &pids), json!({ "services": want }));
    assert_eq!(want[2]["pid"], Value::Null);
}

#[test]
fn bound_ports_are_distinct() {
    let mut ports: Vec<u16> = bind_ports(5)
        .unwrap()
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    assert!(ports.iter().all(|p| *p != 0));
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 5);
}

#[test]
fn backoff_doubles_to_ten_seconds_and_resets_after_thirty_seconds_up() {
    let ms = Duration::from_millis;
    let mut backoff = Backoff::new();
    let schedule: Vec<Duration> = (0..8).map(|_| backoff.delay_after(ms(100))).collect();
    assert_eq!(
        schedule,
        [
            ms(250),
            ms(500),
            ms(1000),
            ms(2000),
            ms(4000),
            ms(8000),
            ms(10_000),
            ms(10_000)
        ]
    );
    assert_eq!(
        backoff.delay_after(Duration::from_secs(29)),
        ms(10_000),
        "29 s up is still a crash loop"
    );
    assert_eq!(backoff.delay_after(Duration::from_secs(30)), ms(250));
    assert_eq!(backoff.delay_after(Duration::ZERO), ms(500));
}

/// Waits (up to 20 s) until `f` finds something.
async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn alive(pid: u64) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn signal(sig: &str, pid: u64) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A stand-in for `shop serve`: records its arguments, announces itself like
/// the real one, then sleeps until signalled.
const FAKE_SERVE: &str = r#"
addr=; data=
for a in "$@"; do
  case "$prev" in --addr) addr=$a ;; --data) data=$a ;; esac
  prev=$a
done
echo "$@" > "$data/args-${addr##*:}"
echo "$SHOP_NATS_URL" > "$data/nats-${addr##*:}"
echo "$LISTEN_FDS $(readlink /proc/$$/fd/3)" >> "$data/socket-${addr##*:}"
echo "some chatter before the announcement"
echo "shop listening on http://$addr (data in $data)"
exec sleep 600
"#;

fn fake(script: &str) -> Program {
    Program {
        path: "sh".into(),
        leading_args: vec!["-c".into(), script.into(), "fake-shop".into()],
    }
}

fn minter() -> seams_auth::Minter {
    let keys = seams_auth::KeyStore::in_memory(seams_auth::SigningKeys::generate().unwrap());
    seams_auth::Minter::new(keys, "test")
}

fn pids(doc: &Value) -> Vec<Option<u64>> {
    doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["pid"].as_u64())
        .collect()
}

fn read_discovery(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

#[cfg(unix)]
#[tokio::test]
async fn starts_every_service_restarts_a_killed_one_and_stops_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SplitOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        groups: groups(&[&[four()[2], four()[1]]]),
        extra_args: vec!["--chaos".into()],
        databases: Default::default(),
        minter: minter(),
        log_format: crate::telemetry::Format::Json,
        signing_keys: Some(dir.path().join("keys.json")),
        edge: Default::default(),
        nats: Some("nats://svc:s3cr3t@127.0.0.1:4222".into()),
        tls: None,
        upstream: Default::default(),
        versions: Versions {
            emit: vec!["billing.invoice-created=1".into()],
            accept: Vec::new(),
        },
        verifier: Arc::new(seams_auth::Verifier::new(Vec::new())),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(run_with(fake(FAKE_SERVE), opts, async {
        let _ = rx.await;
    }));
    let discovery = dir.path().join("services.json");
    let doc = eventually("services.json with every PID", || {
        read_discovery(&discovery).filter(|d| pids(d).iter().all(Option::is_some))
    })
    .await;
    let [first, b, c, _] = four();
    let services = doc["services"].as_array().unwrap();
    assert_eq!(services.len(), CAPABILITIES.len() - 1);
    assert_eq!(services[1]["capabilities"], json!([b, c]));
    let before: Vec<u64> = pids(&doc).into_iter().map(Option::unwrap).collect();
    assert!(before.iter().all(|p| alive(*p)));

    // The colocated service was told where the others are, and the extras.
    let url = services[1]["url"].as_str().unwrap();
    let port = url.rsplit(':').next().unwrap();
    let args = std::fs::read_to_string(dir.path().join(format!("args-{port}"))).unwrap();
    let first_url = services[0]["url"].as_str().unwrap();
    assert!(
        args.starts_with(&format!("serve {b} {c} --addr 127.0.0.1:{port} --data ")),
        "{args}"
    );
    assert!(
        args.contains(&format!("--peer {first}={first_url}")),
        "{args}"
    );
    assert!(
        !args.contains(&format!("--peer {b}=")) && !args.contains(&format!("--peer {c}=")),
        "no peer for itself: {args}"
    );
    assert!(
        args.trim_end()
            .ends_with("--chaos --emit billing.invoice-created=1"),
        "the extras, then the versions: {args}"
    );
    assert!(args.contains(" --log-format json "), "{args}");
    // A credential-carrying URL goes in the environment, never in argv.
    assert!(
        !args.contains("s3cr3t") && !args.contains("nats://"),
        "{args}"
    );
    let nats = std::fs::read_to_string(dir.path().join(format!("nats-{port}"))).unwrap();
    assert_eq!(nats.trim(), "nats://svc:s3cr3t@127.0.0.1:4222");

    // A service that dies is started again, on the same port; meanwhile its
    // port still takes connections, into the supervisor's socket's backlog.
    signal("-KILL", before[2]);
    eventually("the killed service to be gone", || {
        (!alive(before[2])).then_some(())
    })
    .await;
    let addr = services[2]["url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://");
    std::net::TcpStream::connect(addr).expect("a connection while the service restarts waits");
    let doc = eventually("the killed service to be restarted", || {
        read_discovery(&discovery).filter(|d| matches!(pids(d)[2], Some(p) if p != before[2]))
    })
    .await;
    let after: Vec<u64> = pids(&doc).into_iter().map(Option::unwrap).collect();
    assert_eq!(doc["services"][2]["url"], services[2]["url"]);
    assert_eq!(after[..2], before[..2], "the others were left alone");
    assert!(alive(after[2]));
    // Both starts were handed the supervisor's socket as fd 3: the same
    // socket (one inode), so the port was never free in between.
    let port = services[2]["url"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap();
    let sockets = std::fs::read_to_string(dir.path().join(format!("socket-{port}"))).unwrap();
    let sockets: Vec<&str> = sockets.lines().collect();
    assert_eq!(sockets.len(), 2, "{sockets:?}");
    assert!(sockets[0].starts_with("1 socket:["), "{sockets:?}");
    assert_eq!(sockets[0], sockets[1]);

    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("stops in time")
        .unwrap()
        .unwrap();
    for pid in after {
        assert!(!alive(pid), "service {pid} still runs after shutdown");
    }
    assert!(!discovery.exists(), "stale discovery file left behind");
}

#[cfg(unix)]
#[tokio::test]
async fn a_service_that_never_listens_fails_the_start_and_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SplitOptions::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().to_owned(),
        minter(),
    );
    // The first service comes up; the second exits at once.
    let [first, second, ..] = four();
    let script = r#"
case " $* " in
  *" SECOND "*) echo "not today" >&2; exit 3 ;;
esac
for a in "$@"; do [ "$prev" = --addr ] && addr=$a; prev=$a; done
echo "$$" > "$0.pid"
echo "shop listening on http://$addr"
exec sleep 600
"#
    .replace("SECOND", second);
    let pid_file = dir.path().join("fake-shop.pid");
    let program = Program {
        path: "sh".into(),
        leading_args: vec![
            "-c".into(),
            script.into(),
            dir.path().join("fake-shop").into(),
        ],
    };
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        run_with(program, opts, std::future::pending()),
    )
    .await
    .expect("fails in time")
    .unwrap_err();
    assert!(
        format!("{err:#}").contains(&format!("service {second} exited before listening")),
        "{err:#}"
    );
    let started: u64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!alive(started), "{first} was not stopped");
}

#[cfg(unix)]
#[tokio::test]
async fn the_watchdog_stops_its_group_when_the_supervisor_goes_away() {
    let mut watchdog = Watchdog::spawn().unwrap();
    let mut service = tokio::process::Command::new("sleep")
        .arg("600")
        .process_group(watchdog.pgid() as i32)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    watchdog.close_pipe();
    let status = tokio::time::timeout(Duration::from_secs(10), service.wait())
        .await
        .expect("the service was stopped")
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15), "stopped with SIGTERM: {status}");
    watchdog.stop().await;
}

/// A launcher of the stand-in on a socket of its own, in `dir`; a start
/// whose arguments hold `--emit refused=1` fails before listening.
#[cfg(unix)]
fn launcher(dir: &Path) -> Launcher {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let script = format!(
        "case \"$*\" in *'--emit refused=1'*) echo refused >&2; exit 1 ;; esac\n{FAKE_SERVE}"
    );
    Launcher {
        socket,
        program: fake(&script),
        args: vec![
            "serve".into(),
            "billing".into(),
            "--addr".into(),
            format!("127.0.0.1:{port}").into(),
            "--data".into(),
            dir.as_os_str().to_owned(),
        ],
        databases: String::new(),
        token_file: dir.join("token"),
        signing_keys: None,
        nats: None,
        label: "billing".into(),
        log_format: crate::telemetry::Format::Text,
        pgid: None,
        versions: Arc::new(Mutex::new(Versions::default())),
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_roll_starts_the_successor_on_the_same_socket_before_stopping_its_predecessor() {
    let dir = tempfile::tempdir().unwrap();
    let l = launcher(dir.path());
    let port = l.socket.local_addr().unwrap().port();
    let mut child = l.start().await.unwrap();
    let first = child.id().unwrap();
    let versions = Versions {
        emit: vec!["billing.invoice-created=1".into()],
        accept: vec!["fulfillment:billing.invoice-created=1".into()],
    };
    let rolled = roll(&l, &mut child, versions.clone()).await.unwrap();
    let second = child.id().unwrap();
    assert_ne!(first, second);
    assert_eq!(
        (rolled.service.as_str(), rolled.old_pid, rolled.new_pid),
        ("billing", Some(first), Some(second))
    );
    assert_eq!(
        (rolled.emit, rolled.accept),
        (versions.emit, versions.accept)
    );
    assert!(
        !alive(first.into()),
        "the predecessor was stopped (and reaped)"
    );
    assert!(alive(second.into()));
    // The successor was handed the same socket, and the new settings.
    let sockets = std::fs::read_to_string(dir.path().join(format!("socket-{port}"))).unwrap();
    let sockets: Vec<&str> = sockets.lines().collect();
    assert_eq!(sockets.len(), 2, "{sockets:?}");
    assert_eq!(sockets[0], sockets[1]);
    let args = std::fs::read_to_string(dir.path().join(format!("args-{port}"))).unwrap();
    assert!(
        args.trim_end().ends_with(
            "--emit billing.invoice-created=1 --accept fulfillment:billing.invoice-created=1"
        ),
        "{args}"
    );

    // A successor that does not start changes nothing: the running process
    // stays, and so do the settings its restarts use.
    let refused = Versions {
        emit: vec!["refused=1".into()],
        accept: Vec::new(),
    };
    let err = roll(&l, &mut child, refused).await.unwrap_err();
    assert!(err.contains("exited before listening"), "{err}");
    assert_eq!(child.id(), Some(second));
    assert!(alive(second.into()));
    assert_eq!(
        l.versions.lock().unwrap().emit,
        ["billing.invoice-created=1"],
        "the settings of the running process stay"
    );
    terminate("billing", &mut child).await;
    assert!(!alive(second.into()));
}
