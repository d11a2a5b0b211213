//! The filesystem: readonly root, mounts and their options, /dev, masked and readonly paths,
//! sysctl, propagation and --no-pivot.

use spec_tests::*;

#[test]
fn readonly_root_refuses_writes() {
    let c = Ctx::new("roroot", &["sh", "-c", "touch /x 2>&1 || echo refused"]);
    assert!(c.run_ok().contains("refused"));
    let mut c = Ctx::new("rwroot", &["sh", "-c", "touch /x && echo wrote"]);
    c.config()["root"]["readonly"] = json!(false);
    assert_eq!(c.run_ok(), "wrote\n");
}

#[test]
fn masked_paths_read_empty_and_readonly_paths_refuse_writes() {
    let mut c = Ctx::new("mask", &["sh", "-c", "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null || echo ro-refused"]);
    c.config()["process"]["capabilities"]["bounding"] =
        json!(["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"]);
    c.config()["process"]["capabilities"]["effective"] =
        json!(["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"]);
    c.config()["process"]["capabilities"]["permitted"] =
        json!(["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"]);
    assert_eq!(c.run_ok(), "0\n0\nro-refused\n");
}

#[test]
fn mounts_with_options_bind_ro_and_tmpfs() {
    let mut c = Ctx::new("mounts", &["sh", "-c", "grep -E ' /(data|scratch) ' /proc/self/mounts; cat /data/hello; touch /data/x 2>/dev/null || echo bind-ro; touch /scratch/y && echo tmpfs-rw"]);
    let host = c.root.parent().unwrap().join("hostdata");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("hello"), "hi\n").unwrap();
    let mounts = c.config()["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/data", "type": "bind", "source": host, "options": ["rbind", "ro", "nosuid"]}));
    mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nodev", "mode=1700", "size=1m"]}));
    let out = c.run_ok();
    let data = out.lines().find(|l| l.contains(" /data ")).unwrap();
    assert!(data.contains("ro,") && data.contains("nosuid"), "{data}");
    let scratch = out.lines().find(|l| l.contains(" /scratch ")).unwrap();
    assert!(
        scratch.starts_with("tmpfs")
            && scratch.contains("nodev")
            && scratch.contains("size=1024k")
            && scratch.contains("mode=1700"),
        "{scratch}"
    );
    assert!(out.contains("hi\nbind-ro\ntmpfs-rw\n"), "{out}");
}

#[test]
fn mount_destination_symlink_cannot_escape_the_rootfs() {
    let mut c = Ctx::new("escape", &["sh", "-c", "ls /etc/escape/marker"]);
    std::os::unix::fs::symlink("/", c.bundle.rootfs().join("etc/escape")).unwrap();
    let host = c.root.parent().unwrap().join("src");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("marker"), "").unwrap();
    c.config()["mounts"].as_array_mut().unwrap().push(json!({"destination": "/etc/escape/tmp/husk-escape-probe", "type": "bind", "source": host, "options": ["bind"]}));
    let _ = c.run();
    assert!(
        !std::path::Path::new("/tmp/husk-escape-probe").exists(),
        "mount escaped to the host"
    );
}

#[test]
fn dev_has_default_devices_symlinks_and_spec_devices() {
    let mut c = Ctx::new("dev", &["sh", "-c", "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/fuse; for l in fd stdin ptmx; do readlink /dev/$l; done; echo x > /dev/null && echo null-ok"]);
    c.config()["linux"]["devices"] = json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}]);
    c.config()["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}]);
    let out = c.run_ok();
    for (dev, mm) in [
        ("null", "1,   3"),
        ("zero", "1,   5"),
        ("full", "1,   7"),
        ("random", "1,   8"),
        ("urandom", "1,   9"),
        ("tty", "5,   0"),
        ("fuse", "10, 229"),
    ] {
        let line = out
            .lines()
            .find(|l| l.ends_with(&format!("/dev/{dev}")))
            .unwrap_or_else(|| panic!("no /dev/{dev}: {out}"));
        assert!(
            line.starts_with("crw-rw-rw-") && line.contains(mm),
            "{line}"
        );
    }
    assert!(
        out.contains("/proc/self/fd\n/proc/self/fd/0\npts/ptmx\nnull-ok\n"),
        "{out}"
    );
}

#[test]
fn sysctl_hostname_and_domainname() {
    let mut c = Ctx::new(
        "uts",
        &[
            "sh",
            "-c",
            "hostname; cat /proc/sys/kernel/domainname; cat /proc/sys/kernel/msgmax",
        ],
    );
    c.config()["hostname"] = json!("box1");
    c.config()["domainname"] = json!("example.org");
    c.config()["linux"]["sysctl"] = json!({"kernel.msgmax": "12345"});
    assert_eq!(c.run_ok(), "box1\nexample.org\n12345\n");
}

