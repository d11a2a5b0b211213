use super::Global;
use crate::error::Result;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    crate::container::start(&g.root, &a.id)?;
    Ok(0)
}
