//! Commands that work on a data directory directly, without a running server.

use anyhow::{bail, Context, Result};
use kestrel_server::{state_db_path, Role, TokenStore};
use kestrel_store::manifest::{load_verifying_key, Head};
use kestrel_store::verify::{current_heads, verify as verify_tables, VerifyOptions};
use kestrel_store::Table;

use crate::cli::{TokenAction, TokenArgs, VerifyArgs};

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

/// `kestrel verify`: checks the data directory's manifests and files, or exports the heads.
pub fn verify(args: VerifyArgs) -> Result<()> {
    if !args.data_dir.is_dir() {
        bail!("{} is not a data directory", args.data_dir.display());
    }
    let mut tables = Vec::new();
    for name in &args.tables {
        let Some(t) = Table::from_name(name) else {
            let names: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
            bail!("no table {name:?}; tables are {}", names.join(", "));
        };
        tables.push(t);
    }
    if args.export_head {
        let heads = current_heads(&args.data_dir, &tables);
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "heads": heads }))?
        );
        return Ok(());
    }
    let mut opts = VerifyOptions::default();
    if let Some(path) = &args.public_key {
        opts.public_key = Some(load_verifying_key(path)?);
    }
    if let Some(path) = &args.heads {
        #[derive(serde::Deserialize)]
        struct Exported {
            heads: Vec<Head>,
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        opts.exported_heads = serde_json::from_str::<Exported>(&text)
            .with_context(|| format!("{}: not the output of --export-head", path.display()))?
            .heads;
    }
    let reports = verify_tables(&args.data_dir, &tables, &opts);
    let problems: usize = reports.iter().map(|r| r.problems.len()).sum();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "ok": problems == 0, "tables": reports })
            )?
        );
    } else {
        for r in &reports {
            let signed = if r.head_signature_verified {
                ", head signature verified"
            } else {
                ""
            };
            println!(
                "{:<14} {}  {} entries, {} files re-hashed, head {}{signed}",
                r.table,
                if r.ok() { "ok     " } else { "PROBLEM" },
                r.entries,
                r.files_checked,
                r.head_seq
            );
            for p in &r.problems {
                println!("  {:?}: {}", p.kind, p.message);
            }
            for n in &r.notes {
                println!("  note: {n}");
            }
        }
    }
    if problems > 0 {
        bail!("verification found {problems} problem(s)");
    }
    Ok(())
}
