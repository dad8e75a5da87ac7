//! The state directory: the last table this proxy accepted (`table.json`), written so that a
//! crash at any moment leaves either the previous file or the new one, never half of one.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use tollgate_crds::table::GatewayTable;

pub const TABLE_FILE: &str = "table.json";

pub fn table_path(dir: &Path) -> PathBuf {
    dir.join(TABLE_FILE)
}

/// The table last persisted, if there is one. Not checked here (see `snapshot::verify`).
pub fn load(dir: &Path) -> Result<Option<GatewayTable>, String> {
    let path = table_path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("{} is not a table: {e}", path.display()))
}

/// Writes `table` as `table.json`: a temporary file in the same folder, flushed to disk,
/// renamed over the old one, then the folder flushed so the rename itself survives a crash.
pub fn persist(dir: &Path, table: &GatewayTable) -> std::io::Result<()> {
    let json = serde_json::to_vec(table).map_err(std::io::Error::other)?;
    // Unique per writer: two processes may share a state directory during a rollout.
    let tmp = dir.join(format!(
        ".{TABLE_FILE}.{}.{:016x}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    let written = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&tmp, table_path(dir))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_crds::compile::compile_str;

    fn table() -> GatewayTable {
        compile_str("apiVersion: tollgate.dev/v1alpha1\nkind: ApiGateway\nmetadata: {name: hello}\nspec: {stages: [{name: dev}]}\n", "t")
            .unwrap()
            .tables
            .into_values()
            .next()
            .unwrap()
    }

    #[test]
    fn persists_and_loads_back_leaving_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("tollgate-state-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(load(&dir).unwrap(), None);
        let t = table();
        persist(&dir, &t).unwrap();
        persist(&dir, &t).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(t));
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![TABLE_FILE.to_string()]);
        std::fs::write(table_path(&dir), b"{\"format\":").unwrap();
        assert!(load(&dir).unwrap_err().contains("is not a table"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
