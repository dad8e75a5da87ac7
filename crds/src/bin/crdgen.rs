//! Writes one YAML file per CRD, and `all.yaml` with all of them, to `crds/yaml/` (or the
//! folder given as the only argument).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("yaml"));
    std::fs::create_dir_all(&dir)?;
    for (stem, crd) in tollgate_crds::crd::definitions() {
        std::fs::write(
            dir.join(format!("{stem}.yaml")),
            tollgate_crds::crd::render(&crd),
        )?;
    }
    std::fs::write(dir.join("all.yaml"), tollgate_crds::crd::render_all())?;
    eprintln!("wrote CRDs to {}", dir.display());
    Ok(())
}
