//! The file layer fills only what flags and environment left unset.

use super::*;

fn parse(toml_text: &str) -> anyhow::Result<FileConfig> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("shop.toml");
    std::fs::write(&path, toml_text)?;
    FileConfig::load(&path)
}

#[test]
fn file_values_fill_what_was_not_given() {
    let file = parse(
        r#"
        addr = "127.0.0.1:9000"
        data = "/srv/shop"
        durability = "normal"
        [smtp]
        host = "mail.internal"
        port = 2525
        [peers]
        identity = "http://identity:8080"
        "#,
    )
    .unwrap();
    let mut config = Config::new("127.0.0.1:8080".parse().unwrap(), "./data".into());
    // `--addr` was given on the command line; the rest came from defaults.
    file.apply(&mut config, &|id| id == "addr");
    assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
    assert_eq!(config.data_dir, PathBuf::from("/srv/shop"));
    assert_eq!(config.durability, "normal");
    assert_eq!(config.smtp_host.as_deref(), Some("mail.internal"));
    assert_eq!(config.smtp_port, 2525);
    assert_eq!(file.peers["identity"], "http://identity:8080");
}

#[test]
fn bad_files_name_the_key() {
    let err = parse("adress = \"x\"").unwrap_err();
    assert!(format!("{err:#}").contains("adress"), "{err:#}");
    let err = parse("durability = \"sometimes\"").unwrap_err();
    assert!(format!("{err:#}").contains("durability"), "{err:#}");
    let err = parse("addr = 12").unwrap_err();
    assert!(format!("{err:#}").contains("addr"), "{err:#}");
}
