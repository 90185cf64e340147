//! Commands that work on a data directory directly, without a running server.

use anyhow::{bail, Result};
use kestrel_server::{state_db_path, Role, TokenStore};

use crate::cli::{TokenAction, TokenArgs};

pub fn token(args: TokenArgs) -> Result<()> {
    std::fs::create_dir_all(&args.data_dir)?;
    let store = TokenStore::open(&state_db_path(&args.data_dir))?;
    match args.action {
        TokenAction::Create { role, name } => {
            let Some(role) = Role::parse(&role) else {
                bail!("unknown role {role:?}: use admin, ingest or viewer");
            };
            let token = store.create(&name, role)?;
            eprintln!(
                "created {} token {name:?}; it is shown only this once:",
                role.as_str()
            );
            println!("{token}");
        }
        TokenAction::List => {
            for t in store.list()? {
                println!("{:<24} {:<8} {}", t.name, t.role.as_str(), t.created_at);
            }
        }
        TokenAction::Revoke { name } => {
            store.revoke(&name)?;
            println!("revoked {name}");
        }
    }
    Ok(())
}