#[test]
fn no_pivot_runs_the_container() {
    let c = Ctx::new("nopivot", &["sh", "-c", "echo in; ls /"]);
    c.bundle.write();
    let b = c.bundle.dir.to_string_lossy().to_string();
    let out = c.husk(&["run", "--no-pivot", "--bundle", &b, &c.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("in\n") && stdout(&out).contains("bin"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn rootfs_propagation_private_reaches_root_mount() {
    let mut c = Ctx::new(
        "prop",
        &["sh", "-c", "awk '$5 == \"/\"' /proc/self/mountinfo"],
    );
    c.config()["linux"]["rootfsPropagation"] = json!("rprivate");
    let out = c.run_ok();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        !out.contains("shared:") && !out.contains("master:"),
        "{out}"
    );
    c.config()["linux"]["rootfsPropagation"] = json!("rshared");
    assert!(c.run_ok().contains("shared:"));
    // Unbindable too: given after pivot_root (before it, the rootfs bind would be refused).
    c.config()["linux"]["rootfsPropagation"] = json!("unbindable");
    assert!(c.run_ok().contains("unbindable"));
    // The non-recursive modes leave the bundle's own mount as it was: shared where the
    // bundle is on a mount of its own (the VM's /tmp), which pivot_root refuses.
    for mode in ["slave", "private"] {
        c.config()["linux"]["rootfsPropagation"] = json!(mode);
        c.run_ok();
    }
}

#[test]
fn cgroup_mount_shows_the_container_cgroup_read_only() {
    let c = Ctx::new(
        "cgmount",
        &[
            "sh",
            "-c",
            "ls /sys/fs/cgroup; touch /sys/fs/cgroup/x 2>/dev/null || echo ro",
        ],
    );
    let out = c.run_ok();
    assert!(out.ends_with("ro\n"), "{out}");
    if std::path::Path::new("/sys/fs/cgroup/memory").exists() {
        assert!(out.contains("memory") && out.contains("pids"), "{out}");
    }
}

#[test]
fn readonly_dev_tmpfs_still_gets_its_submounts_and_devices() {
    let mut c = Ctx::new(
        "rodev",
        &[
            "sh",
            "-c",
            "touch /dev/x 2>/dev/null || echo ro; ls /dev/pts/ptmx /dev/null",
        ],
    );
    for m in c.config()["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    assert_eq!(c.run_ok(), "ro\n/dev/null\n/dev/pts/ptmx\n");
}

#[test]
fn proc_over_a_symlink_is_refused() {
    let c = Ctx::new("procsymlink", &["true"]);
    std::fs::remove_dir(c.bundle.rootfs().join("proc")).unwrap();
    std::os::unix::fs::symlink("/etc", c.bundle.rootfs().join("proc")).unwrap();
    let out = c.create();
    assert_one_line_error(&out, &["/proc", "symlink"]);
    c.assert_no_residue();
}

#[test]
fn no_pivot_leaves_no_host_proc_to_remount() {
    // With the host's procfs still reachable below the chroot, a nested user+pid namespace
    // could mount a fresh, unmasked /proc (runc's bats "--no-pivot must not expose bare /proc").
    // Checked: with hide_host_proc_and_sys disabled this test fails ("mounted").
    let mut c = Ctx::new(
        "nopivotproc",
        &[
            "unshare",
            "-mrpf",
            "sh",
            "-c",
            "mount -t proc none /proc && echo mounted",
        ],
    );
    for set in ["bounding", "effective", "permitted"] {
        c.config()["process"]["capabilities"][set] =
            json!(["CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_SETFCAP"]);
    }
    c.bundle.write();
    let b = c.bundle.dir.to_string_lossy().to_string();
    let out = c.husk(&["run", "--no-pivot", "--bundle", &b, &c.id]);
    assert!(
        !stdout(&out).contains("mounted"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Permission denied") || stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
}

/// Id-mapped bind mounts: owners on disk appear through the mount's mapping (an on-disk id
/// is read as the namespace side of the map and shown as the host side), read-only when asked,
/// and a container user namespace's mapping serves `idmap` without mappings of its own.
#[test]
fn id_mapped_mounts_show_mapped_owners() {
    let mut c = Ctx::new(
        "idmap",
        &[
            "sh",
            "-c",
            "stat -c '%n %u:%g' /m/root /m/five /r/root; touch /m/x 2>/dev/null || echo ro",
        ],
    );
    let host = c.root.parent().unwrap().join("idmapsrc");
    std::fs::create_dir_all(&host).unwrap();
    for (name, id) in [("root", 0), ("five", 5)] {
        std::fs::write(host.join(name), "").unwrap();
        std::os::unix::fs::chown(host.join(name), Some(id), Some(id)).unwrap();
    }
    let map = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    let mounts = c.config()["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/m", "type": "bind", "source": host,
        "options": ["rbind", "ro"], "uidMappings": map, "gidMappings": map}));
    mounts.push(json!({"destination": "/r", "type": "bind", "source": host,
        "options": ["rbind", "ridmap"],
        "uidMappings": [{"containerID": 0, "hostID": 2000, "size": 10}],
        "gidMappings": [{"containerID": 0, "hostID": 3000, "size": 10}]}));
    let Some(out) = run_idmapped(&c) else { return };
    // 5 is outside the first map: the overflow id.
    assert_eq!(
        out, "/m/root 1000:1000\n/m/five 65534:65534\n/r/root 2000:3000\nro\n",
        "{out}"
    );
}

#[test]
fn id_mapped_mount_errors_are_named() {
    let mut c = Ctx::new("idmapbad", &["true"]);
    let mounts = c.config()["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/m", "type": "bind", "source": "/tmp",
        "options": ["rbind", "idmap"]}),
    );
    let out = c.run();
    assert_one_line_error(&out, &["mounts[", "/m", "user namespace"]);
    c.assert_no_residue();
}
