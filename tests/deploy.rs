//! The deployment files in `deploy/`: they parse, and their numbers agree with each other and
//! with rtserve's flags, so that a rolling deploy drains before it stops and stops before it
//! is killed.

use std::{path::Path, time::Duration};

use yaml_rust2::{Yaml, YamlLoader};

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The value after `flag` in an argument list.
fn flag<'a>(args: &'a [&'a str], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1))
        .copied()
}

fn millis(value: &str) -> Duration {
    Duration::from_millis(value.parse().expect("a number of milliseconds"))
}

fn seconds(yaml: &Yaml, what: &str) -> Duration {
    let n = yaml
        .as_i64()
        .unwrap_or_else(|| panic!("{what} is not a number: {yaml:?}"));
    Duration::from_secs(u64::try_from(n).expect("not negative"))
}

#[test]
fn the_kubernetes_deployment_drains_before_it_stops_and_stops_before_it_is_killed() {
    let docs = YamlLoader::load_from_str(&read("deploy/k8s/rtserve.yaml")).expect("valid YAML");
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(k))
            .unwrap_or_else(|| panic!("no {k} in deploy/k8s/rtserve.yaml"))
    };
    let deployment = kind("Deployment");
    let service = kind("Service");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_vec()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("every argument a string"))
        .collect();

    // The readiness probe is /healthz, which says 503 from the start of the drain grace.
    let probe = &container["readinessProbe"];
    assert_eq!(probe["httpGet"]["path"].as_str(), Some("/healthz"));
    let out_of_rotation = seconds(&probe["periodSeconds"], "periodSeconds")
        * u32::try_from(probe["failureThreshold"].as_i64().unwrap_or(3)).unwrap();
    let grace = millis(flag(&args, "--drain-grace-ms").expect("--drain-grace-ms"));
    assert!(
        grace > out_of_rotation,
        "the drain grace ({grace:?}) must outlast the probe taking the pod out ({out_of_rotation:?})"
    );
    // Not both a preStop sleep and a drain grace: they would add up.
    assert!(
        container["lifecycle"]["preStop"].is_badvalue(),
        "a preStop hook as well as --drain-grace-ms"
    );
    // Killed only after the drain and the shutdown timeout.
    let shutdown = millis(flag(&args, "--shutdown-timeout-ms").expect("--shutdown-timeout-ms"));
    let kill_after = seconds(
        &pod["terminationGracePeriodSeconds"],
        "terminationGracePeriodSeconds",
    );
    assert!(
        kill_after > grace + shutdown,
        "terminationGracePeriodSeconds ({kill_after:?}) must exceed the drain grace plus the \
         shutdown timeout ({:?})",
        grace + shutdown
    );
    // Never fewer pods than asked during a rollout.
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"].as_i64(),
        Some(0)
    );

    // The Service reaches the container's port, which is the one rtserve binds.
    let port = &container["ports"][0];
    let bind = flag(&args, "--bind").expect("--bind");
    let bound: u16 = bind.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(port["containerPort"].as_i64(), Some(i64::from(bound)));
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"].as_str(),
        port["name"].as_str()
    );
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_hash().expect("a selector") {
        assert_eq!(&labels[key.as_str().unwrap()], value, "selector {key:?}");
    }
}

#[test]
fn the_systemd_service_is_killed_only_after_the_drain_and_the_shutdown() {
    let unit = read("deploy/systemd/rtserve.service");
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key}= in rtserve.service"))
            .trim()
            .to_owned()
    };
    let exec = value("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().collect();
    let grace = millis(flag(&args, "--drain-grace-ms").expect("--drain-grace-ms"));
    let shutdown = millis(flag(&args, "--shutdown-timeout-ms").expect("--shutdown-timeout-ms"));
    let stop = Duration::from_secs(value("TimeoutStopSec").parse().expect("seconds"));
    assert!(
        stop > grace + shutdown,
        "TimeoutStopSec {stop:?} vs {:?}",
        grace + shutdown
    );
    // Its sockets come from the socket unit: no --bind of its own.
    assert!(flag(&args, "--bind").is_none(), "{exec}");
    assert_eq!(value("Requires"), "rtserve.socket");
}
