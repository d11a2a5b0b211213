//! Task events, forwarded to containerd in the order they happen: one thread drains a queue
//! over containerd's ttrpc Events service (`TTRPC_ADDRESS`), or through
//! `containerd publish` (the `-publish-binary`) when no ttrpc address is given.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use containerd_shim_protos::events::task as ev;
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::EventsClient;
use protobuf::well_known_types::any::Any;
use protobuf::well_known_types::timestamp::Timestamp;
use protobuf::{Message, MessageField};

pub struct Publisher {
    tx: Mutex<Sender<(&'static str, Any)>>,
}

pub struct Target {
    pub namespace: String,
    pub ttrpc_address: Option<String>,
    pub publish_binary: String,
    pub containerd_address: String,
}

pub fn timestamp(t: SystemTime) -> MessageField<Timestamp> {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    MessageField::some(Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    })
}

/// Packs a message as containerd's typeurl registry names it: the proto's full name.
pub fn to_any<M: Message>(type_url: &str, m: &M) -> Any {
    Any {
        type_url: type_url.to_string(),
        value: m.write_to_bytes().unwrap_or_default(),
        ..Default::default()
    }
}

impl Publisher {
    pub fn start(target: Target) -> Publisher {
        let (tx, rx) = channel();
        let _ = std::thread::Builder::new()
            .name("events".into())
            .stack_size(256 * 1024)
            .spawn(move || forward_all(target, rx));
        Publisher { tx: Mutex::new(tx) }
    }

    /// Queues `event` for `topic`; its type URL is the proto's full name, spelt out here
    /// rather than read from the descriptor, which would build every descriptor in memory.
    pub fn publish<M: Message>(&self, topic: &'static str, event: &M) {
        let name = match topic {
            "/tasks/create" => "TaskCreate",
            "/tasks/start" => "TaskStart",
            "/tasks/oom" => "TaskOOM",
            "/tasks/exit" => "TaskExit",
            "/tasks/delete" => "TaskDelete",
            "/tasks/exec-added" => "TaskExecAdded",
            "/tasks/exec-started" => "TaskExecStarted",
            "/tasks/paused" => "TaskPaused",
            "/tasks/resumed" => "TaskResumed",
            _ => "TaskCheckpointed",
        };
        let any = to_any(&format!("containerd.events.{name}"), event);
        let _ = self.tx.lock().unwrap().send((topic, any));
    }
}

fn forward_all(t: Target, rx: Receiver<(&'static str, Any)>) {
    let mut client: Option<EventsClient> = None;
    for (topic, event) in rx {
        let envelope = Envelope {
            timestamp: timestamp(SystemTime::now()),
            namespace: t.namespace.clone(),
            topic: topic.to_string(),
            event: MessageField::some(event),
            ..Default::default()
        };
        // containerd may be restarting: retry for a while, then drop the event (as runc's shim).
        for attempt in 0..10 {
            let sent = match &t.ttrpc_address {
                Some(addr) => forward_ttrpc(&mut client, addr, &envelope),
                None => publish_binary(&t, &envelope),
            };
            if sent {
                break;
            }
            client = None;
            std::thread::sleep(Duration::from_millis(50 << attempt.min(5)));
        }
    }
}

fn forward_ttrpc(client: &mut Option<EventsClient>, addr: &str, envelope: &Envelope) -> bool {
    if client.is_none() {
        let addr = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("unix://{addr}")
        };
        match ttrpc::Client::connect(&addr) {
            Ok(c) => *client = Some(EventsClient::new(c)),
            Err(_) => return false,
        }
    }
    let req = ForwardRequest {
        envelope: MessageField::some(envelope.clone()),
        ..Default::default()
    };
    let ctx = ttrpc::context::with_timeout(Duration::from_secs(5).as_nanos() as i64);
    client.as_ref().unwrap().forward(ctx, &req).is_ok()
}

fn publish_binary(t: &Target, envelope: &Envelope) -> bool {
    let Some(event) = envelope.event.as_ref() else {
        return true;
    };
    let mut cmd = Command::new(&t.publish_binary);
    husk::sys::unblock_signals_on_exec(&mut cmd);
    let child = cmd
        .args(["--address", &t.containerd_address, "publish", "--topic"])
        .arg(&envelope.topic)
        .args(["--namespace", &t.namespace])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else { return false };
    if let Some(mut stdin) = child.stdin.take() {
        use protobuf::Message;
        let _ = stdin.write_all(&event.write_to_bytes().unwrap_or_default());
    }
    // The reaper collects it; success is not observable without racing it.
    true
}

pub fn exit_event(
    container: &str,
    exec_id: &str,
    pid: u32,
    status: u32,
    at: SystemTime,
) -> ev::TaskExit {
    ev::TaskExit {
        container_id: container.to_string(),
        id: if exec_id.is_empty() {
            container.to_string()
        } else {
            exec_id.to_string()
        },
        pid,
        exit_status: status,
        exited_at: timestamp(at),
        ..Default::default()
    }
}
