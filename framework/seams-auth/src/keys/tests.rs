//! The key file: created private, rotated to two live keys, reloaded when
//! it changes, refused when tampered with or readable by others.

use std::time::Duration;

use super::*;

#[test]
fn a_missing_file_is_created_private_with_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/identity.json");
    let (keys, created) = SigningKeys::load_or_create(&path).unwrap();
    assert!(created);
    assert_eq!(keys.kids().len(), 1);
    let (again, created) = SigningKeys::load_or_create(&path).unwrap();
    assert!(!created);
    assert_eq!(again.kids(), keys.kids());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }
}

#[test]
fn rotation_keeps_the_newest_two() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.json");
    let first = SigningKeys::rotate(&path).unwrap().kids()[0].to_owned();
    let second = SigningKeys::rotate(&path).unwrap();
    assert_eq!(second.kids().len(), 2);
    assert_eq!(second.kids()[0], first);
    let second_kid = second.kids()[1].to_owned();
    let third = SigningKeys::rotate(&path).unwrap();
    assert_eq!(third.kids().len(), LIVE_KEYS);
    assert_eq!(third.kids()[0], second_kid, "the oldest key is gone");
    assert!(third.decoding_key(&first).is_none());
    // Neither key has been published long enough: the older one signs.
    let token = third.sign(&serde_json::json!({ "sub": "x" })).unwrap();
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    assert_eq!(kid, third.kids()[0]);
    assert_eq!(third.signing_kid(), kid);
    // The JWKS lists both live keys, newest first, without private halves.
    let jwks = third.jwks();
    let listed: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [third.kids()[1], third.kids()[0]]);
    assert!(jwks["keys"][0].get("d").is_none());
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
}

#[test]
fn a_new_key_signs_only_once_it_has_been_published_long_enough() {
    let now = 1_000_000;
    let ahead = PUBLISH_AHEAD.as_secs();
    let key = |age: u64| Key::generate(now - age).unwrap();
    let set = |keys: Vec<Key>| SigningKeys { keys };
    let check = |keys: SigningKeys, want: usize| {
        let kid = keys.signing(now).kid.clone();
        assert_eq!(kid, keys.kids()[want]);
    };
    // Old key, new key: the old one signs until the new one is published.
    check(set(vec![key(ahead * 10), key(10)]), 0);
    check(set(vec![key(ahead * 10), key(ahead)]), 1);
    check(set(vec![key(ahead * 10), key(ahead + 1)]), 1);
    // A lone new key (a new deployment) signs at once.
    check(set(vec![key(0)]), 0);
    // Two new keys (two rotations in a row): the older of them.
    check(set(vec![key(20), key(10)]), 0);
}

#[test]
fn a_tampered_or_malformed_file_is_refused() {
    let keys = SigningKeys::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.json");
    keys.save(&path).unwrap();
    let good: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let cases: Vec<(&str, Value)> = vec![
        ("empty set", json!({ "keys": [] })),
        ("not a set", json!([1, 2])),
        ("unknown field", {
            let mut v = good.clone();
            v["keys"][0]["extra"] = json!(1);
            v
        }),
        ("x of another key", {
            let mut v = good.clone();
            let other = SigningKeys::generate().unwrap();
            let other_x = other.jwks()["keys"][0]["x"].clone();
            v["keys"][0]["x"] = other_x;
            v
        }),
        ("short d", {
            let mut v = good.clone();
            v["keys"][0]["d"] = json!("AAAA");
            v
        }),
        ("rsa", {
            let mut v = good.clone();
            v["keys"][0]["kty"] = json!("RSA");
            v
        }),
        ("duplicate kid", {
            let mut v = good.clone();
            let k = v["keys"][0].clone();
            v["keys"].as_array_mut().unwrap().push(k);
            v
        }),
        // Found with the token fuzz target's key-file property: ids were
        // compared only between neighbours in age order.
        ("duplicate kid, another key between", {
            let mut v = good.clone();
            let first = v["keys"][0].clone();
            let created = first["created_at"].as_u64().unwrap();
            let mut between = first.clone();
            between["kid"] = json!("between");
            between["created_at"] = json!(created + 1);
            let mut again = first;
            again["created_at"] = json!(created + 2);
            v["keys"].as_array_mut().unwrap().extend([between, again]);
            v
        }),
        ("blank kid", {
            let mut v = good.clone();
            v["keys"][0]["kid"] = json!(" ");
            v
        }),
    ];
    for (what, doc) in cases {
        assert!(
            SigningKeys::parse(&serde_json::to_vec(&doc).unwrap()).is_err(),
            "{what} was accepted"
        );
    }
    assert!(SigningKeys::parse(&serde_json::to_vec(&good).unwrap()).is_ok());
    assert!(SigningKeys::parse(b"\xff\x00").is_err());
}

#[test]
fn debug_output_never_shows_private_keys() {
    let keys = SigningKeys::generate().unwrap();
    let seed = B64.encode(keys.keys[0].seed);
    let shown = format!("{keys:?}");
    let shown = format!("{shown} {:?}", KeyStore::in_memory(keys));
    assert!(!shown.contains(&seed), "{shown}");
}

#[test]
fn a_store_picks_up_a_rotation_of_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.json");
    let short = Duration::from_millis(50);
    let store = KeyStore::open_with_recheck(&path, short).unwrap();
    // A second store whose next check is an hour away: it cannot have
    // looked again however slowly this test runs.
    let patient = KeyStore::open_with_recheck(&path, Duration::from_secs(3600)).unwrap();
    assert_eq!(store.path(), Some(path.as_path()));
    let before = store.current().kids().len();
    // The file's modification time must differ from the first write's.
    std::thread::sleep(Duration::from_millis(20));
    SigningKeys::rotate(&path).unwrap();
    // Until the next check a store answers from memory...
    assert_eq!(patient.current().kids().len(), before);
    assert_eq!(before, 1);
    std::thread::sleep(short * 2);
    assert_eq!(store.current().kids().len(), 2);
    // A broken file keeps the keys in use.
    std::thread::sleep(Duration::from_millis(20));
    crate::private::write(&path, b"{}").unwrap();
    std::thread::sleep(short * 2);
    assert_eq!(store.current().kids().len(), 2);
}
