use super::Global;
use crate::container::Container;
use crate::error::Result;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    let v = c.state.to_json(c.status());
    println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    Ok(0)
}
