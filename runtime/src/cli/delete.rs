use super::Global;
use crate::error::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Kill the container if it still runs; succeed if it does not exist.
    #[arg(short, long)]
    pub force: bool,
    pub id: String,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    crate::container::delete(&g.root, &a.id, a.force)?;
    Ok(0)
}
