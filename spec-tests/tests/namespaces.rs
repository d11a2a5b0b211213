//! Namespaces: new ones, joined ones, and the cgroup placement.

use spec_tests::*;

#[test]
fn new_pid_namespace_makes_the_process_pid_1() {
    let c = Ctx::new("pidns", &["sh", "-c", "echo $$"]);
    assert_eq!(c.run_ok(), "1\n");
}

#[test]
fn new_network_namespace_has_only_loopback_and_it_is_up() {
    // lo is up (flags IFF_UP|IFF_LOOPBACK), as with runc.
    let c = Ctx::new(
        "netns",
        &["sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/flags"],
    );
    assert_eq!(c.run_ok(), "lo\n0x9\n");
}

#[test]
fn joining_a_namespace_by_path() {
    // A second container joins the first one's network and uts namespaces.
    let mut a = Ctx::new("joina", &["sleep", "100"]);
    a.config()["hostname"] = json!("shared-host");
    a.create_ok();
    let pid = a.state()["pid"].as_i64().unwrap();
    let mut b = Ctx::new(
        "joinb",
        &["sh", "-c", "hostname; readlink /proc/self/ns/net"],
    );
    let ns = b.config()["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "network" && n["type"] != "uts");
    ns.push(json!({"type": "network", "path": format!("/proc/{pid}/ns/net")}));
    ns.push(json!({"type": "uts", "path": format!("/proc/{pid}/ns/uts")}));
    b.config().as_object_mut().unwrap().remove("hostname");
    let out = b.run_ok();
    let want_net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_eq!(out, format!("shared-host\n{}\n", want_net.display()));
}

#[test]
fn unknown_namespace_path_fails_cleanly() {
    let mut c = Ctx::new("badns", &["true"]);
    c.config()["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "ipc", "path": "/proc/no/such/ns"}));
    c.config()["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| !(n["type"] == "ipc" && n.get("path").is_none()));
    let out = c.create();
    assert_one_line_error(&out, &["ipc", "/proc/no/such/ns", "ENOENT"]);
    c.assert_no_residue();
}

#[test]
fn container_is_placed_in_its_cgroups_path() {
    let mut c = Ctx::new("cgpath", &["cat", "/proc/self/cgroup"]);
    // Without the cgroup namespace `husk spec` gives on v2, the container sees its path.
    c.config()["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "cgroup");
    let path = format!("/husk-test/{}", c.id);
    c.config()["linux"]["cgroupsPath"] = json!(path);
    let out = c.run_ok();
    for line in out.lines() {
        // Every hierarchy (v1 controllers, named, and the unified one) holds the container.
        assert!(line.ends_with(&path), "{line} not in {path}: {out}");
    }
    assert!(
        !std::path::Path::new(&format!("/sys/fs/cgroup/pids{path}")).exists(),
        "cgroup not removed"
    );
    c.assert_no_residue();
}

#[test]
fn cgroup_namespace_makes_the_container_cgroup_the_root() {
    let mut c = Ctx::new("cgns", &["cat", "/proc/self/cgroup"]);
    let ns = c.config()["linux"]["namespaces"].as_array_mut().unwrap();
    // `husk spec` gives one on v2 hosts already (as runc's does), not on v1.
    assert_eq!(
        ns.iter().any(|n| n["type"] == "cgroup"),
        cgroup_v2(),
        "{ns:?}"
    );
    if !cgroup_v2() {
        ns.push(json!({"type": "cgroup"}));
    }
    let out = c.run_ok();
    assert!(out.lines().all(|l| l.ends_with(":/")), "{out}");
}

/// A network namespace bind-mounted on a file, as `ip netns add` (and podman, and CNI
/// plugins) make them: joined by path, its fd's link is a path, not "net:[…]".
#[test]
fn joins_a_bind_mounted_network_namespace() {
    // The namespace of a first container, bound on a file that outlives it.
    let holder = Ctx::new("netnsholder", &["sleep", "100"]);
    holder.create_ok();
    let pid = holder.state()["pid"].as_i64().unwrap();
    let file = holder.root.parent().unwrap().join("netns");
    std::fs::write(&file, "").unwrap();
    nix::mount::mount(
        Some(format!("/proc/{pid}/ns/net").as_str()),
        &file,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&file).unwrap());
    let mut c = Ctx::new("netnsfile", &["readlink", "/proc/self/ns/net"]);
    for ns in c.config()["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = json!(file);
        }
    }
    let out = c.run();
    let _ = nix::mount::umount2(&file, nix::mount::MntFlags::MNT_DETACH);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("net:[{ino}]"));
}

/// A user namespace: the maps as configured, root inside, the host's root-owned files seen as
/// the overflow id, an `idmap` mount (no mappings of its own) taking the container's maps so
/// that files owned by root on disk are root's inside, and a bind from a directory that only
/// the host's root may enter (husk opens it on the host).
#[test]
fn user_namespace_maps_and_an_idmap_mount_with_its_mappings() {
    let mut c = Ctx::new(
        "userns",
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c '%u' /bin/busybox /m/f /s/f",
        ],
    );
    let host = c.root.parent().unwrap().join("usrc");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "").unwrap();
    // Root inside cannot make them in a rootfs owned by the host's root.
    std::fs::create_dir_all(c.bundle.rootfs().join("m")).unwrap();
    std::fs::create_dir_all(c.bundle.rootfs().join("s")).unwrap();
    // A source only the host's root may enter (runc's "userns with 2 inaccessible mounts"),
    // named relative to the bundle.
    let secret = c.bundle.dir.join("secret/dir");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("f"), "").unwrap();
    std::fs::set_permissions(
        secret.parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c.config()["linux"]["uidMappings"] = map.clone();
    c.config()["linux"]["gidMappings"] = map;
    c.config()["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c.config()["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/m", "type": "bind", "source": host, "options": ["rbind", "idmap"]}),
    );
    c.config()["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/s", "source": "secret/dir", "options": ["bind"]}));
    let Some(out) = run_idmapped(&c) else { return };
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        words,
        ["0", "100000", "65536", "0", "100000", "65536", "0", "65534", "0", "65534"],
        "{out}"
    );
}
