use super::Global;
use crate::container;
use crate::error::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Send the signal to every process in the container.
    #[arg(short, long)]
    pub all: bool,
    pub id: String,
    /// A name (KILL, SIGKILL) or number; SIGTERM by default.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let sig = container::parse_signal(&a.signal)?;
    container::kill(&g.root, &a.id, sig, a.all)?;
    Ok(0)
}
