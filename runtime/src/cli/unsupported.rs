//! Verbs of runc's that husk does not implement yet: they exist so that scripts and help
//! listings find them, and fail with one clear line.

use crate::error::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

pub fn run(verb: &str, why: &str) -> Result<i32> {
    Err(
        Error::msg(format!("{verb} is not implemented by this version of husk"))
            .with_hint(why.to_string()),
    )
}
