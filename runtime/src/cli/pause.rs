use super::Global;
use crate::container::Container;
use crate::error::{Error, Result};
use crate::state::Status;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn run(g: &Global, a: Args, pause: bool) -> Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    match (c.status(), pause) {
        (Status::Running, true) => c.state.cgroup.freeze(true)?,
        (Status::Paused, false) => c.state.cgroup.freeze(false)?,
        (Status::Paused, true) => return Err(Error::msg("container is already paused")),
        (s, true) => {
            return Err(Error::msg(format!(
                "cannot pause a container that is {}",
                s.as_str()
            )))
        }
        (_, false) => return Err(Error::msg("container not paused")),
    }
    Ok(0)
}
