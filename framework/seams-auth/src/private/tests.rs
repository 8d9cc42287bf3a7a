//! Secret files: private, whole, refused when others can read them.

use super::*;

#[test]
fn written_files_are_private_and_whole() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("a/b");
    create_dir(&secrets).unwrap();
    let path = secrets.join("key.json");
    write(&path, b"first").unwrap();
    write(&path, b"second").unwrap();
    assert_eq!(read(&path).unwrap(), b"second");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&secrets), 0o700);
    }
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&secrets).unwrap().count(), 1);
}

#[cfg(unix)]
#[test]
fn a_secret_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.json");
    std::fs::write(&path, b"k").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = read(&path).unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read(&path).unwrap(), b"k");
    assert!(read(&dir.path().join("missing")).is_err());
}
